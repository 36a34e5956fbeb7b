"""Where the harness keeps derived artefacts (tiny model, reference log-probs)."""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    root = Path(os.environ.get("HARNESS_CACHE") or Path.home() / ".cache" / "pref-harness")
    root.mkdir(parents=True, exist_ok=True)
    return root
