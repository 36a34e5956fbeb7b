"""Loss-owned settings, the generated `harness train` flags, recipe resolution and the one method registry."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from align.config import TrainConfig, build_config, field_docs, load_recipe
from align.losses import LOSSES, get_loss
from align.methods import methods


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_every_config_field_is_documented_where_declared():
    docs = field_docs()
    assert [f.name for f in dataclasses.fields(TrainConfig)] == list(docs)
    assert all(len(d) > 10 for d in docs.values())
    assert docs["warmup_ratio"].startswith("Share of the optimizer steps")


def test_loss_settings_come_from_the_signature():
    dpop = get_loss("dpop").settings
    assert list(dpop) == ["beta", "dpop_lambda", "form"]
    assert (dpop["beta"].default, dpop["beta"].type) == (0.3, float)
    assert dpop["form"].choices == ("corrected", "printed")
    assert "penalty" in dpop["dpop_lambda"].doc
    assert get_loss("dgpo").resolve({"length_normalize": "false"}) == {"beta": 2.5, "length_normalize": False,
                                                                       "detach_weight": False}
    with pytest.raises(ValueError, match=r"loss 'dpo' does not accept setting gamma; it accepts: beta"):
        get_loss("dpo").resolve({"gamma": 1})
    with pytest.raises(ValueError, match="must be one of corrected, printed"):
        get_loss("dpop").resolve({"form": "outside"})


def test_config_refuses_what_the_run_would_not_use():
    with pytest.raises(ValueError, match="does not accept setting dpop_lambda"):
        TrainConfig(method="dpo", loss={"dpop_lambda": 10})
    with pytest.raises(ValueError, match="method 'dgpo' trains loss 'dgpo', but the loss block names 'dpo'"):
        build_config("zephyr-dpo", method="dgpo")
    with pytest.raises(ValueError, match="'sdpo_partition' belongs to method 'sdpo'"):
        TrainConfig(method="dpo", sdpo_partition="random")
    with pytest.raises(ValueError, match="lr_schedule.*linear, cosine, constant"):
        TrainConfig(lr_schedule="cosin")
    assert TrainConfig(method="sdpo", loss={"name": "dgpo", "beta": 1.0}).loss == {"name": "dgpo", "beta": 1.0}
    assert TrainConfig(method="sdpo").loss == {"name": "dpo"}


def test_one_registry_for_every_method():
    ms = methods()
    assert set(LOSSES) | {"sdpo"} == set(ms)
    assert ms["sdpo"].wraps_loss and ms["sdpo"].config_fields == ("sdpo_steps", "sdpo_partition")
    assert not ms["dpo"].wraps_loss and ms["dpo"].recipe == "zephyr-dpo"


def test_cli_rejects_settings_the_loss_does_not_take(capsys, tmp_path):
    from harness.cli import main

    for argv, message in [(["--method", "dpo", "--loss-arg", "gamma=1"],
                           "error: loss 'dpo' does not accept setting gamma; it accepts: beta"),
                          (["--method", "dpo", "--dpop-lambda", "10"], "does not accept setting dpop_lambda"),
                          (["--method", "dpo", "--sdpo-steps", "3"], "'sdpo_steps' belongs to method 'sdpo'"),
                          (["--method", "dgpo", "--loss-arg", "beta"], "--loss-arg 'beta': expected NAME=VALUE")]:
        assert main(["train", *argv, "--output", str(tmp_path / "unused")]) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["train", "--method", "dpop", "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    assert "Loss settings for dpop" in out and "dpop_lambda (float, default 50.0)" in out
    assert "beta (float, default 2.5)" not in out  # only dpop's settings, not dgpo's
    assert "--lr-schedule {linear,cosine,constant}" in out and "--sdpo-partition" in out


def test_cli_subprocess_exit_code(tmp_path):
    r = run_cli("train", "--method", "dpo", "--loss-arg", "gamma=1", "--output", str(tmp_path / "unused"))
    assert r.returncode == 2 and "loss 'dpo' does not accept setting gamma; it accepts: beta" in r.stderr


def test_recipe_names_are_never_shadowed_by_files(tmp_path, tiny_model, monkeypatch):
    (tmp_path / "tiny").mkdir()  # a folder and a file named like packaged recipes in the cwd
    (tmp_path / "dgpo").write_text("lr: 1.0\n")
    monkeypatch.chdir(tmp_path)
    assert load_recipe("tiny")["max_length"] == 96 and load_recipe("dgpo")["method"] == "dgpo"
    own = tmp_path / "mine.yaml"
    own.write_text("loss: {name: dgpo, beta: 1.5}\nlr: 1.0e-3\n")
    cfg = build_config(str(own))
    assert (cfg.method, cfg.loss["beta"], cfg.recipe) == ("dgpo", 1.5, str(own))
    with pytest.raises(FileNotFoundError, match="recipe file './tiny' not found"):
        load_recipe("./tiny")
    bad = tmp_path / "bad.yaml"
    bad.write_text("loss: {name: dpo, gamma: 1.0}\n")
    with pytest.raises(ValueError, match=r"bad.yaml: field 'loss': loss 'dpo' does not accept setting gamma"):
        load_recipe(str(bad))

    from harness.cli import main

    out = tmp_path / "run"
    assert main(["train", "--method", "dgpo", "--recipe", "mine.yaml", "--model", str(tiny_model), "--max-steps", "1",
                 "--max-length", "96", "--max-prompt-length", "48", "--output", str(out), "--no-progress"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["recipe"] == "mine.yaml" and run["loss"] == {"name": "dgpo", "needs_reference": False, "beta": 1.5,
                                                           "length_normalize": True, "detach_weight": False}
    assert run["config"]["lr"] == 1e-3
