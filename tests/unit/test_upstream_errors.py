"""Every upstream failure maps to one fixed, documented message (wsproxy/upstream/_errors.py), without a
server.

The expected bodies are literals (the table in docs/upstream.md), not the code's constants.
"""

from __future__ import annotations

import errno
import socket
import ssl

import pytest

from tests.support.upstream_errors import DOCUMENTED
from wsproxy.upstream._errors import (
    ClosedEarly,
    ConnectTimeout,
    MalformedResponse,
    PoolTimeout,
    ReadTimeout,
    StreamReset,
    failure_of,
)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('10.1.2.3', 8081)"), "connection refused"),
        (OSError(errno.EHOSTUNREACH, "No route to host 10.1.2.3"), "host unreachable"),
        (socket.gaierror(-2, "Name or service not known: secret.internal"), "host unreachable"),
        (ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate"), "TLS handshake failed"),
        (ConnectTimeout(), "connect timed out"),
        (ReadTimeout(), "no response in time"),
        (PoolTimeout(), "all upstream connections are in use"),
        (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), "connection reset"),
        (BrokenPipeError(errno.EPIPE, "Broken pipe"), "connection reset"),
        (StreamReset("RST_STREAM <ErrorCodes.INTERNAL_ERROR: 2>"), "connection reset"),
        (ClosedEarly("can't handle event type ConnectionClosed when role=SERVER"), "closed without a response"),
        (MalformedResponse("illegal status line: bytearray(b'SSH-2.0')"), "malformed response"),
        (ValueError("anything else"), "malformed response"),
    ],
)  # fmt: skip
def test_each_failure_maps_to_one_fixed_message(exc: BaseException, expected: str) -> None:
    failure = failure_of(exc)
    assert failure.reason == expected
    assert DOCUMENTED[(failure.error, failure.reason)] == failure.status
