"""Append-only JSONL with flush + fsync per record; survives a kill mid-write.

A torn last line (the process died while writing it) is dropped on open and the file is cut
back to the last complete line, so later appends stay line-aligned and nothing is counted twice.
"""
from __future__ import annotations

import json
import os
from pathlib import Path


class JsonlStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records: list[dict] = self._load()

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
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one write: a concurrent reader never sees half a line from us
            os.fsync(fd)
        finally:
            os.close(fd)
        self.records.append(record)
