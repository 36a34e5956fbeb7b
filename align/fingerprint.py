"""Content fingerprints of models, keyed into caches and recorded in results."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from align.atomic import write_atomic
from align.cache import cache_root

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def _file_digest(path: Path) -> str:
    """sha256 of a file, memoised on (path, size, mtime) so big checkpoints hash once."""
    st = path.stat()
    memo_path = cache_root() / "file_digests.json"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    if key not in memo:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
        memo[key] = h.hexdigest()
        write_atomic(memo_path, json.dumps(memo), fsync=False)  # a memo: losing it only costs a rehash
    return memo[key]


def model_fingerprint(name_or_path: str) -> str:
    """Local dir: hash of config and weight files. Hub id: repo id at its cached commit."""
    path = Path(name_or_path)
    h = hashlib.sha256()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.name in ("config.json", "adapter_config.json") or p.suffix in _WEIGHT_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"{path}: no config.json or weight files to fingerprint")
        for f in files:
            h.update(f.name.encode())
            h.update(_file_digest(f).encode())
        return h.hexdigest()[:16]
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(name_or_path, "config.json")
    revision = Path(cached).parent.name if isinstance(cached, str) else "uncached"
    h.update(f"{name_or_path}@{revision}".encode())
    return h.hexdigest()[:16]
