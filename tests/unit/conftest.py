"""The unit tier: pure code only. A test here that opens a network socket or starts a process fails.

Event loops still work: their self-pipe is an AF_UNIX socket pair, which is allowed.
"""

from __future__ import annotations

import socket
import subprocess
from typing import Any

import pytest

_NETWORK = (socket.AF_INET, socket.AF_INET6)


class UnitTierViolation(RuntimeError):
    """A unit test reached for the network or a process: it belongs in tests/integration/."""


@pytest.fixture(autouse=True)
def _no_network_no_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    connect, bind = socket.socket.connect, socket.socket.bind

    def guarded(original: Any) -> Any:
        def call(self: socket.socket, address: Any) -> Any:
            if self.family in _NETWORK:
                raise UnitTierViolation(
                    f"unit tier: a network socket ({address!r}); move the test to tests/integration/"
                )
            return original(self, address)

        return call

    def no_process(*args: Any, **kwargs: Any) -> Any:
        raise UnitTierViolation("unit tier: a subprocess; move the test to tests/integration/")

    monkeypatch.setattr(socket.socket, "connect", guarded(connect))
    monkeypatch.setattr(socket.socket, "bind", guarded(bind))
    monkeypatch.setattr(subprocess.Popen, "__init__", no_process)
