"""Disk cache of judge replies keyed by (endpoint, judge model, full request).

Stored as append-only JSONL (see store.py) so a crash loses at most the reply being written.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from harness.judge.store import JsonlStore


def cache_key(endpoint: str, model: str, request: dict) -> str:
    blob = json.dumps({"endpoint": endpoint, "model": model, "request": request}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class JudgeCache:
    def __init__(self, directory: str | Path):
        # no fsync: after a kill every written entry is there (the page cache survives the process); a power
        # loss may drop the last entries, which only costs asking again. Judgment files do fsync.
        self.store = JsonlStore(Path(directory) / "judge_cache.jsonl", fsync=False)
        self._replies = {r["key"]: r["reply"] for r in self.store.records}

    def __len__(self) -> int:
        return len(self._replies)

    def get(self, key: str) -> dict | None:
        return self._replies.get(key)

    def put(self, key: str, reply: dict) -> None:
        if key not in self._replies:
            self.store.append({"key": key, "reply": reply})
            self._replies[key] = reply
