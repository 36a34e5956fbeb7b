"""Disk cache of judge replies keyed by (endpoint, judge model, full request).

Stored as append-only JSONL (see store.py): each reply is one unbuffered write the moment it arrives
(the client's HTTP response hook), fsynced by the store's group-commit thread, so a killed process loses
at most the replies still on the wire and a power loss at most the last fsync window.
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
        self.store = JsonlStore(Path(directory) / "judge_cache.jsonl", fsync=True)
        self._replies = {r["key"]: r["reply"] for r in self.store.records}

    def __len__(self) -> int:
        return len(self._replies)

    def get(self, key: str) -> dict | None:
        return self._replies.get(key)

    def put(self, key: str, reply: dict) -> None:
        if key not in self._replies:
            self.store.append({"key": key, "reply": reply})
            self._replies[key] = reply
