"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every file the project writes as a whole (results, run.json, caches, tables, plots) goes through
``write_atomic``. The temporary name is unique per process, thread and call, so two processes writing
the same file (the ranks of an ``accelerate launch``, two runs sharing a cache) never rename each
other's half-written temp file.
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
import uuid
from pathlib import Path
from typing import BinaryIO, Callable


def write_atomic(path: str | Path, content: str | bytes | Callable[[BinaryIO], None], *, fsync: bool = True) -> Path:
    """Write ``content`` (text as UTF-8, bytes, or a function that writes to a binary file) to ``path``:
    a temp file beside it, flushed (and fsynced), then renamed over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as fh:
            if callable(content):
                content(fh)
            else:
                fh.write(content.encode("utf-8") if isinstance(content, str) else content)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def write_json_atomic(path: str | Path, obj, *, indent: int | None = 2, **dump_kw) -> Path:
    """``obj`` as JSON (``default=str`` unless given), atomically."""
    dump_kw.setdefault("default", str)
    return write_atomic(path, json.dumps(obj, indent=indent, **dump_kw))
