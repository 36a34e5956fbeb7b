"""Preference-data builders for the papers' datasets, from raw files in a data directory.

  * ``gsm8k_corrupt``: MetaMath-style low-edit-distance pairs, as in the DPOP paper
    (Pal et al. 2024). Chosen = the GSM8K solution; rejected = the same solution with
    one intermediate calculation result changed (the ``c`` of a ``<<a*b=c>>c`` step, in
    the annotation and in the text right after it). The last calculation and the
    ``#### N`` line are never touched, so the final answer stays right.
  * ``mc_pairs``: a multiple-choice set (header-less CSV: question,A,B,C,D,answer, as
    MMLU ships) turned into pairs, the correct option against each wrong one: how the
    DPOP paper built its ARC and HellaSwag pairs. These differ in most characters (the
    high-edit-distance contrast).
  * ``hh_rlhf``: raw Anthropic HH-RLHF dialogues split at the last shared assistant
    turn (``align.data.split_hh_dialogue``).
  * ``arithmetic_short``: generated, no input file. Short worked answers ``a op b = c. The
    answer is c.`` against the same with the final ``c`` off by 1-3: low edit distance like
    ``gsm8k_corrupt``, but a dozen tokens, so a model that has learnt the format has a large
    margin per token.

Every builder is deterministic for a given seed (the only randomness: which step is
corrupted, by how much, and the optional ``limit`` sample), writes JSONL atomically,
loads the file back through ``align.data.load_preference_data`` and returns a report
with counts, reject reasons and the mean normalised edit distance between chosen and
rejected (Levenshtein distance over characters / length of the longer one).
"""
from __future__ import annotations

import csv
import gzip
import json
import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from align.atomic import write_json_atomic
from align.data import DataError, load_preference_data, same_apart_from_whitespace, split_hh_dialogue, write_jsonl


# -------------------------------------------------------------- edit distance
def levenshtein(a, b) -> int:
    """Edit distance between two sequences (characters of strings, or word lists). A common prefix and suffix never change it, so they
    are stripped first: a one-number corruption costs a few cells, not len(a)*len(b)."""
    start = 0
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    end = 0
    while end < min(len(a), len(b)) - start and a[-1 - end] == b[-1 - end]:
        end += 1
    a, b = a[start : len(a) - end], b[start : len(b) - end]
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        cur = [i]
        for j, cb in enumerate(b, start=1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def normalised_edit_distance(a, b) -> float:
    return levenshtein(a, b) / max(len(a), len(b), 1)


def word_edit_distance(a: str, b: str) -> float:
    """Normalised edit distance over whitespace-separated words."""
    return normalised_edit_distance(a.split(), b.split())


# ------------------------------------------------------------------- reports
@dataclass
class BuildReport:
    builder: str
    inputs: list[str]
    output: str
    seed: int
    n_read: int = 0
    n_pairs: int = 0
    rejects: dict[str, int] = field(default_factory=dict)
    mean_edit_distance: float | None = None
    """Characters: Levenshtein / length of the longer answer, averaged over pairs."""
    mean_word_edit_distance: float | None = None
    """The same over whitespace-separated words."""

    def reject(self, reason: str) -> None:
        self.rejects[reason] = self.rejects.get(reason, 0) + 1

    def to_dict(self) -> dict:
        return asdict(self)


def _finish(rows: list[dict], report: BuildReport, output: str | Path, limit: int | None, seed: int) -> BuildReport:
    """Sample (optional), write, read back through the validator, fill in the report."""
    if limit is not None and limit < len(rows):
        keep = sorted(random.Random(seed).sample(range(len(rows)), limit))
        report.rejects["not sampled (limit)"] = len(rows) - limit
        rows = [rows[i] for i in keep]
    if not rows:
        raise DataError(f"{', '.join(report.inputs)}: no pairs could be built ({report.rejects})")
    path = write_jsonl(rows, output)
    pairs, load = load_preference_data([str(path)])
    if len(pairs) != len(rows):  # cannot happen unless the builder and the loader disagree
        raise DataError(f"{path}: wrote {len(rows)} pairs but {len(pairs)} load back")
    report.n_pairs = len(rows)
    report.mean_edit_distance = sum(normalised_edit_distance(p.chosen, p.rejected) for p in pairs) / len(pairs)
    report.mean_word_edit_distance = sum(word_edit_distance(p.chosen, p.rejected) for p in pairs) / len(pairs)
    sidecar = Path(str(path).removesuffix(".jsonl") + ".report.json")
    write_json_atomic(sidecar, report.to_dict())
    return report


def _read_jsonl(path: Path):
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield line_no, json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{line_no}: bad JSON: {e.msg}") from None


def _require(row, fields: tuple[str, ...], where: str) -> None:
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object")
    for f in fields:
        if not isinstance(row.get(f), str) or not row[f].strip():
            raise DataError(f"{where}: field '{f}': missing or not a non-empty string")


# ------------------------------------------------------------- gsm8k-corrupt
CALCULATION = re.compile(r"<<([^<>=]*)=([^<>]*)>>")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def corrupt_number(text: str, rng: random.Random) -> str | None:
    """A nearby wrong value written the same way (same decimals, same sign unless 0)."""
    if not NUMBER.fullmatch(text):
        return None
    decimals = len(text.split(".")[1]) if "." in text else 0
    unit = 10**-decimals
    value = float(text)
    for _ in range(10):
        new = value + rng.choice([-3, -2, -1, 1, 2, 3]) * unit
        if value >= 0 and new < 0:
            new = value + abs(new - value)
        out = f"{new:.{decimals}f}"
        if out != text:
            return out
    return None


def corrupt_solution(answer: str, rng: random.Random) -> tuple[str, dict] | str:
    """The rejected solution and what was changed, or a reject reason."""
    calcs = list(CALCULATION.finditer(answer))
    if "####" not in answer:
        return "no '#### answer' line"
    candidates = [m for m in calcs[:-1] if answer.startswith(m.group(2), m.end()) and NUMBER.fullmatch(m.group(2))]
    if not candidates:
        return "no intermediate calculation to corrupt" if len(calcs) < 2 else "no numeric intermediate result"
    m = rng.choice(candidates)
    result = m.group(2)
    new = corrupt_number(result, rng)
    if new is None:
        return "result cannot be corrupted"
    after = m.end() + len(result)
    rejected = answer[: m.start(2)] + new + ">>" + new + answer[after:]
    return rejected, {"step": calcs.index(m) + 1, "n_steps": len(calcs), "original": result, "corrupted": new}


def gsm8k_corrupt(input_path: str | Path, output: str | Path, *, seed: int = 0, limit: int | None = None) -> BuildReport:
    input_path = Path(input_path)
    report = BuildReport("gsm8k-corrupt", [str(input_path)], str(output), seed)
    rows = []
    for line, row in _read_jsonl(input_path):
        report.n_read += 1
        where = f"{input_path}:{line}"
        _require(row, ("question", "answer"), where)
        out = corrupt_solution(row["answer"], random.Random(f"{seed}:{line}"))
        if isinstance(out, str):
            report.reject(out)
            continue
        rejected, change = out
        assert rejected.split("####")[-1] == row["answer"].split("####")[-1]  # final answer untouched
        rows.append({"prompt": row["question"], "chosen": row["answer"], "rejected": rejected,
                     "id": f"{input_path.name}:{line}", **{f"corrupted_{k}": v for k, v in change.items()}})
    return _finish(rows, report, output, limit, seed)


# ------------------------------------------------------------------ mc-pairs
def _csv_files(inputs) -> list[Path]:
    files = []
    for p in map(Path, inputs):
        if p.is_dir():
            files.extend(sorted(p.glob("*.csv")))
        elif p.exists():
            files.append(p)
        else:
            raise DataError(f"{p}: no such file or directory")
    if not files:
        raise DataError(f"{', '.join(map(str, inputs))}: no CSV files")
    return files


def mc_pairs(inputs: list[str | Path], output: str | Path, *, seed: int = 0, limit: int | None = None,
             with_options: bool = False) -> BuildReport:
    """Header-less CSV rows ``question,A,B,C,D,answer`` -> up to 3 pairs each.

    The prompt is the question (with the lettered options listed if ``with_options``);
    answers are option texts, so chosen and rejected share little text.
    """
    files = _csv_files(inputs)
    report = BuildReport("mc-pairs", [str(p) for p in inputs], str(output), seed)
    rows = []
    for f in files:
        subject = re.sub(r"_(dev|val|test)$", "", f.stem)
        with open(f, newline="", encoding="utf-8") as fh:
            for line, rec in enumerate(csv.reader(fh), start=1):
                report.n_read += 1
                where = f"{f}:{line}"
                if len(rec) != 6:
                    raise DataError(f"{where}: expected 6 columns (question,A,B,C,D,answer), got {len(rec)}")
                question, options, answer = rec[0].strip(), [o.strip() for o in rec[1:5]], rec[5].strip().upper()
                if answer not in "ABCD" or len(answer) != 1:
                    raise DataError(f"{where}: field 'answer': expected one of A, B, C, D, got {rec[5]!r}")
                if not question:
                    raise DataError(f"{where}: field 'question': empty")
                correct = options["ABCD".index(answer)]
                if not correct:
                    report.reject("correct option empty")
                    continue
                prompt = question
                if with_options:
                    prompt += "\n" + "\n".join(f"{k}. {o}" for k, o in zip("ABCD", options))
                for letter, wrong in zip("ABCD", options):
                    if letter == answer:
                        continue
                    if not wrong:
                        report.reject("wrong option empty")
                    elif same_apart_from_whitespace(wrong, correct):
                        report.reject("wrong option identical to the correct one")
                    else:
                        rows.append({"prompt": prompt, "chosen": correct, "rejected": wrong, "subject": subject,
                                     "id": f"{f.name}:{line}:{letter}"})
    return _finish(rows, report, output, limit, seed)


# -------------------------------------------------------------------- hh-rlhf
def hh_rlhf(input_path: str | Path, output: str | Path, *, seed: int = 0, limit: int | None = None) -> BuildReport:
    input_path = Path(input_path)
    report = BuildReport("hh-rlhf", [str(input_path)], str(output), seed)
    rows = []
    for line, row in _read_jsonl(input_path):
        report.n_read += 1
        _require(row, ("chosen", "rejected"), f"{input_path}:{line}")
        try:
            prompt, chosen, rejected = split_hh_dialogue(row["chosen"], row["rejected"])
        except ValueError as e:
            report.reject(f"cannot split: {e}")
            continue
        if not chosen or not rejected:
            report.reject("empty answer")
        elif same_apart_from_whitespace(chosen, rejected):
            report.reject("chosen identical to rejected")
        else:
            rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected, "id": f"{input_path.name}:{line}"})
    return _finish(rows, report, output, limit, seed)


# --------------------------------------------------------- arithmetic-short
def arithmetic_short(output: str | Path, *, n: int = 256, seed: int = 0) -> BuildReport:
    """``n`` generated problems of the tiny model's arithmetic family (``align.tiny.arithmetic_problem``).

    chosen = the worked answer ``"a op b = c. The answer is c."``; rejected = the same with the
    final ``c`` changed by ±1-3 (``corrupt_number``, never negative): one number of a ~14-token
    answer, inconsistent with the line before it, as gsm8k-corrupt's later steps are with the
    changed result. The ``operation`` field names the operation."""
    from align.tiny import arithmetic_problem

    rng = random.Random(seed)
    report = BuildReport("arithmetic-short", [], str(output), seed)
    rows = []
    while len(rows) < n:
        operation, question, answer, result = arithmetic_problem(rng)
        report.n_read += 1
        head = answer[: answer.rindex(str(result))]  # "a op b = c. The answer is "
        rows.append({"prompt": question, "chosen": answer, "rejected": f"{head}{corrupt_number(str(result), rng)}.",
                     "operation": operation, "id": f"arithmetic-short:{seed}:{len(rows)}"})
    return _finish(rows, report, output, None, seed)


BUILDERS = {"gsm8k-corrupt": gsm8k_corrupt, "mc-pairs": mc_pairs, "hh-rlhf": hh_rlhf}
