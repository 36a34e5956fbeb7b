"""`arithmetic`: a held-out task the default tiny model can move.

Problems of the same family as the tiny model's pre-training text and the default preference
pairs (``align.tiny.arithmetic_problem``), drawn from a seed of their own, with every question of
the default training pairs left out. Scored through lm-eval (``generate_until``, greedy) by exact
match of the last number in the answer, with lm-eval's standard error.

The prompt is the model's chat template when its tokenizer has one: the form in which the
preference pairs are trained (``align.encoding``); otherwise ``Question: ...\\nAnswer:``.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from harness.evaluation import BenchmarkOutput, EvalRequest, register_benchmark

TASK = "arithmetic_heldout"
N_ITEMS = 400  # enough for a 5-point difference to show against ~2.5-point standard errors
HELDOUT_SEED = 7_500_001  # the tiny model's corpus uses seed 0 and the default pairs seed 1
MAX_GEN_TOKS = 32  # "12 * 11 = 132. The answer is 132." is about 20 tokens


def training_questions() -> set[str]:
    from align.data import arithmetic_preference_pairs

    return {r["prompt"] for r in arithmetic_preference_pairs()}


def heldout_problems(n: int = N_ITEMS, seed: int = HELDOUT_SEED) -> list[dict]:
    """``n`` distinct problems, none a question of the default preference data."""
    import random

    from align.tiny import arithmetic_problem

    exclude, rng, rows, seen = training_questions(), random.Random(seed), [], set()
    while len(rows) < n:
        kind, question, _, result = arithmetic_problem(rng)
        if question in exclude or question in seen:
            continue
        seen.add(question)
        rows.append({"id": f"{TASK}-{len(rows):04d}", "source": kind, "question": question, "answer": str(result)})
    return rows


def task_config(data_file: Path, chat: bool) -> dict:
    return {
        "task": TASK, "dataset_path": "json", "dataset_name": None,
        "dataset_kwargs": {"data_files": {"test": str(data_file)}}, "test_split": "test",
        "output_type": "generate_until",
        "doc_to_text": "{{question}}" if chat else "Question: {{question}}\nAnswer:",
        "doc_to_target": "{{answer}}", "target_delimiter": " ",
        "generation_kwargs": {"until": ["\n\n", "Question:"], "do_sample": False, "max_gen_toks": MAX_GEN_TOKS},
        "filter_list": [{"name": "final-number", "filter": [
            {"function": "regex", "regex_pattern": r"(-?\d+)", "group_select": -1}, {"function": "take_first"}]}],
        "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
        "num_fewshot": 0, "metadata": {"version": 1, "n_items": N_ITEMS, "seed": HELDOUT_SEED},
    }


def prepare_task(cache_dir: Path, chat: bool) -> Path:
    from align.atomic import write_atomic
    from harness.evaluation.openllm_tasks import _jsonl

    rows = heldout_problems()
    text = _jsonl(rows)
    key = hashlib.sha256(text.encode()).hexdigest()[:12]
    out = cache_dir / "arithmetic-task" / f"{key}-{'chat' if chat else 'plain'}"
    data = out / "data" / "test.jsonl"
    if not data.exists():
        write_atomic(data, text)
    write_atomic(out / f"{TASK}.yaml", yaml.safe_dump(task_config(data, chat), sort_keys=True))
    return out


def has_chat_template(model: str) -> bool:
    from transformers import AutoTokenizer

    return bool(getattr(AutoTokenizer.from_pretrained(model), "chat_template", None))


@register_benchmark("arithmetic")
def run_arithmetic(req: EvalRequest) -> BenchmarkOutput:
    from align.cache import cache_root
    from harness.evaluation.openllm import per_item_scores, run_lm_eval, task_score
    from harness.evaluation.openllm_tasks import OpenLLMTask

    chat = req.chat_template or has_chat_template(req.model)
    task_dir = prepare_task(cache_root(), chat)
    out, model, model_args, run_args = run_lm_eval(req, [TASK], task_dir, chat_template=chat)
    spec = OpenLLMTask(TASK, "Arithmetic", 0, "exact_match", "final-number")
    score = task_score(out["results"], out.get("n-samples", {}), out.get("n-shot", {}), spec)
    conventions = {
        "suite": "held-out arithmetic (this project)",
        "task": f"{N_ITEMS} problems from seed {HELDOUT_SEED} (align.tiny.arithmetic_problem), none a question of "
                "the default preference pairs; greedy, exact match of the last number in the answer",
        "chat_template": chat,
        "prompt": "the model's chat template (the form the preference pairs are trained in)" if chat
                  else "'Question: ...\\nAnswer:' (the tokenizer has no chat template)",
        "limit": req.limit,
        "data_sources": {TASK: "generated at run time (align.tiny.arithmetic_problem)"},
        "comparable_to_published": False,
        "settings": _settings(req),
    }
    backend = {"name": req.backend, "lm_eval_model": model,
               "model_args": {k: v for k, v in model_args.items() if k != "pretrained"}, **run_args}
    raw = {k: v for k, v in out.items() if k not in ("configs", "samples")}
    raw["per_item"] = per_item_scores(out, [spec])
    return BenchmarkOutput(scores=[score], conventions=conventions, backend=backend, raw=raw)


def _settings(req: EvalRequest) -> dict:
    return {"limit": req.limit, "chat_template": bool(req.chat_template), "n_items": N_ITEMS, "seed": HELDOUT_SEED}


run_arithmetic.settings = _settings
