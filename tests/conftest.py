"""Shared fixtures: offline settings, the real shared data dir, one tiny model per session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Keep caches (HF, reference log-probs) inside the test session."""
    cache = tmp_path_factory.mktemp("harness-cache")
    os.environ["HARNESS_CACHE"] = str(cache)
    os.environ.setdefault("HF_HOME", str(tmp_path_factory.mktemp("hf-home")))
    yield cache


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = Path(os.environ.get("HARNESS_DATA_DIR") or ROOT.parent / "shared" / "data")
    if not d.exists():
        pytest.fail(f"shared data not found at {d}; set HARNESS_DATA_DIR")
    return d


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, _isolated_cache) -> Path:
    """The embedded tiny model, built once per test session (about 10 s)."""
    from align.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny", progress=False)
