"""The Open LLM Leaderboard v1 tasks as lm-eval task YAMLs.

Every task here is a thin wrapper that ``include``s lm-eval's own installed task
file (prompts, metrics and filters stay lm-eval's) and pins the leaderboard's
shot count. Online, the wrapper keeps lm-eval's hub dataset. Offline, it points
``dataset_path: json`` at local files converted from the data directory
(HARNESS_DATA_DIR): MMLU, GSM8K, TruthfulQA, ARC-Challenge (test) and WinoGrande
(dev); HellaSwag, not available offline, uses the project's own small fixture.
ARC and WinoGrande have no train split offline: their few-shot examples are drawn
from the scored split itself, seeded, never the scored item (lm-eval excludes the
document when the few-shot split is the test split).

TruthfulQA MC2 is computed in log space (``harness.evaluation.metrics.mc2``) so it
is defined for every model; the arithmetic task lives in ``harness.evaluation.arithmetic``.
"""
from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from align.atomic import write_atomic

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass(frozen=True)
class OpenLLMTask:
    name: str  # lm-eval task (or group) name
    column: str  # leaderboard column
    shots: int
    metric: str  # lm-eval metric key without the filter
    filter: str = "none"
    upstream: str = ""  # lm-eval task file, relative to lm_eval/tasks


OPENLLM_V1 = [
    OpenLLMTask("arc_challenge", "ARC", 25, "acc_norm", upstream="arc/arc_challenge.yaml"),
    OpenLLMTask("hellaswag", "HellaSwag", 10, "acc_norm", upstream="hellaswag/hellaswag.yaml"),
    OpenLLMTask("mmlu", "MMLU", 5, "acc", upstream="mmlu/default"),
    # lm-eval reports the MC2 score under the name `acc`.
    OpenLLMTask("truthfulqa_mc2", "TruthfulQA", 0, "acc", upstream="truthfulqa/truthfulqa_mc2.yaml"),
    OpenLLMTask("winogrande", "Winogrande", 5, "acc", upstream="winogrande/default.yaml"),
    OpenLLMTask("gsm8k", "GSM8K", 5, "exact_match", "strict-match", upstream="gsm8k/gsm8k.yaml"),
]
TASKS = {t.name: t for t in OPENLLM_V1}

# Where each task's data comes from when offline (recorded in every result).
OFFLINE_SOURCES = {
    "arc_challenge": "HARNESS_DATA_DIR/arc_challenge/ARC-Challenge-Test.jsonl (the real test split; few-shot "
                     "examples from the same split, never the scored item: close to, not identical with, the "
                     "leaderboard's)",
    "hellaswag": "project fixture (authored items in the upstream schema; not the real benchmark)",
    "winogrande": "HARNESS_DATA_DIR/winogrande/dev.jsonl (the real dev split lm-eval scores; few-shot examples from "
                  "the same split, never the scored item: close to, not identical with, the leaderboard's)",
    "mmlu": "HARNESS_DATA_DIR/mmlu (hendrycks/test CSVs: dev for shots, test for scoring)",
    "gsm8k": "HARNESS_DATA_DIR/gsm8k (train for shots, test for scoring)",
    "truthfulqa_mc2": "HARNESS_DATA_DIR/truthfulqa/TruthfulQA.csv (MC2 targets built from Correct/Incorrect Answers)",
}
# Tasks whose few-shot examples come from the scored split offline (no train split in the data directory).
SAME_SPLIT_FEWSHOT = {"arc_challenge": "test", "winogrande": "validation"}
HUB_SOURCES = {"arc_challenge": "allenai/ai2_arc", "hellaswag": "Rowan/hellaswag", "winogrande": "allenai/winogrande",
               "mmlu": "cais/mmlu", "gsm8k": "openai/gsm8k", "truthfulqa_mc2": "truthfulqa/truthful_qa"}


class DataFileError(ValueError):
    """A malformed benchmark data file; the message names file, line and field."""


def lm_eval_tasks_dir() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent


def _jsonl(rows) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


# ---------------------------------------------------------------- converters
def mmlu_rows(csv_path: Path, subject: str) -> list[dict]:
    """Header-less MMLU CSV (question, A, B, C, D, answer) -> cais/mmlu rows."""
    rows = []
    with open(csv_path, newline="", encoding="utf-8") as fh:
        for line_no, rec in enumerate(csv.reader(fh), start=1):
            if len(rec) != 6:
                raise DataFileError(f"{csv_path}: line {line_no}: expected 6 fields (question,A,B,C,D,answer), got {len(rec)}")
            answer = rec[5].strip()
            if answer not in ("A", "B", "C", "D"):
                raise DataFileError(f"{csv_path}: line {line_no}: field 'answer': {answer!r} is not one of A, B, C, D")
            rows.append({"question": rec[0], "subject": subject, "choices": rec[1:5], "answer": "ABCD".index(answer)})
    return rows


def truthfulqa_rows(csv_path: Path) -> list[dict]:
    """TruthfulQA.csv -> truthful_qa 'multiple_choice' rows (best answer first, then other correct, then incorrect)."""
    out = []
    with open(csv_path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        for line_no, rec in enumerate(reader, start=2):
            for field in ("Question", "Best Answer", "Correct Answers", "Incorrect Answers"):
                if not (rec.get(field) or "").strip():
                    raise DataFileError(f"{csv_path}: line {line_no}: field '{field}' is empty")
            best = rec["Best Answer"].strip()
            correct = [best] + [a for a in _split(rec["Correct Answers"]) if a != best]
            incorrect = [a for a in _split(rec["Incorrect Answers"]) if a not in correct]
            if not incorrect:
                raise DataFileError(f"{csv_path}: line {line_no}: field 'Incorrect Answers': no answers")
            out.append({
                "question": rec["Question"].strip(),
                "mc1_targets": {"choices": [best, *incorrect], "labels": [1] + [0] * len(incorrect)},
                "mc2_targets": {"choices": correct + incorrect, "labels": [1] * len(correct) + [0] * len(incorrect)},
            })
    return out


def arc_rows(path: Path) -> list[dict]:
    """Upstream ARC JSONL (question{stem, choices[{text,label}]}, answerKey) -> allenai/ai2_arc rows."""
    out = []
    for line_no, rec in _json_lines(path):
        try:
            q = rec["question"]
            stem, choices, key = q["stem"], q["choices"], rec["answerKey"]
            texts, labels = [c["text"] for c in choices], [c["label"] for c in choices]
        except (KeyError, TypeError) as e:
            raise DataFileError(f"{path}: line {line_no}: field {e} is missing (ARC: id, question.stem, "
                                "question.choices[].text/label, answerKey)") from None
        if key not in labels:
            raise DataFileError(f"{path}: line {line_no}: field 'answerKey': {key!r} is not one of {labels}")
        out.append({"id": rec.get("id", str(line_no)), "question": stem, "choices": {"text": texts, "label": labels},
                    "answerKey": key})
    return out


def winogrande_rows(path: Path) -> list[dict]:
    """WinoGrande JSONL (qID, sentence, option1, option2, answer): checked, kept in lm-eval's (the hub's) schema."""
    out = []
    for line_no, rec in _json_lines(path):
        for field in ("sentence", "option1", "option2", "answer"):
            if not isinstance(rec.get(field), str):
                raise DataFileError(f"{path}: line {line_no}: field '{field}' is missing or not a string")
        if rec["answer"] not in ("1", "2"):
            raise DataFileError(f"{path}: line {line_no}: field 'answer': {rec['answer']!r} is not '1' or '2'")
        if "_" not in rec["sentence"]:
            raise DataFileError(f"{path}: line {line_no}: field 'sentence': no '_' blank")
        out.append({k: rec[k] for k in ("qID", "sentence", "option1", "option2", "answer") if k in rec})
    return out


def _json_lines(path: Path):
    from harness.judged.data import iter_jsonl

    if not path.is_file():
        raise DataFileError(f"{path}: not found (HARNESS_DATA_DIR layout: see README)")
    yield from iter_jsonl(path, DataFileError)


def _split(cell: str) -> list[str]:
    seen, out = set(), []
    for a in (x.strip() for x in cell.split(";")):
        if a and a not in seen:
            seen.add(a)
            out.append(a)
    return out


def mmlu_subjects(data_dir: Path) -> list[str]:
    return sorted(p.name[: -len("_test.csv")] for p in (data_dir / "mmlu" / "test").glob("*_test.csv"))


def _source_key(data_dir: Path) -> str:
    """Changes when any source file changes, so converted copies are rebuilt."""
    h = hashlib.sha256(str(data_dir.resolve()).encode())
    for sub in ("mmlu", "gsm8k", "truthfulqa", "arc_challenge", "winogrande"):
        for p in sorted((data_dir / sub).rglob("*")):
            if p.is_file():
                st = p.stat()
                h.update(f"{p.relative_to(data_dir)}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:12]


# ----------------------------------------------------------------- task YAMLs
def write_task_dir(out_dir: Path, tasks: list[str], data_dir: Path | None) -> Path:
    """Write wrapper YAMLs for ``tasks`` into ``out_dir``; offline when ``data_dir`` is given."""
    upstream = lm_eval_tasks_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    for p in out_dir.glob("*.yaml"):
        p.unlink()
    conv = out_dir / "data"
    for name in tasks:
        spec = TASKS[name]
        if name == "mmlu":
            _write_mmlu(out_dir, upstream / spec.upstream, data_dir, conv)
            continue
        cfg = {"include": str(upstream / spec.upstream), "task": name, "num_fewshot": spec.shots}
        if data_dir is not None:
            cfg.update(dataset_path="json", dataset_name=None, dataset_kwargs={"data_files": _offline_files(name, data_dir, conv)})
            if name in SAME_SPLIT_FEWSHOT:
                # Only the scored split exists: it is the test split and the few-shot split, so lm-eval leaves
                # the scored document out of its own context (samplers.ContextSampler.rm_eval_doc).
                split = SAME_SPLIT_FEWSHOT[name]
                cfg.update(training_split=None, validation_split=None, test_split=split, fewshot_split=split)
        text = yaml.safe_dump(cfg, sort_keys=True)
        if name == "truthfulqa_mc2":
            text += MC2_HOOK
            write_atomic(out_dir / f"{MC2_MODULE}.py", MC2_SHIM)
        write_atomic(out_dir / f"{name}.yaml", text)
    return out_dir


# lm-eval resolves `!function module.fn` to a file beside the YAML: a one-line shim into our metric.
MC2_MODULE = "harness_mc2"
MC2_HOOK = f"process_results: !function {MC2_MODULE}.process_results_mc2\n"
MC2_SHIM = "from harness.evaluation.metrics import process_results_mc2  # noqa: F401\n"


def _offline_files(name: str, data_dir: Path, conv: Path) -> dict:
    if name == "hellaswag":
        return {p.stem: str(p) for p in sorted((FIXTURES / name).glob("*.jsonl"))}
    if name == "arc_challenge":
        target = conv / "arc_challenge_test.jsonl"
        if not target.exists():
            write_atomic(target, _jsonl(arc_rows(data_dir / "arc_challenge" / "ARC-Challenge-Test.jsonl")))
        return {"test": str(target)}
    if name == "winogrande":
        target = conv / "winogrande_dev.jsonl"
        if not target.exists():
            write_atomic(target, _jsonl(winogrande_rows(data_dir / "winogrande" / "dev.jsonl")))
        return {"validation": str(target)}
    if name == "gsm8k":
        return {"train": str(data_dir / "gsm8k" / "train.jsonl"), "test": str(data_dir / "gsm8k" / "test.jsonl")}
    if name == "truthfulqa_mc2":
        target = conv / "truthfulqa_mc.jsonl"
        if not target.exists():
            write_atomic(target, _jsonl(truthfulqa_rows(data_dir / "truthfulqa" / "TruthfulQA.csv")))
        return {"validation": str(target)}
    raise KeyError(name)


def _write_mmlu(out_dir: Path, upstream_dir: Path, data_dir: Path | None, conv: Path) -> None:
    subjects = mmlu_subjects(data_dir) if data_dir is not None else sorted(
        p.stem[len("mmlu_"):] for p in upstream_dir.glob("mmlu_*.yaml"))
    if not subjects:
        raise DataFileError(f"{data_dir}/mmlu/test: no *_test.csv files")
    names = []
    for s in subjects:
        cfg = {"include": str(upstream_dir / f"mmlu_{s}.yaml"), "task": f"mmlu_{s}", "num_fewshot": TASKS["mmlu"].shots}
        if data_dir is not None:
            files = {}
            for split in ("dev", "test"):
                target = conv / "mmlu" / f"{s}_{split}.jsonl"
                if not target.exists():
                    write_atomic(target, _jsonl(mmlu_rows(data_dir / "mmlu" / split / f"{s}_{split}.csv", s)))
                files[split] = str(target)
            cfg.update(dataset_path="json", dataset_name=None, dataset_kwargs={"data_files": files})
        write_atomic(out_dir / f"mmlu_{s}.yaml", yaml.safe_dump(cfg, sort_keys=True))
        names.append(f"mmlu_{s}")
    # lm-eval's group score is weighted by subject size; the v1 leaderboard's is the plain mean (computed by us).
    group = {"group": "mmlu", "task": names, "aggregate_metric_list": [{"metric": "acc", "weight_by_size": True}],
             "metadata": {"version": 2}}
    write_atomic(out_dir / "_mmlu_group.yaml", yaml.safe_dump(group, sort_keys=True))


def prepare_tasks(tasks: list[str], data_dir: str | Path | None, cache_dir: Path) -> Path:
    """Task directory for ``TaskManager(include_path=..., include_defaults=False)``."""
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise KeyError(f"unknown Open LLM task(s) {unknown}; known: {', '.join(TASKS)}")
    if data_dir is None:
        return write_task_dir(cache_dir / "openllm-tasks" / "hub", tasks, None)
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data directory {data_dir} not found (set HARNESS_DATA_DIR)")
    key = "-".join(sorted(tasks)) if len(tasks) < 6 else "all"
    return write_task_dir(cache_dir / "openllm-tasks" / f"local-{_source_key(data_dir)}-{key}", tasks, data_dir)
