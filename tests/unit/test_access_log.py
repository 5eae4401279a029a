"""The access line's format, table-driven: what it shows, what it escapes, what it never shows."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest

from wsproxy.operations._access_log import QueryValuesHidden, format_line, log_stream


@dataclass
class Record:
    client: str | None = "127.0.0.1:52814"
    method: str = "POST"
    path: str = "/v1/chat"
    close_code: int | None = 1000
    messages_in: int = 3
    messages_out: int = 2
    bytes_in: int = 96
    bytes_out: int = 120
    duration: float = 0.0123


@pytest.mark.parametrize(
    ("record", "line"),
    [
        (
            Record(),
            '127.0.0.1:52814 - "WebSocket POST /v1/chat" 1000 in 3 msg 96 B, out 2 msg 120 B, 0.012 s',
        ),
        (Record(client=None), '- - "WebSocket POST /v1/chat" 1000 in 3 msg 96 B, out 2 msg 120 B, 0.012 s'),
        (
            Record(client="::1:9", method="GET", close_code=4404, duration=2),
            '::1:9 - "WebSocket GET /v1/chat" 4404 in 3 msg 96 B, out 2 msg 120 B, 2.000 s',
        ),
        # No close code recorded at all: 1006, as RFC 6455 reports an abnormal closure.
        (
            Record(close_code=None),
            '127.0.0.1:52814 - "WebSocket POST /v1/chat" 1006 in 3 msg 96 B, out 2 msg 120 B, 0.012 s',
        ),
        # A query that reached the record is cut: its values may be secrets.
        (
            Record(path="/v1/items?api_key=s3cret&page=2"),
            '127.0.0.1:52814 - "WebSocket POST /v1/items" 1000 in 3 msg 96 B, out 2 msg 120 B, 0.012 s',
        ),
        # A decoded path with a line break or a quote cannot forge a second line or end the quotes.
        (
            Record(path='/a\n127.0.0.1:1 - "WebSocket GET /admin" 1000'),
            '127.0.0.1:52814 - "WebSocket POST /a\\x0a127.0.0.1:1 - \\"WebSocket GET /admin\\" 1000" 1000 '
            "in 3 msg 96 B, out 2 msg 120 B, 0.012 s",
        ),
    ],
)
def test_format_line(record: Record, line: str) -> None:
    assert format_line(record) == line


def test_the_line_goes_to_the_wsproxy_access_logger_at_info(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="wsproxy.access"):
        log_stream(Record())
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("wsproxy.access", logging.INFO, format_line(Record()))
    ]


@pytest.mark.parametrize(
    ("message", "args", "shown"),
    [
        (
            '%s - "WebSocket %s" [accepted]',
            ("1.2.3.4:5", "/v1/chat?api_key=s3cret"),
            '1.2.3.4:5 - "WebSocket /v1/chat" [accepted]',
        ),
        (
            '%s - "WebSocket %s" %d',
            ("1.2.3.4:5", "/v1/chat?t=s3cret", 401),
            '1.2.3.4:5 - "WebSocket /v1/chat" 401',
        ),
        ("Started server process [%d]", (42,), "Started server process [42]"),  # other lines untouched
    ],
)
def test_uvicorns_handshake_lines_lose_their_query(
    message: str, args: tuple[object, ...], shown: str
) -> None:
    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, message, args, None)
    assert QueryValuesHidden().filter(record)
    assert record.getMessage() == shown
