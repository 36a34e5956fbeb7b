"""Held-out arithmetic (lm-eval, exact match of the final number) and held-out preference pairs."""
from __future__ import annotations

import json
import re

import pytest

from harness.evaluation.arithmetic import N_ITEMS, heldout_problems, task_config, training_questions
from harness.evaluation.preference_heldout import heldout_pairs, mean_se


def test_heldout_problems_are_disjoint_deterministic_and_right():
    rows = heldout_problems()
    assert len(rows) == N_ITEMS and rows == heldout_problems()
    train = training_questions()
    assert len(train) > 100 and not {r["question"] for r in rows} & train
    assert len({r["question"] for r in rows}) == N_ITEMS
    for r in rows:  # the target is the arithmetic result of the question
        a, op, b = re.fullmatch(r"What is (\d+) ([-+*]) (\d+)\?", r["question"]).groups()
        assert int(r["answer"]) == {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]
    pairs = heldout_pairs()
    assert len(pairs) == 256 and not {p["prompt"] for p in pairs} & train


def test_final_number_filter_is_lm_evals_regex_last_match():
    from lm_eval.filters.extraction import RegexFilter

    spec = task_config(__import__("pathlib").Path("x.jsonl"), chat=True)["filter_list"][0]["filter"][0]
    f = RegexFilter(regex_pattern=spec["regex_pattern"], group_select=spec["group_select"])
    out = list(f.apply([["12 + 5 = 17. The answer is 17."], ["97 - 4 = 93. The answer is -3."], ["no idea"]], [{}] * 3))
    assert out == [["17"], ["-3"], ["[invalid]"]]


def test_mean_se_hand_computed():
    m, se = mean_se([1.0, 0.0, 1.0, 1.0])
    assert m == 0.75 and se == pytest.approx((0.25 / 4) ** 0.5)  # sample var 0.25, n 4


def test_arithmetic_and_preference_heldout_on_tiny_model(tiny_model, tmp_path):
    """Both benchmarks through the runner: values are the means of the kept per-item scores; the base's deltas
    are 0; a changed model's deltas are its log-probs minus the base's, checked against a forward pass here."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.evaluation import EvalRequest
    from harness.evaluation.runner import describe_model, evaluate_model
    from harness.results import read_result

    out = tmp_path / "results"
    base_run = describe_model(str(tiny_model), method="base")
    paths = evaluate_model(str(tiny_model), ["arithmetic", "preference_heldout"], out, run=base_run,
                           request=EvalRequest(model=str(tiny_model), limit=8))
    arith, pref = (read_result(p) for p in paths)
    raw = json.loads((paths[0].parent / arith["raw_output"]).read_text())
    em = arith["scores"][0]
    items = raw["per_item"]["arithmetic_heldout:exact_match"]
    assert em["n"] == 8 and len(items) == 8 and em["value"] == pytest.approx(sum(v for _, v in items) / 8)
    assert arith["conventions"]["chat_template"] is True  # the tiny tokenizer has one: the training format
    by = {s["metric"]: s for s in pref["scores"]}
    assert by["delta_chosen_logp"]["value"] == 0 and by["delta_rejected_logp_per_token"]["value"] == 0
    praw = json.loads((paths[1].parent / pref["raw_output"]).read_text())["per_pair"]
    acc = sum(p["chosen_logp"] > p["rejected_logp"] for p in praw) / 8
    assert by["pref_accuracy"]["value"] == pytest.approx(acc)

    # A "trained" model: the base with one weight changed, its run block naming the base.
    moved = tmp_path / "moved"
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    with torch.no_grad():
        model.model.norm.weight.mul_(1.5)
    model.save_pretrained(moved)
    tok = AutoTokenizer.from_pretrained(tiny_model)
    tok.save_pretrained(moved)
    run = {**describe_model(str(moved), method="dpo"), "base_model": str(tiny_model)}
    path = evaluate_model(str(moved), ["preference_heldout"], out, run=run,
                          request=EvalRequest(model=str(moved), limit=8))[0]
    rec = read_result(path)
    mraw = json.loads((path.parent / rec["raw_output"]).read_text())["per_pair"]
    pair = heldout_pairs()[0]
    msgs = [{"role": "user", "content": pair["prompt"]}]
    prompt = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    text = tok.apply_chat_template(msgs + [{"role": "assistant", "content": pair["chosen"]}], tokenize=False)
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    full = tok(text, add_special_tokens=False)["input_ids"]
    assert full[: len(prompt_ids)] == prompt_ids and text.endswith(pair["chosen"] + "<|end|>\n")
    with torch.no_grad():  # the answer's summed log-prob, computed here by hand
        logits = model(torch.tensor([full])).logits[0, :-1].log_softmax(-1)
    hand = sum(logits[i - 1, full[i]].item() for i in range(len(prompt_ids), len(full)))
    assert mraw[0]["chosen_logp"] == pytest.approx(hand, abs=1e-4)
    assert mraw[0]["base_chosen_logp"] == pytest.approx(praw[0]["chosen_logp"], abs=1e-5)
    mby = {s["metric"]: s for s in rec["scores"]}
    want = sum(m["chosen_logp"] - b["chosen_logp"] for m, b in zip(mraw, praw)) / 8
    assert mby["delta_chosen_logp"]["value"] == pytest.approx(want, abs=1e-5) and abs(want) > 1e-3
    per_tok = sum((m["chosen_logp"] - b["chosen_logp"]) / m["chosen_tokens"] for m, b in zip(mraw, praw)) / 8
    assert mby["delta_chosen_logp_per_token"]["value"] == pytest.approx(per_tok, abs=1e-6)
