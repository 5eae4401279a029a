"""The access log: one line per WebSocket stream, written when it ends, to the `wsproxy.access` logger.

    127.0.0.1:52814 - "WebSocket POST /v1/chat" 1000 in 3 msg 96 B, out 3 msg 120 B, 0.012 s

Client address, the HTTP method and path of the request the stream became, the close code (as the
stream core recorded it: uvicorn reports a vanished client as 1005; 1006 when no code was reported at
all), messages and payload bytes each way (in = client
to app, out = app to client) and how long the stream lasted. The query string is left out, as its
values may be secrets, and so are every header, the Bearer token and the cookies: the line is built
from the stream's stats record only. Control characters and quotes in the path are escaped so a
crafted path cannot forge log lines.
"""

from __future__ import annotations

import logging
import os
from typing import Protocol

import websockets

logger = logging.getLogger("wsproxy.access")

NO_CLOSE_FRAME = 1006
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F)} | {ord('"'): '\\"', ord("\\"): "\\\\"}


class AccessRecord(Protocol):
    """The fields of the stream core's StreamStats that the line shows."""

    @property
    def client(self) -> str | None: ...
    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def close_code(self) -> int | None: ...
    @property
    def messages_in(self) -> int: ...
    @property
    def messages_out(self) -> int: ...
    @property
    def bytes_in(self) -> int: ...
    @property
    def bytes_out(self) -> int: ...
    @property
    def duration(self) -> float: ...


def format_line(record: AccessRecord) -> str:
    code = record.close_code if record.close_code is not None else NO_CLOSE_FRAME
    return (
        f'{format_client(record.client)} - "WebSocket {record.method} {safe_path(record.path)}" {code} '
        f"in {record.messages_in} msg {record.bytes_in} B, out {record.messages_out} msg {record.bytes_out} B, "
        f"{record.duration:.3f} s"
    )


def format_client(client: str | None) -> str:
    """The client as the stats record has it ("host:port"), escaped like the path; "-" if unknown."""
    return client.translate(_ESCAPES) if client else "-"


def safe_path(path: str) -> str:
    """The path without its query, with what could forge a log line escaped."""
    return path.partition("?")[0].translate(_ESCAPES)


def log_stream(record: AccessRecord) -> None:
    """The stream observer (`on_stream_end`) that writes the line, at INFO: the logging setup decides."""
    if logger.isEnabledFor(logging.INFO):
        logger.info("%s", format_line(record))


class QueryValuesHidden(logging.Filter):
    """For uvicorn's own lines that show a request target: the path only, without the query.

    The handshake lines (`"WebSocket /path?query" [accepted]`, on `uvicorn.error`) and the plain-HTTP
    access lines (`"GET /path?query HTTP/1.1" 200`, on `uvicorn.access`). The `wsproxy` command puts it
    on both loggers, so no line it writes at INFO or above shows query values.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        index = _path_argument(record.msg)
        if index is not None and isinstance(args, tuple) and len(args) > index:
            record.args = tuple(
                safe_path(arg) if position == index and isinstance(arg, str) else arg
                for position, arg in enumerate(args)
            )
        return True


_HTTP_ACCESS_FORMAT = (
    '%s - "%s %s HTTP/%s" %d'  # uvicorn's access line: client, method, target, version, status
)


def _path_argument(message: object) -> int | None:
    """Which argument of one of uvicorn's messages is the request target, if it has one."""
    if not isinstance(message, str):
        return None
    if '"WebSocket %s"' in message:
        return 1
    if message == _HTTP_ACCESS_FORMAT:
        return 2
    return None


_WEBSOCKETS_PACKAGE = os.path.dirname(websockets.__file__) + os.sep


class WebSocketsDebugHidden(logging.Filter):
    """Drops the websockets library's DEBUG lines, which uvicorn's websockets implementations send to
    `uvicorn.error`: they show every handshake header (`Sec-WebSocket-Protocol: Bearer, <token>`
    among them) and every frame's payload. The `wsproxy` command puts it on `uvicorn.error` below
    `--log-level trace`.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.INFO or not record.pathname.startswith(_WEBSOCKETS_PACKAGE)
