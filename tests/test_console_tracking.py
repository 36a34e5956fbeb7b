"""Experiment tracking (TensorBoard read back) and the quiet terminal of the main job."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from align.config import TrainConfig
from align.data import arithmetic_preference_pairs, write_jsonl
from align.trainer import train


def test_tensorboard_events_hold_the_metrics_jsonl_values(tiny_model, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    prefs = str(write_jsonl(arithmetic_preference_pairs(32, seed=5), tmp_path / "p.jsonl"))
    out = tmp_path / "run"
    run = train(TrainConfig(method="dpo", model=str(tiny_model), data=[prefs], output=str(out), lr=1e-3,
                            batch_size=8, max_steps=3, max_length=96, max_prompt_length=48, progress=False,
                            report_to="tensorboard"))
    assert run["trackers"] == ["tensorboard"]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    event_dirs = {p.parent for p in (out / "tracking").rglob("events.out.tfevents.*")}
    scalars = {}
    for d in event_dirs:
        acc = EventAccumulator(str(d))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            scalars[tag] = {e.step: e.value for e in acc.Scalars(tag)}
    for key in ("loss", "rewards/margins", "rewards/accuracies", "lr", "grad_norm", "logps/chosen"):
        assert scalars[key] == {r["step"]: pytest.approx(r[key], rel=1e-6, abs=1e-9) for r in rows}, key
    hparams = next((out / "tracking").rglob("hparams.yml")).read_text()
    assert "method: dpo" in hparams and "report_to: tensorboard" in hparams


def test_unknown_or_missing_tracker_is_refused(tiny_model, tmp_path):
    from align.tracking import parse_report_to

    assert parse_report_to("none") == [] and parse_report_to("tensorboard") == ["tensorboard"]
    with pytest.raises(ValueError, match="unknown tracker"):
        parse_report_to("tensorboard,comet")
    r = subprocess.run([sys.executable, "-m", "harness", "train", "--method", "dpo", "--model", str(tiny_model),
                        "--report-to", "nope", "--output", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "report_to: unknown tracker(s) nope" in r.stderr


def test_train_and_eval_terminal_shows_our_bars_and_summary_only(tiny_model, data_dir, tmp_path):
    """Library noise (datasets' split bars, lm-eval's bars and warnings, transformers' notices) goes to
    the run's harness.log; the terminal keeps our phase bars and the closing summary."""
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf"), HF_DATASETS_CACHE=str(tmp_path / "hf" / "datasets"),
               PYTHONWARNINGS="default")
    args = [sys.executable, "-m", "harness", "train-and-eval", "--method", "dpo", "--model", str(tiny_model),
            "--recipe", "tiny", "--max-steps", "2", "--tasks", "arc_challenge,mmlu", "--limit", "1",
            "--data-dir", str(data_dir), "--runs-dir", str(tmp_path / "runs"), "--results", str(tmp_path / "results"),
            "--leaderboards", str(tmp_path / "lb")]
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    terminal = r.stdout + r.stderr
    for ours in ("evaluate base", "train dpo", "evaluate dpo", "train-and-eval finished in", "final loss",
                 "other libraries' messages:"):
        assert ours in terminal, ours
    assert "s/it" in r.stderr or "it/s" in r.stderr  # the bars show a rate
    for noise in ("Generating", "RuntimeWarning", "Warning", "Loading weights", "Running loglikelihood", "Writing model"):
        assert noise not in terminal, noise
    log = (tmp_path / "runs" / "harness.log").read_text()
    assert "Generating test split" in log and "Running loglikelihood requests" in log and "Loading weights" in log

    train = [sys.executable, "-m", "harness", "train", "--method", "dpo", "--model", str(tiny_model), "--recipe", "tiny",
             "--max-steps", "1", "--output", str(tmp_path / "t")]
    quiet = subprocess.run(train, capture_output=True, text=True, env=env, timeout=600)
    verbose = subprocess.run(train + ["--verbose"], capture_output=True, text=True, env=env, timeout=600)
    assert quiet.returncode == verbose.returncode == 0, verbose.stderr[-3000:]
    assert "Writing model shards" not in quiet.stderr and "Writing model shards" in verbose.stderr  # --verbose shows all
    assert "train dpo" in quiet.stderr and "dpo: 1 steps in" in quiet.stdout
    assert "Writing model shards" in (tmp_path / "t" / "harness.log").read_text()
