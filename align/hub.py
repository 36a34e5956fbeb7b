"""Local path or hub id? Decided up front, so a typo fails at once with a clear message
instead of after a slow (or, offline, hopeless) hub lookup."""
from __future__ import annotations

import os
import re
from pathlib import Path

# The hub's repo id form: optional "org/" then a name; no "--" or "..", no leading/trailing "-" or ".".
_REPO_ID = re.compile(r"(?:[\w][\w.-]{0,95}/)?[\w][\w.-]{0,95}")


def offline() -> bool:
    """True when the hub must not be reached (HF_HUB_OFFLINE, HF_DATASETS_OFFLINE or TRANSFORMERS_OFFLINE)."""
    names = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
    return any(os.environ.get(n, "").strip().upper() in ("1", "ON", "YES", "TRUE") for n in names)


def looks_like_repo_id(name: str) -> bool:
    return bool(_REPO_ID.fullmatch(name)) and "--" not in name and ".." not in name and not name.endswith((".", "-"))


def _hub_cache() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def model_cached(repo: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo, "config.json"), str)


def dataset_cached(repo: str) -> bool:
    """In the hub download cache or in the datasets library's own cache."""
    if (_hub_cache() / f"datasets--{repo.replace('/', '--')}").is_dir():
        return True
    root = os.environ.get("HF_DATASETS_CACHE") or str(Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface") / "datasets")
    return (Path(root) / repo.replace("/", "___")).is_dir()


def check_model_spec(name: str, what: str = "--model") -> None:
    """Raise FileNotFoundError unless ``name`` is an existing local directory or a usable hub id."""
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise FileNotFoundError(f"{what} {name}: is a file; a model is a directory (config.json and weights) or a hub id")
        return
    if not looks_like_repo_id(name):
        raise FileNotFoundError(f"{what} {name}: no such directory (and not a hub id)")
    if offline() and not model_cached(name):
        raise FileNotFoundError(f"{what} {name}: no such local directory, and no hub model of that name in the "
                                "local cache (offline: HF_HUB_OFFLINE is set)")
