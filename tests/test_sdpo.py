"""sDPO: partitions, the reference chain M_{t-1} -> step t, T=1 parity with DPO, resume."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from align.config import build_config
from align.data import arithmetic_preference_pairs, write_jsonl
from align.fingerprint import model_fingerprint
from align.sdpo import partition_pairs, train_sdpo


# ------------------------------------------------------------------ partition
def test_easy_to_hard_orders_sources_by_reward_accuracy():
    sources = ["a"] * 4 + ["b"] * 3 + ["c"] * 2
    # a: 1/4 positive, b: 3/3 positive, c: 1/2 positive -> b, c, a
    margins = torch.tensor([1.0, -1, -1, -1, 2, 2, 2, 5, -5])
    chunks = partition_pairs(sources, margins, "easy-to-hard")
    assert [c["name"] for c in chunks] == ["b", "c", "a"]
    assert chunks[0]["indices"] == [4, 5, 6]
    assert [c["name"] for c in partition_pairs(sources, margins, "given")] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="3 sources"):
        partition_pairs(sources, margins, "easy-to-hard", steps=2)


def test_random_partition_keeps_source_chunk_sizes_and_is_seeded():
    sources = ["a"] * 5 + ["b"] * 3
    margins = torch.zeros(8)
    one = partition_pairs(sources, margins, "random", seed=7)
    assert [len(c["indices"]) for c in one] == [5, 3]
    assert sorted(one[0]["indices"] + one[1]["indices"]) == list(range(8))
    assert one == partition_pairs(sources, margins, "random", seed=7)
    assert one != partition_pairs(sources, margins, "random", seed=8)


def test_single_source_quantiles_easiest_first():
    margins = torch.tensor([0.5, 3.0, -2.0, 1.0, -0.5, 2.0])
    chunks = partition_pairs(["s"] * 6, margins, "easy-to-hard", steps=3)
    # sorted by margin: 1 (3.0), 5 (2.0), 3 (1.0), 0 (0.5), 4 (-0.5), 2 (-2.0)
    assert [c["indices"] for c in chunks] == [[1, 5], [0, 3], [2, 4]]
    assert [c["indices"] for c in partition_pairs(["s"] * 6, margins, "given", steps=2)] == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(ValueError, match="between 1 and"):
        partition_pairs(["s"] * 6, margins, "easy-to-hard", steps=7)


# ------------------------------------------------------------- real training
@pytest.fixture(scope="module")
def two_sources(tmp_path_factory) -> list[str]:
    rows = arithmetic_preference_pairs(n=40, seed=3)
    d = tmp_path_factory.mktemp("sdpo-data")
    specs = []
    for src in ("addition", "multiplication"):
        path = write_jsonl([{k: v for k, v in r.items() if k != "source"} for r in rows if r["source"] == src][:10],
                           d / f"{src}.jsonl")
        specs.append(f"{src}={path}")
    return specs


def _cfg(tiny_model, data, output, **kw):
    return build_config("tiny", model=str(tiny_model), data=data, output=str(output), max_steps=2, batch_size=4,
                        progress=False, **kw)


@pytest.fixture(scope="module")
def sdpo_run(tiny_model, two_sources, tmp_path_factory):
    out = tmp_path_factory.mktemp("sdpo") / "run"
    state = train_sdpo(_cfg(tiny_model, two_sources, out), loss="dpo")
    return out, state


def _weights(path: Path) -> dict:
    return load_file(str(path / "model.safetensors"))


def test_step_reference_is_previous_step_final_weights(sdpo_run, tiny_model, two_sources):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from align.cache import cache_root
    from align.data import load_preference_data
    from align.encoding import encode_pairs
    from align.trainer import compute_logps, make_accelerator

    out, state = sdpo_run
    assert state["completed"] and [s["step"] for s in state["steps"]] == [1, 2]
    step1, step2 = out / "step-1", out / "step-2"
    # Step 2 started from, and referenced, the exact files of M_1; step 1 from M_0.
    assert state["steps"][1]["reference_fingerprint"] == model_fingerprint(str(step1))
    assert state["steps"][0]["reference_fingerprint"] == model_fingerprint(str(tiny_model))
    assert state["steps"][1]["reference_fingerprint"] != state["steps"][0]["reference_fingerprint"]
    run2 = json.loads((step2 / "run.json").read_text())
    assert run2["model_path"] == str(step1)
    assert run2["reference_cache"]["key"].startswith(model_fingerprint(str(step1)) + "-")

    # The reference log-probs step 2 trained against are M_1's, bit for bit.
    cached = torch.load(Path(cache_root()) / "ref_logps" / f"{run2['reference_cache']['key']}.pt")
    pairs, _ = load_preference_data(two_sources)
    chunk2 = [pairs[i] for i in state["chunks"][1]["indices"]]
    tok = AutoTokenizer.from_pretrained(str(step1))
    encoded, _ = encode_pairs(tok, chunk2, 96, 48)
    m1 = AutoModelForCausalLM.from_pretrained(str(step1), dtype=torch.float32)
    c, r = compute_logps(m1, encoded, make_accelerator(build_config("tiny")), tok.pad_token_id, 64)
    assert torch.equal(cached["chosen"], c) and torch.equal(cached["rejected"], r)

    # The final model in --output is M_2, and M_1 differs from M_0 (training happened).
    final = _weights(out)
    assert all(torch.equal(final[k], v) for k, v in _weights(step2).items())
    base = _weights(Path(tiny_model))
    assert any(not torch.equal(base[k], v) for k, v in _weights(step1).items())


def test_chunk_order_and_gamma_table_match_an_independent_pass(sdpo_run, tiny_model, two_sources):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from align.data import load_preference_data
    from align.encoding import encode_pairs
    from align.trainer import compute_logps, make_accelerator

    out, state = sdpo_run
    pairs, _ = load_preference_data(two_sources)
    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    encoded, _ = encode_pairs(tok, pairs, 96, 48)
    m0 = AutoModelForCausalLM.from_pretrained(str(tiny_model), dtype=torch.float32)
    c, r = compute_logps(m0, encoded, make_accelerator(build_config("tiny")), tok.pad_token_id, 5)
    acc = {s: ((c - r)[[i for i, p in enumerate(pairs) if p.source == s]] > 0).float().mean().item()
           for s in ("addition", "multiplication")}
    expected = sorted(acc, key=lambda s: -acc[s])
    if acc["addition"] != acc["multiplication"]:
        assert [ch["name"] for ch in state["chunks"]] == expected
    for ch in state["chunks"]:
        assert ch["size"] == 10 and ch["reward_accuracy_M0"] == pytest.approx(acc[ch["name"]])
    # γ table: rows M_0, M_1, M_2; M_0's entries are this pass's means (batching differs -> approx).
    table = state["gamma_ref"]
    assert [row["model"] for row in table] == ["M_0 (S)", "M_1", "M_2"]
    for j, ch in enumerate(state["chunks"]):
        assert table[0]["chunks"][j]["gamma_mean"] == pytest.approx((c - r)[ch["indices"]].mean().item(), abs=1e-4)
    # The merged metrics count steps across the two sDPO steps.
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(x["step"], x["sdpo_step"]) for x in rows] == [(1, 1), (2, 1), (3, 2), (4, 2)]


def test_one_step_sdpo_equals_plain_dpo(tiny_model, two_sources, tmp_path):
    from align.trainer import train

    data = two_sources[:1]
    train(_cfg(tiny_model, data, tmp_path / "dpo", method="dpo"))
    state = train_sdpo(_cfg(tiny_model, data, tmp_path / "sdpo"), loss="dpo", steps=1)
    assert state["chunks"][0]["indices"] == list(range(10))
    a, b = _weights(tmp_path / "dpo"), _weights(tmp_path / "sdpo")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # The published run.json describes the whole sDPO run, so it lands in the same comparison group.
    plain, step = (json.loads((tmp_path / d / "run.json").read_text()) for d in ("dpo", "sdpo"))
    assert step["config"]["method"] == "sdpo" and step["model_path"] == plain["model_path"] == str(tiny_model)
    assert step["data"]["fingerprint"] == plain["data"]["fingerprint"]
    assert step["pairs_seen"] == plain["pairs_seen"] == min(10, plain["steps"] * plain["config"]["batch_size"])


def test_resume_within_and_across_steps(sdpo_run, tiny_model, two_sources, tmp_path):
    out, _ = sdpo_run
    run = tmp_path / "run"
    stopped = train_sdpo(_cfg(tiny_model, two_sources, run, stop_after_steps=1), loss="dpo")
    assert not stopped["completed"] and not (run / "step-1" / "run.json").exists()
    assert (run / "step-1" / "checkpoints" / "step-1").exists()
    done = train_sdpo(_cfg(tiny_model, two_sources, run, resume=True), loss="dpo")
    assert done["completed"]
    ref = _weights(out)
    got = _weights(run)
    assert all(torch.equal(ref[k], got[k]) for k in ref)  # same as the uninterrupted run
    # Resuming a finished run retrains nothing.
    stamps = [os.stat(run / f"step-{t}" / "model.safetensors").st_mtime_ns for t in (1, 2)]
    again = train_sdpo(_cfg(tiny_model, two_sources, run, resume=True), loss="dpo")
    assert again["completed"]
    assert stamps == [os.stat(run / f"step-{t}" / "model.safetensors").st_mtime_ns for t in (1, 2)]
    with pytest.raises(ValueError, match="partition"):
        train_sdpo(_cfg(tiny_model, two_sources, run, resume=True), loss="dpo", partition="given")


def test_cli_sdpo_with_dgpo(tiny_model, two_sources, tmp_path, capsys):
    from harness.cli import main

    argv = ["train", "--method", "sdpo", "--sdpo-loss", "dgpo", "--sdpo-partition", "given", "--model", str(tiny_model), "--recipe", "tiny",
            "--output", str(tmp_path / "o"), "--max-steps", "1", "--batch-size", "4", "--no-progress"]
    for spec in two_sources:
        argv += ["--data", spec]
    assert main(argv) == 0
    state = json.loads((tmp_path / "o" / "sdpo.json").read_text())
    assert [c["name"] for c in state["chunks"]] == ["addition", "multiplication"]
    assert state["steps"][1]["reference_fingerprint"] is None  # dgpo has no reference
    assert json.loads((tmp_path / "o" / "step-2" / "run.json").read_text())["model_path"] == str(tmp_path / "o" / "step-1")
    assert "M_1" in capsys.readouterr().out
    assert main(argv + ["--sdpo-steps", "3"]) == 2


def test_sdpo_under_accelerate_two_processes_matches_one(tiny_model, two_sources, tmp_path):
    """sDPO under `accelerate launch` with 2 CPU processes: the initial model's per-source accuracy (computed
    across ranks), the chunk order, each step's reference chain and the final weights equal one process with the
    same global batch; only rank 0 writes the shared files."""
    from tests.conftest import train_two_processes

    one = tmp_path / "one"
    train_sdpo(_cfg(tiny_model, two_sources, one, lr=1e-3, max_length=96, max_prompt_length=48), loss="dpo")
    two = tmp_path / "two"
    r = train_two_processes(tiny_model, two_sources[0], two, "sdpo", "--data", two_sources[1], "--sdpo-loss", "dpo",
                            "--batch-size", "2", "--max-steps", "2")  # 2 processes x 2 = one process's batch 4
    assert r.returncode == 0, r.stderr[-3000:]
    s1, s2 = (json.loads((d / "sdpo.json").read_text()) for d in (one, two))
    assert [c["name"] for c in s1["chunks"]] == [c["name"] for c in s2["chunks"]]
    assert [c["indices"] for c in s1["chunks"]] == [c["indices"] for c in s2["chunks"]]
    assert [c["reward_accuracy_M0"] for c in s1["chunks"]] == pytest.approx([c["reward_accuracy_M0"] for c in s2["chunks"]])
    g1, g2 = ([c["gamma_mean"] for row in s["gamma_ref"] for c in row["chunks"]] for s in (s1, s2))
    assert len(g1) == 6 and g1 == pytest.approx(g2, abs=1e-4)
    assert [st["reference_fingerprint"] for st in s2["steps"]][1] == model_fingerprint(two / "step-1")
    w1, w2 = _weights(one), _weights(two)
    assert w1.keys() == w2.keys() and all(torch.allclose(w1[k], w2[k], atol=1e-4) for k in w1)
    rows = [json.loads(x) for x in (two / "metrics.jsonl").read_text().splitlines()]
    assert [(x["step"], x["sdpo_step"]) for x in rows] == [(1, 1), (2, 1), (3, 2), (4, 2)]  # written once, by rank 0
