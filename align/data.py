"""Preference data: load, normalise and validate (prompt, chosen, rejected) pairs.

Accepted inputs (one ``--data`` SPEC each; several may be given):
  * a local ``.jsonl``, ``.jsonl.gz``, ``.json`` or ``.parquet`` file;
  * ``NAME=PATH`` to set the pair's ``source`` (default: the file stem);
  * ``hf:ORG/NAME[:SPLIT]`` (or any ``ORG/NAME`` that is not a local path) for a hub dataset.

Row shapes, normalised to ``PreferencePair``:
  * ``prompt``/``chosen``/``rejected`` strings;
  * conversational: ``chosen``/``rejected`` as message lists (UltraFeedback-binarized
    style, the prompt repeated inside them) or ``prompt`` as a message list and
    ``chosen``/``rejected`` as the answer messages (TRL style);
  * raw HH-RLHF: only ``chosen``/``rejected`` dialogues (``\\n\\nHuman: ... \\n\\nAssistant: ...``),
    split at the last assistant turn the two share.

Every problem is reported as ``FILE:LINE: field 'F': what is wrong``.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

Message = dict


class DataError(ValueError):
    """Invalid preference data; the message names file, line and field."""


@dataclass
class PreferencePair:
    prompt: list[Message]  # the conversation up to the answer; last message is the user's
    chosen: str
    rejected: str
    source: str
    origin: str  # "FILE:LINE", for error messages


@dataclass
class LoadReport:
    n_loaded: int = 0
    n_skipped: int = 0
    errors: list[str] = field(default_factory=list)
    per_source: dict[str, int] = field(default_factory=dict)
    n_duplicates: int = 0  # pairs repeating an earlier one (same prompt, chosen and rejected)
    n_deduped: int = 0  # of those, dropped (dedupe=True)
    duplicate_example: str | None = None  # "FILE:LINE repeats FILE:LINE", for the warning


# ---------------------------------------------------------------- reading rows
def _read_rows(path: Path):
    """Yield (line_number, row_or_exception). Rows that do not parse yield the error."""
    name = path.name
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        for i, row in enumerate(pq.read_table(path).to_pylist(), start=1):
            yield i, row
        return
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        yield line, DataError(f"{path}:{line}: not valid UTF-8 (byte {raw[e.start]:#x} at offset {e.start})")
        return
    if name.endswith(".json") or name.endswith(".json.gz"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            yield e.lineno, DataError(f"{path}:{e.lineno}: bad JSON: {e.msg}")
            return
        if isinstance(data, dict) and "data" in data:
            data = data["data"]
        if not isinstance(data, list):
            yield 1, DataError(f"{path}:1: expected a JSON list of objects, got {type(data).__name__}")
            return
        for i, row in enumerate(data, start=1):
            yield i, row  # for a JSON array, "line" is the 1-based record index
        return
    # JSONL lines end at "\n" only: splitlines() would also cut at U+2028 inside strings.
    for i, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            yield i, json.loads(line)
        except json.JSONDecodeError as e:
            yield i, DataError(f"{path}:{i}: bad JSON: {e.msg} (column {e.colno})")


# ------------------------------------------------------------ normalising rows
_HH_TURN = re.compile(r"\n\n(Human|Assistant): ")


def split_hh_dialogue(chosen: str, rejected: str) -> tuple[list[Message], str, str]:
    """Split two HH-RLHF dialogues at the last assistant turn they share.

    Returns (prompt messages, chosen answer, rejected answer). The shared prefix
    ends right after the final ``\\n\\nAssistant: `` marker both dialogues have.
    """
    marker = "\n\nAssistant: "
    common = 0
    for a, b in zip(chosen, rejected):
        if a != b:
            break
        common += 1
    cut = chosen.rfind(marker, 0, common + 1)
    if cut < 0 or not chosen.startswith(marker, cut) or not rejected.startswith(marker, cut):
        raise ValueError("no shared '\\n\\nAssistant: ' turn")
    prefix = chosen[:cut]
    messages = []
    parts = _HH_TURN.split(prefix)
    # parts = [leading, role, text, role, text, ...]
    for role, content in zip(parts[1::2], parts[2::2]):
        messages.append({"role": "user" if role == "Human" else "assistant", "content": content.strip()})
    if not messages or messages[-1]["role"] != "user":
        raise ValueError("the shared prefix does not end with a Human turn")
    start = cut + len(marker)
    return messages, chosen[start:].strip(), rejected[start:].strip()


def _check_messages(value, where: str, fname: str) -> list[Message]:
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: field '{fname}': expected a non-empty list of messages")
    for j, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise DataError(f"{where}: field '{fname}[{j}]': expected {{'role': str, 'content': str}}")
    return value


def _answer_text(value, where: str, fname: str) -> str:
    """The final assistant answer inside a string or a message list."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        msgs = _check_messages(value, where, fname)
        if msgs[-1]["role"] != "assistant":
            raise DataError(f"{where}: field '{fname}': last message must be the assistant's, got '{msgs[-1]['role']}'")
        return msgs[-1]["content"]
    raise DataError(f"{where}: field '{fname}': expected a string or a list of messages, got {type(value).__name__}")


def normalise_row(row, source: str, where: str) -> PreferencePair:
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    for f in ("chosen", "rejected"):
        if f not in row or row[f] is None:
            raise DataError(f"{where}: field '{f}': missing")
    chosen, rejected, prompt = row["chosen"], row["rejected"], row.get("prompt")

    if prompt is None:
        if isinstance(chosen, str) and isinstance(rejected, str):
            if "\n\nAssistant: " not in chosen:
                raise DataError(f"{where}: field 'prompt': missing (and 'chosen' is not an HH-RLHF dialogue)")
            try:
                prompt_msgs, chosen, rejected = split_hh_dialogue(chosen, rejected)
            except ValueError as e:
                raise DataError(f"{where}: field 'chosen': cannot split HH-RLHF dialogue: {e}") from None
        elif isinstance(chosen, list) and isinstance(rejected, list):
            c = _check_messages(chosen, where, "chosen")
            _check_messages(rejected, where, "rejected")
            prompt_msgs = c[:-1]
            if not prompt_msgs:
                raise DataError(f"{where}: field 'prompt': missing and 'chosen' holds only the answer")
            chosen = _answer_text(chosen, where, "chosen")
            rejected = _answer_text(rejected, where, "rejected")
        else:
            raise DataError(f"{where}: field 'prompt': missing")
    else:
        if isinstance(prompt, str):
            prompt_msgs = [{"role": "user", "content": prompt}]
        elif isinstance(prompt, list):
            prompt_msgs = _check_messages(prompt, where, "prompt")
        else:
            raise DataError(f"{where}: field 'prompt': expected a string or a list of messages, got {type(prompt).__name__}")
        chosen = _answer_text(chosen, where, "chosen")
        rejected = _answer_text(rejected, where, "rejected")

    if not any(m["content"].strip() for m in prompt_msgs):
        raise DataError(f"{where}: field 'prompt': empty")
    for f, v in (("chosen", chosen), ("rejected", rejected)):
        if not v.strip():
            raise DataError(f"{where}: field '{f}': empty")
    for j, m in enumerate(prompt_msgs):
        _check_unicode(m["content"], where, f"prompt[{j}]" if isinstance(prompt, list) or prompt is None else "prompt")
    _check_unicode(chosen, where, "chosen")
    _check_unicode(rejected, where, "rejected")
    if chosen == rejected:
        raise DataError(f"{where}: field 'rejected': identical to 'chosen'")
    if same_apart_from_whitespace(chosen, rejected):
        raise DataError(f"{where}: field 'rejected': identical to 'chosen' apart from whitespace")
    return PreferencePair(prompt_msgs, chosen, rejected, source, where)


def same_apart_from_whitespace(a: str, b: str) -> bool:
    """Equal once leading, trailing and repeated whitespace is ignored: no preference to learn."""
    return a.split() == b.split()


def _check_unicode(text: str, where: str, fname: str) -> None:
    """JSON can hold lone surrogates ("\\ud800"); no tokenizer can encode them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise DataError(f"{where}: field '{fname}': not valid Unicode text (lone surrogate "
                        f"\\u{ord(text[e.start]):04x} at character {e.start})") from None


# ------------------------------------------------------------------- loading
def parse_spec(spec: str) -> tuple[str | None, str]:
    """'NAME=PATH' -> (NAME, PATH); 'PATH' -> (None, PATH)."""
    if "=" in spec and not Path(spec).exists():
        name, _, target = spec.partition("=")
        return name.strip(), target.strip()
    return None, spec


def _source_name(target: str) -> str:
    name = Path(target).name
    for suffix in (".gz", ".jsonl", ".json", ".parquet"):
        name = name.removesuffix(suffix)
    return name


def _hub_rows(target: str):
    from datasets import load_dataset

    repo = target.removeprefix("hf:")
    split = "train"
    if repo.count(":") == 1:
        repo, split = repo.split(":")
    try:
        ds = load_dataset(repo, split=split)
    except Exception as e:  # hub errors come in many types; all mean "this spec cannot be read"
        raise DataError(f"{target}: cannot load hub dataset '{repo}' (split '{split}'): {type(e).__name__}: {e}") from None
    return enumerate(ds, start=1)  # loaded eagerly: a hub failure is the spec's error, never a skipped row


_DATA_SUFFIXES = (".jsonl", ".json", ".parquet", ".gz", ".csv")


def _rows_for(target: str):
    """(rows, label) for one spec target, or a DataError at once when it cannot be read."""
    from align.hub import dataset_cached, looks_like_repo_id, offline

    path = Path(target)
    if path.is_dir():
        raise DataError(f"{target}: is a directory; --data takes a .jsonl, .json or .parquet file (or a hub dataset)")
    if path.exists():
        return _read_rows(path), str(path)
    repo = target.removeprefix("hf:")
    if repo.count(":") == 1:
        repo = repo.split(":")[0]
    hub_like = target.startswith("hf:") or (looks_like_repo_id(repo) and "/" in repo)
    if not hub_like or (not target.startswith("hf:") and target.lower().endswith(_DATA_SUFFIXES)):
        raise DataError(f"{target}: no such file (relative paths start from {Path.cwd()})")
    if offline() and not dataset_cached(repo):
        raise DataError(f"{target}: no such file, and no hub dataset '{repo}' in the local cache "
                        "(offline: HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set)")
    return _hub_rows(target), target


def _drop_duplicates(pairs: list[PreferencePair], report: LoadReport, dedupe: bool) -> list[PreferencePair]:
    """Count pairs that repeat an earlier one (prompt, chosen and rejected equal); drop them if asked."""
    seen: dict[str, str] = {}
    kept = []
    for p in pairs:
        key = json.dumps([p.prompt, p.chosen, p.rejected], ensure_ascii=False)
        if key in seen:
            report.n_duplicates += 1
            report.duplicate_example = report.duplicate_example or f"{p.origin} repeats {seen[key]}"
            if dedupe:
                report.n_deduped += 1
                report.per_source[p.source] -= 1
                continue
        else:
            seen[key] = p.origin
        kept.append(p)
    return kept


def load_preference_data(specs: list[str], *, skip_invalid: bool = False,
                         dedupe: bool = False) -> tuple[list[PreferencePair], LoadReport]:
    """Load every spec. Invalid rows raise ``DataError`` unless ``skip_invalid``.
    Duplicate pairs are counted in the report, and dropped with ``dedupe``."""
    pairs: list[PreferencePair] = []
    report = LoadReport()
    for spec in specs:
        name, target = parse_spec(spec)
        rows, label = _rows_for(target)
        source = name or _source_name(target)
        n_before = len(pairs)
        for line, row in rows:
            try:
                if isinstance(row, Exception):
                    raise row
                pairs.append(normalise_row(row, source, f"{label}:{line}"))
            except DataError as e:
                if not skip_invalid:
                    raise
                report.n_skipped += 1
                report.errors.append(str(e))
        if len(pairs) == n_before and not skip_invalid:
            raise DataError(f"{label}:1: no preference pairs found")
        report.per_source[source] = report.per_source.get(source, 0) + len(pairs) - n_before
    pairs = _drop_duplicates(pairs, report, dedupe)
    report.n_loaded = len(pairs)
    if not pairs:
        raise DataError(f"{', '.join(specs)}: no valid preference pairs ({report.n_skipped} skipped)")
    return pairs, report


def fingerprint_pairs(pairs: list[PreferencePair]) -> str:
    h = hashlib.sha256()
    for p in pairs:
        h.update(json.dumps([p.prompt, p.chosen, p.rejected, p.source], ensure_ascii=False).encode())
    return h.hexdigest()[:16]


# ------------------------------------------------- the default generated data
def arithmetic_preference_pairs(n: int = 256, seed: int = 1) -> list[dict]:
    """The project's own preference data for the tiny default: correct against a
    plausible wrong worked answer, one ``source`` per operation (sDPO needs several)."""
    import random

    from align.tiny import arithmetic_problem

    rng = random.Random(seed)
    rows = []
    while len(rows) < n:
        source, question, answer, result = arithmetic_problem(rng)
        wrong = result + rng.choice([-10, -2, -1, 1, 2, 10])
        head = answer.split(" = ")[0]
        rejected = f"{head} = {wrong}. The answer is {wrong}."
        rows.append({"prompt": question, "chosen": answer, "rejected": rejected, "source": source})
    return rows


def write_jsonl(rows: list[dict], path: str | Path) -> Path:
    """Atomic JSONL write."""
    from align.atomic import write_atomic

    return write_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def default_preference_data() -> list[str]:
    """Specs for the embedded default: one JSONL per source, generated once."""
    from align.cache import cache_root

    root = cache_root() / "arithmetic-prefs"
    rows = arithmetic_preference_pairs()
    specs = []
    for source in ("addition", "subtraction", "multiplication"):
        path = root / f"{source}.jsonl"
        if not path.exists():
            write_jsonl([{k: v for k, v in r.items() if k != "source"} for r in rows if r["source"] == source], path)
        specs.append(f"{source}={path}")
    return specs
