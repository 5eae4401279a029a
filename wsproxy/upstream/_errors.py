"""The fixed, documented set of messages an upstream failure is reported with.

Exception text never reaches a client: it may name addresses, library internals ("can't handle
event type ConnectionClosed when role=SERVER") or data. `failure_of` maps any transport error to
one `Failure` from the table below; the exception itself goes to the server log. Pure, no I/O.
"""

from __future__ import annotations

import errno
import socket
import ssl
from dataclasses import dataclass


class ConnectTimeout(Exception):
    """The TCP (or TLS) connection to the upstream was not established in time."""


class PoolTimeout(Exception):
    """All allowed upstream connections (or HTTP/2 streams) stayed busy for the whole connect timeout."""


class ReadTimeout(Exception):
    """The upstream sent nothing for longer than the read timeout."""


class ClosedEarly(Exception):
    """The upstream closed the connection (or ended the stream) before its response was complete."""


class StreamReset(Exception):
    """The upstream reset the connection or, on HTTP/2, the stream (RST_STREAM or GOAWAY)."""


class MalformedResponse(Exception):
    """The upstream's bytes are not a valid HTTP response."""


@dataclass(frozen=True)
class Failure:
    """What a client is told: the HTTP status, and the JSON body's `error` and `reason`."""

    status: int
    error: str
    reason: str


UNREACHABLE = "upstream unreachable"
TIMEOUT = "upstream timeout"
BUSY = "upstream busy"
BAD_RESPONSE = "bad upstream response"

REFUSED = Failure(502, UNREACHABLE, "connection refused")
HOST_UNREACHABLE = Failure(502, UNREACHABLE, "host unreachable")
TLS_FAILED = Failure(502, UNREACHABLE, "TLS handshake failed")
CONNECT_TIMED_OUT = Failure(504, TIMEOUT, "connect timed out")
READ_TIMED_OUT = Failure(504, TIMEOUT, "no response in time")
ALL_BUSY = Failure(503, BUSY, "all upstream connections are in use")
RESET = Failure(502, BAD_RESPONSE, "connection reset")
CLOSED = Failure(502, BAD_RESPONSE, "closed without a response")
MALFORMED = Failure(502, BAD_RESPONSE, "malformed response")

# Every message a client can get; docs/upstream.md lists the same table.
ALL_FAILURES = (
    REFUSED,
    HOST_UNREACHABLE,
    TLS_FAILED,
    CONNECT_TIMED_OUT,
    READ_TIMED_OUT,
    ALL_BUSY,
    RESET,
    CLOSED,
    MALFORMED,
)

_RESET_ERRNOS = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED})


def failure_of(exc: BaseException) -> Failure:
    """The fixed message for a failure of the upstream exchange (before or after the response started)."""
    if isinstance(exc, ConnectTimeout):
        return CONNECT_TIMED_OUT
    if isinstance(exc, ReadTimeout):
        return READ_TIMED_OUT
    if isinstance(exc, PoolTimeout):
        return ALL_BUSY
    if isinstance(exc, ssl.SSLError):  # also SSLCertVerificationError
        return TLS_FAILED
    if isinstance(exc, ClosedEarly):
        return CLOSED
    if isinstance(exc, StreamReset):
        return RESET
    if isinstance(exc, ConnectionRefusedError):
        return REFUSED
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return RESET
    if isinstance(exc, socket.gaierror):
        return HOST_UNREACHABLE
    if isinstance(exc, OSError):
        if exc.errno == errno.ECONNREFUSED:
            return REFUSED
        if exc.errno in _RESET_ERRNOS:
            return RESET
        return HOST_UNREACHABLE
    return MALFORMED
