"""The suite must never reach beyond loopback (conftest installs the guard)."""
from __future__ import annotations

import socket

import pytest


def test_outbound_connection_is_refused_before_any_packet():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        with pytest.raises(OSError, match="blocks outbound connections: attempted 203.0.113.7:443"):
            s.connect(("203.0.113.7", 443))


def test_loopback_is_allowed():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5):
            pass
