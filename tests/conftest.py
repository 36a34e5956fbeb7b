"""Shared fixtures: offline settings, the real shared data dir, one tiny model per session."""
from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _loopback_only(sock: socket.socket, address) -> None:
    """Tests may talk to loopback servers only: any other address is a bug in the test (or the code)."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    host = address[0]
    try:
        ok = ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        ok = host == "localhost"
    if not ok:
        raise OSError(f"test suite blocks outbound connections: attempted {host}:{address[1]}")


def _guarded_connect(self, address):
    _loopback_only(self, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    _loopback_only(self, address)
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex


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
    """The embedded tiny model, built once per test session (3-4 minutes on 2 idle CPU cores)."""
    from align.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny", progress=False)


def data_dir_variant(data_dir: Path, dest: Path, *, drop: tuple[str, ...] = ()) -> Path:
    """A data dir that mirrors ``data_dir`` through symlinks, without the relative paths in ``drop``:
    a test builds the data situation it tests instead of depending on what the shared folder holds."""
    drop_parts = [Path(d).parts for d in drop]

    def mirror(src: Path, dst: Path, depth: tuple[str, ...]) -> None:
        dst.mkdir(parents=True, exist_ok=True)
        for child in sorted(src.iterdir()):
            rel = depth + (child.name,)
            if rel in drop_parts:
                continue
            if any(parts[: len(rel)] == rel for parts in drop_parts):
                mirror(child, dst / child.name, rel)  # an ancestor of something dropped
            else:
                (dst / child.name).symlink_to(child.resolve())

    mirror(data_dir, dest, ())
    return dest


@pytest.fixture(scope="module")
def prefs(tmp_path_factory):
    """64 generated arithmetic preference pairs as a JSONL file (the trainer tests' data)."""
    from align.data import arithmetic_preference_pairs, write_jsonl

    d = tmp_path_factory.mktemp("prefs")
    return str(write_jsonl(arithmetic_preference_pairs(64, seed=3), d / "arith.jsonl"))


def train_two_processes(tiny_model, prefs: str, output, method: str = "dpo", *extra: str, timeout: int = 900):
    """`harness train` under `accelerate launch` with 2 CPU processes (gloo DDP), batch 4 per process: the same
    global batch as one process at batch 8 with the trainer tests' settings. Returns the finished process."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "harness", "train", "--method", method,
         "--model", str(tiny_model), "--data", prefs, "--output", str(output), "--recipe", "tiny", "--lr", "1e-3",
         "--batch-size", "4", "--max-steps", "3", "--max-length", "96", "--max-prompt-length", "48", "--no-progress",
         *extra],
        capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=timeout)
