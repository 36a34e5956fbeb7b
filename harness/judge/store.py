"""Append-only JSONL: each record is one unbuffered ``write`` (so a killed process never loses a written
record) followed by fsync (so an OS crash or power loss does not either).

fsync is group-committed: a background thread fsyncs whenever records were written since its last fsync,
so many judgments finishing together share one fsync instead of queueing behind one each. ``sync()``
blocks until everything written so far is on disk; judge loops call it at the end.

A torn last line (the process died while writing it) is dropped on open and the file is cut back to the
last complete line, so later appends stay line-aligned and nothing is counted twice.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path


class JsonlStore:
    def __init__(self, path: str | Path, fsync: bool = True):
        self.path = Path(path)
        self.fsync = fsync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records: list[dict] = self._load()
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._dirty = threading.Event()
        self._syncer: threading.Thread | None = None

    def _load(self) -> list[dict]:
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        records, good_end, start = [], 0, 0
        while start < len(data):
            nl = data.find(b"\n", start)
            if nl < 0:
                break  # torn tail: no newline, so the write never finished
            line = data[start:nl].strip()
            if line:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    lineno = data.count(b"\n", 0, start) + 1
                    raise ValueError(f"{self.path}: line {lineno}: not JSON ({e})") from None
            good_end = start = nl + 1
        if good_end < len(data):
            with open(self.path, "r+b") as fh:
                fh.truncate(good_end)
        return records

    def append(self, record: dict) -> None:
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.write(self._fd, line)  # one write per line: never half a line from us
            self.records.append(record)
        if self.fsync:
            if self._syncer is None:
                self._syncer = threading.Thread(target=self._sync_loop, daemon=True)
                self._syncer.start()
            self._dirty.set()

    def _sync_loop(self) -> None:
        while True:
            self._dirty.wait()
            self._dirty.clear()
            self.sync()

    def sync(self) -> None:
        fd = self._fd  # the fd is never closed once open, so fsync needs no lock (appends keep going)
        if fd is not None:
            os.fsync(fd)
