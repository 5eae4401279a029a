"""The command's log filters, table-driven: query strings out of uvicorn's access lines, the websockets
library's DEBUG lines (headers with the token, payloads) dropped, every other line untouched."""

from __future__ import annotations

import logging
import os

import pytest
import websockets

from wsproxy.operations._access_log import QueryValuesHidden, WebSocketsDebugHidden

ACCESS = '%s - "%s %s HTTP/%s" %d'


@pytest.mark.parametrize(
    ("message", "args", "shown"),
    [
        (
            ACCESS,
            ("1.2.3.4:5", "GET", "/v1/ticker?token=s3cret", "1.1", 200),
            '1.2.3.4:5 - "GET /v1/ticker HTTP/1.1" 200',
        ),
        (ACCESS, ("1.2.3.4:5", "POST", "/v1/echo", "1.1", 400), '1.2.3.4:5 - "POST /v1/echo HTTP/1.1" 400'),
        (ACCESS, ("1.2.3.4:5", "GET", '/a"b?x=1', "1.1", 404), '1.2.3.4:5 - "GET /a\\"b HTTP/1.1" 404'),
        (
            '%s - "%s %s"',
            ("1.2.3.4:5", "GET", "/x?token=kept"),
            '1.2.3.4:5 - "GET /x?token=kept"',
        ),  # not uvicorn's
        (ACCESS, ("too", "few"), None),  # arguments that do not fit the format are left alone
    ],
)
def test_uvicorns_access_lines_lose_their_query(
    message: str, args: tuple[object, ...], shown: str | None
) -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, message, args, None)
    assert QueryValuesHidden().filter(record)
    if shown is None:
        assert record.args == args
    else:
        assert record.getMessage() == shown


WEBSOCKETS_FILE = os.path.join(os.path.dirname(websockets.__file__), "protocol.py")


@pytest.mark.parametrize(
    ("pathname", "level", "kept"),
    [
        (WEBSOCKETS_FILE, logging.DEBUG, False),  # "< sec-websocket-protocol: Bearer, <token>", "> TEXT ..."
        (WEBSOCKETS_FILE, 5, False),  # uvicorn's TRACE level, below DEBUG
        (WEBSOCKETS_FILE, logging.INFO, True),  # "connection open"
        (WEBSOCKETS_FILE, logging.ERROR, True),
        (__file__, logging.DEBUG, True),  # uvicorn's and everyone else's DEBUG lines stay
        ("/somewhere/websockets_helper/protocol.py", logging.DEBUG, True),  # only the package itself
    ],
)
def test_websockets_debug_lines_are_dropped(pathname: str, level: int, kept: bool) -> None:
    record = logging.LogRecord("uvicorn.error", level, pathname, 1, "< %s", ("header",), None)
    assert WebSocketsDebugHidden().filter(record) is kept
