"""Where benchmark files come from: a data directory first, then (online only) upstream.

Layout of the data directory mirrors upstream (see /work/shared/data/README.md):
``mt_bench/`` (FastChat), ``alpaca_eval/``, ``arena_hard/`` (arena-hard-auto). Nothing here is
bundled with the project: prompts and questions are read at run time.
"""
from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

FASTCHAT = "https://raw.githubusercontent.com/lm-sys/FastChat/main/fastchat/llm_judge/data/"
ARENA = "https://raw.githubusercontent.com/lmarena/arena-hard-auto/main/"
ALPACA = "https://raw.githubusercontent.com/tatsu-lab/alpaca_eval/main/"

# relative path in the data dir -> upstream URL (for users with network access)
UPSTREAM = {
    "mt_bench/question.jsonl": FASTCHAT + "mt_bench/question.jsonl",
    "mt_bench/judge_prompts.jsonl": FASTCHAT + "judge_prompts.jsonl",
    "mt_bench/reference_answer/gpt-4.jsonl": FASTCHAT + "mt_bench/reference_answer/gpt-4.jsonl",
    "arena_hard/arena-hard-v0.1/question.jsonl": ARENA + "data/arena-hard-v0.1/question.jsonl",
    "arena_hard/arena-hard-v0.1/model_answer/gpt-4-0314.jsonl": ARENA + "data/arena-hard-v0.1/model_answer/gpt-4-0314.jsonl",
    "arena_hard/arena-hard-v2.0/question.jsonl": ARENA + "data/arena-hard-v2.0/question.jsonl",
    "arena_hard/arena-hard-v2.0/model_answer/o3-mini-2025-01-31.jsonl":
        ARENA + "data/arena-hard-v2.0/model_answer/o3-mini-2025-01-31.jsonl",
    "arena_hard/arena-hard-v2.0/model_answer/gemini-2.0-flash-001.jsonl":
        ARENA + "data/arena-hard-v2.0/model_answer/gemini-2.0-flash-001.jsonl",
    # v2.0's per-category judge system prompts live in upstream code, not in its config
    "arena_hard/judge_utils.py": ARENA + "utils/judge_utils.py",
    "arena_hard/judge_config_v0.1_2024.yaml":
        "https://raw.githubusercontent.com/lmarena/arena-hard-auto/0489bf384abd010906014dec7b903f7c438eabba/config/judge_config.yaml",
    "arena_hard/arena-hard-v0.1.yaml": ARENA + "config/arena-hard-v0.1.yaml",
    "arena_hard/arena-hard-v2.0.yaml": ARENA + "config/arena-hard-v2.0.yaml",
    "alpaca_eval/reference_outputs/gpt4_1106_preview.json": ALPACA + "results/gpt4_1106_preview/model_outputs.json",
    "alpaca_eval/weighted_alpaca_eval_gpt4_turbo/configs.yaml":
        ALPACA + "src/alpaca_eval/evaluators_configs/weighted_alpaca_eval_gpt4_turbo/configs.yaml",
    "alpaca_eval/weighted_alpaca_eval_gpt4_turbo/alpaca_eval_clf.txt":
        ALPACA + "src/alpaca_eval/evaluators_configs/alpaca_eval_clf_gpt4_turbo/alpaca_eval_clf.txt",
}
# AlpacaEval's length-control inputs live in the hub dataset tatsu-lab/alpaca_eval
HUB_ALPACA = {"alpaca_eval/df_gamed.csv": "df_gamed.csv",
              "alpaca_eval/instruction_difficulty.csv": "instruction_difficulty.csv"}


class DataError(ValueError):
    """Missing or malformed benchmark data; the message names the file (and line/field)."""


def data_root(data_dir: str | Path | None = None) -> Path | None:
    d = data_dir or os.environ.get("HARNESS_DATA_DIR")
    return Path(d) if d else None


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def _cache_dir() -> Path:
    return Path(os.environ.get("HARNESS_CACHE") or Path.home() / ".cache" / "pref-harness") / "judged-data"


def find(rel: str, data_dir: str | Path | None = None, required: bool = True) -> Path | None:
    """Path of a benchmark file: data dir, then download cache, then upstream (unless offline)."""
    root = data_root(data_dir)
    if root is not None and (root / rel).exists():
        return root / rel
    cached = _cache_dir() / rel
    if cached.exists():
        return cached
    if not offline() and (rel in UPSTREAM or rel in HUB_ALPACA):
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            if rel in HUB_ALPACA:
                from huggingface_hub import hf_hub_download

                src = hf_hub_download("tatsu-lab/alpaca_eval", HUB_ALPACA[rel], repo_type="dataset")
                cached.write_bytes(Path(src).read_bytes())
            else:
                tmp = cached.with_suffix(cached.suffix + ".part")
                urllib.request.urlretrieve(UPSTREAM[rel], tmp)
                tmp.replace(cached)
            return cached
        except Exception as e:  # noqa: BLE001 - reported below with the file name
            reason = f"download failed: {e}"
    else:
        reason = "offline (HF_HUB_OFFLINE=1)" if offline() else "no upstream source known"
    if not required:
        return None
    where = f"{root / rel}" if root else f"$HARNESS_DATA_DIR/{rel} (HARNESS_DATA_DIR is not set)"
    raise DataError(f"benchmark file not found: {where}; {reason}")


def iter_jsonl(path: Path, error: type[Exception] = DataError):
    """(line number, object) for each non-blank line; a line that is not a JSON object raises ``error``
    naming file and line. The one JSONL reader of the benchmark data (judged and Open LLM files)."""
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise error(f"{path}: line {lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise error(f"{path}: line {lineno}: not a JSON object")
            yield lineno, rec


def read_jsonl(path: Path, required_fields: tuple[str, ...] = ()) -> list[dict]:
    out = []
    for lineno, rec in iter_jsonl(path):
        for f in required_fields:
            if f not in rec:
                raise DataError(f"{path}: line {lineno}: missing field '{f}'")
        out.append(rec)
    return out


def read_json(path: Path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from None
