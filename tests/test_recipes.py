"""Packaged recipes: every one loads through the real loader, and the paper recipes say what the papers say."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from align.config import RECIPES_DIR, TrainConfig, build_config, list_recipes

ROOT = Path(__file__).resolve().parents[1]


def _papers_dir() -> Path:
    import importlib.util

    spec = importlib.util.spec_from_file_location("refs_build", ROOT / "leaderboards" / "references" / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.papers_dir()


PAPERS = _papers_dir()
needs_papers = pytest.mark.skipif(not (PAPERS / "tables.yaml").is_file(),
                                  reason=f"the papers' tables.yaml is not at {PAPERS} (set HARNESS_PAPERS_DIR)")
DGPO_PAPER = [f"dgpo-paper-{m}" for m in ("sft", "dpo", "ipo", "cpo", "kto", "rrhf", "slic", "orpo", "simpo", "dgpo")]
# Table 6's symbols -> our loss settings, per baseline (SLiC-HF's "β" is its hinge margin δ).
TABLE6 = {"DPO": ("dpo", {"beta": "beta"}), "IPO": ("ipo", {"tau": "tau"}),
          "CPO": ("cpo", {"alpha": "alpha", "beta": "beta"}),
          "KTO": ("kto", {"lambda_w": "desirable_weight", "lambda_l": "undesirable_weight", "beta": "beta"}),
          "RRHF": ("rrhf", {"lambda": "nll_weight"}), "SLiC-HF": ("slic", {"beta": "delta", "lambda": "nll_weight"}),
          "ORPO": ("orpo", {"lambda": "or_weight"}), "SimPO": ("simpo", {"beta": "beta", "gamma": "gamma"})}


def _table(table_id: str) -> dict:
    doc = yaml.safe_load((PAPERS / "tables.yaml").read_text())
    for p in doc["papers"].values():
        for t in p["tables"] + p.get("text_values", []):
            if t["id"] == table_id:
                return t
    raise KeyError(table_id)


def test_every_packaged_recipe_builds_a_train_config():
    names = list_recipes()
    assert set(DGPO_PAPER) | {"dgpo", "smaug-dpop", "sdpo", "sdpo-dpo", "zephyr-dpo", "tiny"} <= set(names)
    for name in names:
        cfg = build_config(name)
        assert isinstance(cfg, TrainConfig), name
        raw = yaml.safe_load((RECIPES_DIR / f"{name}.yaml").read_text())
        if "loss" in raw:  # the recipe's loss settings arrive unchanged
            assert cfg.loss == raw["loss"], name
            assert cfg.method == raw.get("method", raw["loss"]["name"]), name


@needs_papers
def test_dgpo_paper_recipes_follow_table_6_and_appendix_e():
    from accelerate.commands.config.config_args import ClusterConfig

    fsdp = ClusterConfig.from_yaml_file(str(RECIPES_DIR / "accelerate" / "fsdp.yaml"))
    assert fsdp.distributed_type.value == "FSDP" and fsdp.num_processes == 8  # Appendix E: FSDP on 8 A800
    seen = set()
    for row in _table("dgpo-table-6")["rows"]:
        method, names = TABLE6[row["Baseline"]]
        printed = {k: float(v) for k, v in re.findall(r"\\(\w+) = ([\d.]+)", row["Hyperparameters"])}
        cfg = build_config(f"dgpo-paper-{method}")
        assert {names[k]: v for k, v in printed.items()} == {k: v for k, v in cfg.loss.items() if k != "name"}, method
        seen.add(method)
    assert seen == {m.split("-")[-1] for m in DGPO_PAPER} - {"sft", "dgpo"}
    assert build_config("dgpo-paper-dgpo").loss["beta"] == 2.5  # §4.7: best β
    for name in DGPO_PAPER:
        cfg = build_config(name)
        assert (cfg.epochs, cfg.max_steps, cfg.max_length, cfg.warmup_ratio, cfg.mixed_precision) == (1, -1, 2048, 0.1, "bf16")
        assert cfg.batch_size * cfg.grad_accum * fsdp.num_processes == 16, name  # Appendix E: global batch 16
        assert "it states no learning rate" in (RECIPES_DIR / f"{name}.yaml").read_text(), name
    same = lambda n: {k: v for k, v in build_config(n).to_dict().items() if k != "recipe"}  # noqa: E731
    assert same("dgpo") == same("dgpo-paper-dgpo")
    assert "Zephyr" not in (RECIPES_DIR / "dgpo.yaml").read_text()


@needs_papers
def test_smaug_recipe_matches_section_6_1():
    hp = _table("smaug-hparams")["values"]
    cfg = build_config("smaug-dpop")
    assert (cfg.loss["beta"], cfg.loss["dpop_lambda"], cfg.lr) == (hp["beta"], hp["lambda"], hp["lr"])
    assert cfg.max_steps == hp["steps_per_DPOP_routine"] == 1000
    assert "Sec. 5" not in (RECIPES_DIR / "smaug-dpop.yaml").read_text()


def test_sdpo_and_its_dpo_baseline_see_the_same_data():
    sdpo, dpo = build_config("sdpo").to_dict(), build_config("sdpo-dpo").to_dict()
    assert (sdpo["method"], dpo["method"]) == ("sdpo", "dpo")
    differ = {k for k in sdpo if sdpo[k] != dpo[k]}
    assert differ == {"method", "recipe"}  # one epoch each (per sDPO step = per chunk), same batch, lr, β, lengths
    assert sdpo["epochs"] == 1 and sdpo["max_steps"] == -1
