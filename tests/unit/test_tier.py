"""The unit tier's guard and the stream core's purity, checked: both must be able to fail."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.conftest import UnitTierViolation

WSPROXY = Path(__file__).resolve().parents[2] / "wsproxy"


def test_a_network_socket_is_refused_in_the_unit_tier() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, pytest.raises(UnitTierViolation):
        sock.bind(("127.0.0.1", 0))


def test_a_process_is_refused_in_the_unit_tier() -> None:
    with pytest.raises(UnitTierViolation):
        subprocess.run([sys.executable, "-c", "pass"], check=True)


def test_a_unix_socket_pair_still_works() -> None:
    left, right = socket.socketpair()
    with left, right:
        left.sendall(b"x")
        assert right.recv(1) == b"x"
