"""The stream core's decisions, table-driven and without I/O (wsproxy/stream/_core.py).

Events in, app events, frames and actions out: what each client message means, joining, the
read-ahead bound, the frames and close code of each response, how each ending is reported, idleness.
The turn budget's rows are in test_stream_budget.py. These rows are also what `make mutate` runs
against the core (docs/testing.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from wsproxy import closecodes
from wsproxy._options import ProxyOptions
from wsproxy._types import Message
from wsproxy.errors import ClientDisconnected, MessageTooBig, RequestBodyNotAllowed, UpstreamError
from wsproxy.stream._actions import (
    BODY_ENDED,
    CLIENT_GONE,
    GONE,
    KEEP,
    VIOLATION,
    Close,
    message_data,
    message_size,
)
from wsproxy.stream._core import StreamCore
from wsproxy.stream._records import StreamSettings, StreamStats

KIB = 1024


def core(single_message: bool = False, **settings: Any) -> StreamCore:
    return StreamCore(StreamSettings(**settings), single_message=single_message)


def text(data: str) -> Message:
    return {"type": "websocket.receive", "text": data}


def binary(data: bytes) -> Message:
    return {"type": "websocket.receive", "bytes": data}


def request(body: bytes, more: bool = True) -> Message:
    return {"type": "http.request", "body": body, "more_body": more}


DISCONNECT: Message = {"type": "http.disconnect"}

# client -> app


@pytest.mark.parametrize(
    ("settings", "single", "message", "event", "counts"),
    [
        ({}, False, text("a"), request(b"a\n"), (1, 1)),
        ({}, False, binary(b"ab"), request(b"ab\n"), (1, 2)),
        ({}, False, text("é"), request("é\n".encode()), (1, 2)),
        ({}, False, text("a\r\nb"), request(b"a  b\n"), (1, 4)),
        ({}, False, binary(b"\n"), request(b" \n"), (1, 1)),
        ({}, False, text("a\rb"), request(b"a b\n"), (1, 3)),
        ({}, False, {"type": "websocket.receive"}, request(b"", more=False), (0, 0)),
        ({}, False, text(""), request(b"", more=False), (0, 0)),
        ({}, False, binary(b""), request(b"", more=False), (0, 0)),
        ({"half_close": b"END"}, False, text("END"), request(b"", more=False), (0, 0)),
        ({"half_close": b"END"}, False, text(""), request(b"\n"), (1, 0)),
        ({"half_close": None}, False, text(""), request(b"\n"), (1, 0)),
        ({}, True, text("x"), request(b"x\n", more=False), (1, 1)),
        ({"max_message_size": 3}, False, text("abc"), request(b"abc\n"), (1, 3)),
        ({"max_message_size": 3}, False, text("abcd"), DISCONNECT, (0, 0)),
    ],
)
def test_client_message(
    settings: dict[str, Any], single: bool, message: Message, event: Message, counts: tuple[int, int]
) -> None:
    stream = core(single, **settings)
    assert stream.client_message(message) == event
    assert (stream.stats.messages_in, stream.stats.bytes_in) == counts
    ends_body = event["type"] == "http.request" and not event["more_body"]
    assert stream.body_open is (not ends_body)
    assert stream.pending is (ends_body or event["type"] == "http.disconnect")  # the shell must act


def test_a_message_over_the_limit_closes_1009() -> None:
    stream = core(max_message_size=3)
    stream.client_message(text("abcd"))
    assert (stream.gone, stream.closed, stream.stats.close_code) == (True, True, 1009)
    assert stream.take_close() == Close(1009, "message too big")
    assert stream.take_close() is None


@pytest.mark.parametrize(
    ("message", "code"),
    [({"type": "websocket.disconnect", "code": 1005}, 1005), ({"type": "websocket.disconnect"}, 1001)],
)
def test_a_disconnect_marks_the_client_gone_with_its_code(message: Message, code: int) -> None:
    stream = core()
    assert stream.client_message(message) == DISCONNECT
    assert (stream.gone, stream.closed, stream.stats.close_code, stream.closing) == (True, True, code, None)
    assert [stream.next_action(), stream.next_action()] == [CLIENT_GONE, None]


def test_a_new_stream_starts_open_and_counts_every_message() -> None:
    stream = StreamCore(StreamSettings(yield_frames=4, yield_bytes=1000))
    # `is`, not ==: a None where False belongs would pass an equality test.
    flags = (stream.end_read, stream.response.complete, stream.gone, stream.closed, stream.pending)
    assert [flag is False for flag in flags] == [True] * 5
    assert (stream.body_open, stream.stats.close_code, stream.budget.spent) == (True, None, 0)
    assert (stream.stats.method, stream.stats.path, stream.stats.client) == ("", "", None)
    assert stream.client_message(text("a")) == request(b"a\n")  # not a single-message call by default
    stream.client_message(text("bcd"))
    assert (stream.stats.messages_in, stream.stats.bytes_in, stream.budget.spent) == (2, 4, 4 + 2 * 250)


# client -> app: what a message means.

CLIENT_CASES: list[tuple[str, dict[str, Any], Message, Message, bool, Close | None]] = [
    # id, settings, websocket event, app event, body still open, close frame to send
    ("text", {}, text("hello"), {"type": "http.request", "body": b"hello\n", "more_body": True}, True, None),
    (
        "binary",
        {},
        {"type": "websocket.receive", "bytes": b"\x00\xff"},
        {"type": "http.request", "body": b"\x00\xff\n", "more_body": True},
        True,
        None,
    ),
    ("half-close", {}, text(""), {"type": "http.request", "body": b"", "more_body": False}, False, None),
    (
        "half-close-binary",
        {},
        {"type": "websocket.receive", "bytes": b""},
        {"type": "http.request", "body": b"", "more_body": False},
        False,
        None,
    ),
    (
        "half-close-off",
        {"half_close": None},
        text(""),
        {"type": "http.request", "body": b"\n", "more_body": True},
        True,
        None,
    ),
    (
        "custom-half-close",
        {"half_close": b"EOF"},
        text("EOF"),
        {"type": "http.request", "body": b"", "more_body": False},
        False,
        None,
    ),
    (
        "cr-lf-become-spaces",
        {},
        text('{"a":\r\n1}'),
        {"type": "http.request", "body": b'{"a":  1}\n', "more_body": True},
        True,
        None,
    ),
    (
        "at-the-limit",
        {"max_message_size": 4},
        text("abcd"),
        {"type": "http.request", "body": b"abcd\n", "more_body": True},
        True,
        None,
    ),
    (
        "over-the-limit",
        {"max_message_size": 4},
        text("abcde"),
        {"type": "http.disconnect"},
        True,
        Close(1009, "message too big"),
    ),
    (
        "multibyte-at-the-limit",  # the limit counts UTF-8 bytes, not characters
        {"max_message_size": 4},
        text("\u00e9\u00e9"),
        {"type": "http.request", "body": "\u00e9\u00e9\n".encode(), "more_body": True},
        True,
        None,
    ),
    (
        "multibyte-over-the-limit",
        {"max_message_size": 4},
        text("\u00e9\u00e9a"),
        {"type": "http.disconnect"},
        True,
        Close(1009, "message too big"),
    ),
    (
        "binary-cr-lf-become-spaces",
        {},
        {"type": "websocket.receive", "bytes": b"a\r\nb"},
        {"type": "http.request", "body": b"a  b\n", "more_body": True},
        True,
        None,
    ),
    (
        "binary-half-close-marker",
        {"half_close": b"EOF"},
        {"type": "websocket.receive", "bytes": b"EOF"},
        {"type": "http.request", "body": b"", "more_body": False},
        False,
        None,
    ),
    (
        "non-utf8-marker-never-matches-text",
        {"half_close": b"\xff"},
        text("\u00ff"),
        {"type": "http.request", "body": "\u00ff\n".encode(), "more_body": True},
        True,
        None,
    ),
    (
        "single-message",
        {"single_message": True},
        text("x"),
        {"type": "http.request", "body": b"x\n", "more_body": False},
        False,
        None,
    ),
    (
        "client-closed",
        {},
        {"type": "websocket.disconnect", "code": 1001},
        {"type": "http.disconnect"},
        True,
        None,
    ),
]


@pytest.mark.parametrize(
    ("settings", "event", "expected", "body_open", "closing"),
    [case[1:] for case in CLIENT_CASES],
    ids=[case[0] for case in CLIENT_CASES],
)
def test_what_a_client_message_means(
    settings: dict[str, Any], event: Message, expected: Message, body_open: bool, closing: Close | None
) -> None:
    c = core(**settings)
    assert c.client_message(event) == expected
    assert c.body_open is body_open
    assert c.take_close() == closing
    assert c.take_close() is None  # a close frame is sent once


def test_a_client_that_closes_is_gone_with_its_code_and_gets_no_close_frame() -> None:
    c = core()
    c.client_message({"type": "websocket.disconnect", "code": 4000})
    assert (c.gone, c.closed, c.stats.close_code) == (True, True, 4000)
    c.close(closecodes.NORMAL)
    assert c.take_close() is None
    assert c.stats.close_code == 4000


# The read-ahead.


def test_read_ahead_keeps_messages_until_the_end_of_the_body_then_a_message_is_a_violation() -> None:
    stream = core()
    assert stream.read_ahead(text("ab")) == KEEP
    assert stream.read_ahead(binary(b"abc")) == KEEP
    assert (stream.inbox_bytes, stream.end_read) == (5, False)
    assert stream.read_ahead(text("")) == KEEP  # the half-close, read ahead
    assert stream.end_read is True
    assert stream.read_ahead(text("late")) == VIOLATION
    assert stream.take_close() == Close(1008, "message after end of request body")
    assert stream.next_kept() == text("ab")
    assert stream.inbox_bytes == 3
    assert stream.next_kept() == binary(b"abc")
    assert stream.inbox_bytes == 0
    assert stream.next_kept() == text("")
    assert stream.next_kept() is None


def test_read_ahead_after_the_body_ended_is_a_violation_and_with_one_message_the_first_ends_it() -> None:
    ended = core()
    ended.client_message(text(""))
    assert ended.read_ahead(text("x")) == VIOLATION
    single = core(True)
    assert single.read_ahead(text("x")) == KEEP
    assert single.end_read is True
    assert single.read_ahead(text("y")) == VIOLATION


@pytest.mark.parametrize(
    ("message", "code"),
    [({"type": "websocket.disconnect", "code": 1000}, 1000), ({"type": "websocket.disconnect"}, 1001)],
)
def test_read_ahead_of_a_disconnect_is_gone(message: Message, code: int) -> None:
    stream = core()
    assert stream.read_ahead(message) == GONE
    assert (stream.gone, stream.stats.close_code) == (True, code)
    assert stream.may_read_ahead() is False


@pytest.mark.parametrize(
    ("inbox", "body_open", "may"),
    [(64 * KIB, True, True), (64 * KIB + 1, True, False), (10 * 64 * KIB, False, True)],
)
def test_the_read_ahead_is_bounded_at_64_kib_while_the_body_is_open(
    inbox: int, body_open: bool, may: bool
) -> None:
    stream = core()
    stream.inbox_bytes = inbox
    stream.body_open = body_open
    assert stream.may_read_ahead() is may


@pytest.mark.parametrize(
    ("unread", "gone", "violation"), [(True, False, True), (False, False, False), (True, True, False)]
)
def test_body_ended_with_a_message_waiting_is_a_violation(unread: bool, gone: bool, violation: bool) -> None:
    stream = core()
    if unread:
        stream.read_ahead(text("waiting"))
    if gone:
        stream.client_left(None)
    stream.client_message(text(""))  # the end of the body
    assert stream.take_close() == (Close(1008, "message after end of request body") if violation else None)
    ended = stream.next_action()
    assert ended is (None if violation or gone else BODY_ENDED)  # take_close() answered for the end


# app -> client


def started(status: int = 200, **settings: Any) -> StreamCore:
    stream = core(**settings)
    stream.response.metadata({"type": "http.response.start", "status": status})
    return stream


def body(data: bytes, more: bool = True) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": more}


@pytest.mark.parametrize(
    ("chunks", "frames"),
    [
        ([body(b"one\n")], [{"type": "websocket.send", "text": "one"}]),
        ([body(b"\xff\n")], [{"type": "websocket.send", "bytes": b"\xff"}]),
        (
            [body(b"a\nb\n")],
            [{"type": "websocket.send", "text": "a"}, {"type": "websocket.send", "text": "b"}],
        ),
        (
            [body(b"a\n\xfe\n")],
            [{"type": "websocket.send", "text": "a"}, {"type": "websocket.send", "bytes": b"\xfe"}],
        ),
        ([body(b"par"), body(b"tial\n")], [{"type": "websocket.send", "text": "partial"}]),
        ([body(b"x" * 5000 + b"\n")], [{"type": "websocket.send", "text": "x" * 5000}]),
        ([body(b"tail", more=False)], [{"type": "websocket.send", "text": "tail"}]),
        ([body(b"", more=False)], []),
        ([{"type": "http.response.body", "more_body": True}, body(b"", more=False)], []),
        ([{"type": "http.response.body"}], []),
        (
            [body(b"a\nb\n"), body(b"c\nd\n"), body(b"e\n")],
            [{"type": "websocket.send", "text": c} for c in "abcde"],
        ),
    ],
)
def test_response_lines_become_frames(chunks: list[Message], frames: list[Message]) -> None:
    stream = started()
    out: list[Message] = []
    for chunk in chunks:
        out += stream.response.body(chunk)
    assert out == frames
    assert stream.response.complete is (not chunks[-1].get("more_body", False))
    assert stream.stats.messages_out == len(frames)
    assert stream.stats.bytes_out == sum(
        len(f.get("text", "").encode() or f.get("bytes", b"")) for f in frames
    )


@pytest.mark.parametrize(
    ("status", "close"),
    [
        (200, Close(1000, "")),
        (204, Close(1000, "")),
        (404, Close(4404, "Not Found")),
        (503, Close(4503, "Service Unavailable")),
    ],
)
def test_the_last_body_event_closes_with_the_status(status: int, close: Close) -> None:
    stream = started(status)
    assert stream.response.body(body(b"last\n", more=True))
    assert stream.take_close() is None
    stream.response.body(body(b"", more=False))
    assert (stream.response.complete, stream.take_close(), stream.stats.close_code) == (
        True,
        close,
        close.code,
    )


def test_a_response_line_over_the_limit_closes_1009() -> None:
    stream = started(max_line_size=4)
    assert list(stream.response.body(body(b"abcd\n"))) == [{"type": "websocket.send", "text": "abcd"}]
    with pytest.raises(MessageTooBig):
        stream.response.body(body(b"abcde\n"))
    assert stream.take_close() == Close(1009, "response line too big")
    with pytest.raises(ClientDisconnected):
        stream.response.body(body(b"a\n"))


def test_response_messages_out_of_order_raise_with_what_was_expected() -> None:
    with pytest.raises(
        RuntimeError,
        match=r'^Unexpected ASGI message "http.response.body" before "http.response.start" or after the end$',
    ):
        core().response.body(body(b"x\n"))
    stream = started()
    with pytest.raises(RuntimeError, match=r'^Unexpected ASGI message "http.response.start" sent twice$'):
        stream.response.metadata({"type": "http.response.start", "status": 200})
    with pytest.raises(
        RuntimeError,
        match=r"""^Expected ASGI message "http.response.start" or "http.response.body", but got 'http.response.trailers'$""",
    ):
        core().response.metadata({"type": "http.response.trailers"})
    stream.response.body(body(b"", more=False))
    with pytest.raises(RuntimeError):
        stream.response.body(body(b"x\n"))


def test_a_send_after_the_client_left_raises_client_disconnected() -> None:
    stream = started()
    stream.client_left(None)
    with pytest.raises(ClientDisconnected, match=r"^the WebSocket client has gone away$"):
        stream.response.body(body(b"x\n"))


@pytest.mark.parametrize(
    ("setup", "message", "frame"),
    [
        ({}, body(b"x\n"), {"type": "websocket.send", "text": "x"}),
        ({}, body(b"\xff\n"), {"type": "websocket.send", "bytes": b"\xff"}),
        ({}, body(b"y" * 4095 + b"\n"), {"type": "websocket.send", "text": "y" * 4095}),
        ({"max_line_size": 3}, body(b"abc\n"), {"type": "websocket.send", "text": "abc"}),
        ({"max_line_size": 3}, body(b"abcd\n"), None),  # over the limit: response_body raises
        ({}, body(b"y" * 4096 + b"\n"), {"type": "websocket.send", "text": "y" * 4096}),  # long: from a view
        ({}, body(b"y" * 5000 + b"\xff\n"), {"type": "websocket.send", "bytes": b"y" * 5000 + b"\xff"}),
        ({}, body(b"y" * 4096 + b"\ny\n"), None),  # long, two lines
        ({}, body(b"y" * 4096 + b"\r\n"), None),  # long, a CR to strip
        ({}, body(b"\n"), None),  # empty line
        ({}, body(b"a\r\n"), None),  # a CR to strip
        ({}, body(b"a\nb\n"), None),  # two lines
        ({}, body(b"no newline"), None),
        ({}, body(b"x\n", more=False), None),  # the last event: response_body closes
        ({}, {"type": "http.response.body", "body": b"x\n"}, None),
        ({}, {"type": "http.response.body", "more_body": True}, None),
        ({}, {"type": "http.response.start", "status": 200}, None),
        ({"buffered": True}, body(b"x\n"), None),
        ({"gone": True}, body(b"x\n"), None),
        ({"complete": True}, body(b"x\n"), None),
        ({"unstarted": True}, body(b"x\n"), None),
    ],
)  # fmt: skip
def test_single_frame_answers_only_the_common_case(
    setup: dict[str, Any], message: Message, frame: Message | None
) -> None:
    stream = core(max_line_size=setup.get("max_line_size", 1 << 20))
    if not setup.get("unstarted"):
        stream.response.metadata({"type": "http.response.start", "status": 200})
    if setup.get("buffered"):
        stream.response.body(body(b"partial"))
    if setup.get("complete"):
        stream.response.body(body(b"", more=False))
    if setup.get("gone"):
        stream.client_left(None)
    lines_before = stream.stats.messages_out
    assert stream.response.single_frame(message) == frame
    assert stream.stats.messages_out == lines_before + (frame is not None)


# app -> client: lines become frames, the end becomes a close code.

BODY_CASES: list[tuple[str, int, list[Message], list[Message], Close | None]] = [
    (
        "lines",
        200,
        [body(b"a\nb\n")],
        [{"type": "websocket.send", "text": "a"}, {"type": "websocket.send", "text": "b"}],
        None,
    ),
    ("line-across-chunks", 200, [body(b"a"), body(b"b\n")], [{"type": "websocket.send", "text": "ab"}], None),
    (
        "crlf-and-empty-lines",
        200,
        [body(b"a\r\n\n\r\nb\r\n")],
        [{"type": "websocket.send", "text": "a"}, {"type": "websocket.send", "text": "b"}],
        None,
    ),
    ("not-utf8-is-binary", 200, [body(b"\xff\n")], [{"type": "websocket.send", "bytes": b"\xff"}], None),
    (
        "unterminated-tail-at-the-end",
        200,
        [body(b"c", more=False)],
        [{"type": "websocket.send", "text": "c"}],
        Close(1000),
    ),
    ("empty-end", 200, [body(b"", more=False)], [], Close(1000)),
    (
        "error-status",
        404,
        [body(b'{"code":5}', more=False)],
        [{"type": "websocket.send", "text": '{"code":5}'}],
        Close(4404, "Not Found"),
    ),
    ("unknown-status", 799, [body(b"", more=False)], [], Close(4799, "HTTP 799")),
]


@pytest.mark.parametrize(
    ("status", "events", "frames", "closing"),
    [case[1:] for case in BODY_CASES],
    ids=[case[0] for case in BODY_CASES],
)
def test_what_the_response_becomes(
    status: int, events: list[Message], frames: list[Message], closing: Close | None
) -> None:
    c = started(status)
    sent = [frame for event in events for frame in c.response.body(event)]
    assert sent == frames
    assert c.take_close() == closing
    assert c.stats.messages_out == len(frames)


@pytest.mark.parametrize(
    ("status", "event", "single"),
    [
        (200, body(b"a\n"), {"type": "websocket.send", "text": "a"}),
        (200, body(b"\xff\n"), {"type": "websocket.send", "bytes": b"\xff"}),
        (200, body(b"a\nb\n"), None),
        (200, body(b"a\r\n"), None),
        (200, body(b"a"), None),
        (200, body(b"a\n", more=False), None),
        (None, body(b"a\n"), None),
        (200, {"type": "http.response.start", "status": 200}, None),
    ],
)
def test_the_single_line_fast_path_takes_only_what_it_can_answer_alone(
    status: int | None, event: Message, single: Message | None
) -> None:
    c = core() if status is None else started(status)
    assert c.response.single_frame(event) == single
    assert c.stats.messages_out == (single is not None)
    c.client_left(None)
    assert c.response.single_frame(body(b"a\n")) is None  # gone: response_body raises for it


@pytest.mark.parametrize(
    ("events", "error"),
    [
        ([body(b"x\n")], 'before "http.response.start"'),
        ([{"type": "http.response.start", "status": 200}] * 2, "sent twice"),
        ([{"type": "http.response.trailers"}], 'Expected ASGI message "http.response.start"'),
        (
            [{"type": "http.response.start", "status": 200}, body(b"", more=False), body(b"x\n")],
            "after the end",
        ),
    ],
)
def test_asgi_misuse_is_named(events: list[Message], error: str) -> None:
    c = core()

    def feed() -> None:
        for event in events:
            if event["type"] == "http.response.body":
                c.response.body(event)
            else:
                c.response.metadata(event)

    with pytest.raises(RuntimeError, match=error):
        feed()


def test_after_the_server_closed_on_its_own_sends_raise_and_no_close_is_sent() -> None:
    c = started()
    c.server_closed()
    with pytest.raises(ClientDisconnected):
        c.response.body(body(b"x\n"))
    assert c.outcome(ClientDisconnected()) == (logging.DEBUG, "app ended on the client's absence")
    assert c.take_close() is None
    assert c.stats.close_code is None


# The end.


def test_close_decides_once_and_not_for_a_client_already_gone() -> None:
    bare = core()
    bare.close(1011)
    assert bare.take_close() == Close(1011, "")
    stream = core()
    stream.close(1011, "first")
    stream.close(1000, "second")
    assert (stream.take_close(), stream.stats.close_code) == (Close(1011, "first"), 1011)
    gone = core()
    gone.client_left(1000)
    gone.close(1011, "too late")
    assert (gone.take_close(), gone.stats.close_code) == (None, 1000)
    lost = core()
    lost.server_closed()
    assert (lost.gone, lost.closed, lost.stats.close_code, lost.take_close()) == (True, True, None, None)
    closed_first = core()
    closed_first.close(1009, "big")
    closed_first.client_left(1000)
    assert (closed_first.stats.close_code, closed_first.closing) == (1009, None)


def ended(
    status: int | None = None, gone: bool = False, complete: bool = False, closed: bool = False
) -> StreamCore:
    stream = core()
    if status is not None:
        stream.response.metadata({"type": "http.response.start", "status": status})
        stream.response.body(body(b"x\n", more=not complete))
        stream.take_close()
    if gone:
        stream.client_left(None)
    if closed:
        stream.close(1009, "big")
        stream.take_close()
    return stream


@pytest.mark.parametrize(
    ("setup", "failure", "level", "message", "close"),
    [
        ({"status": 200, "gone": True}, ClientDisconnected("gone"), logging.DEBUG, "app ended on the client's absence", None),
        ({"status": 200}, ConnectionResetError("reset"), logging.ERROR, "app raised", Close(1011, "internal error")),
        ({"status": 200}, RuntimeError("secret"), logging.ERROR, "app raised", Close(1011, "internal error")),
        ({"status": 200}, MessageTooBig("over 4 bytes"), logging.INFO, "over 4 bytes", Close(1009, "message too big")),
        ({"status": 200}, UpstreamError("reset"), logging.WARNING, "upstream failed", Close(1014, "bad gateway")),
        ({"status": 200, "gone": True}, RuntimeError("bug"), logging.ERROR, "app raised", None),
        ({"status": 200, "complete": True}, None, logging.DEBUG, "app returned", None),
        ({"status": 200, "gone": True}, None, logging.DEBUG, "app returned", None),
        ({"status": 200, "closed": True}, None, logging.DEBUG, "app returned", None),
        ({}, None, logging.ERROR, "app returned without a response", Close(1011, "no response")),
        ({"status": 200}, None, logging.ERROR, "app returned before finishing its response", Close(1011, "incomplete response")),
    ],
)  # fmt: skip
def test_outcome(
    setup: dict[str, Any], failure: BaseException | None, level: int, message: str, close: Close | None
) -> None:
    stream = ended(**setup)  # built per run: a row's stream is changed by the call
    assert stream.outcome(failure) == (level, message)
    assert stream.take_close() == close


# How the app's end is reported.


def _complete(c: StreamCore) -> StreamCore:
    c.response.body(body(b"", more=False))
    c.take_close()
    return c


OUTCOMES: list[tuple[str, Callable[[], StreamCore], BaseException | None, int, Close | None]] = [
    ("returned-complete", lambda: _complete(started()), None, logging.DEBUG, None),
    ("returned-without-response", core, None, logging.ERROR, Close(1011, "no response")),
    ("returned-mid-response", started, None, logging.ERROR, Close(1011, "incomplete response")),
    ("raised", started, ValueError("secret"), logging.ERROR, Close(1011, "internal error")),
    ("raised-too-big", started, MessageTooBig("x"), logging.INFO, Close(1009, "message too big")),
    ("raised-upstream", started, UpstreamError("x"), logging.WARNING, Close(1014, "bad gateway")),
    ("oserror-client-present", started, OSError("x"), logging.ERROR, Close(1011, "internal error")),
]


@pytest.mark.parametrize(
    ("make", "failure", "level", "closing"),
    [case[1:] for case in OUTCOMES],
    ids=[case[0] for case in OUTCOMES],
)
def test_how_the_apps_end_is_reported(
    make: Callable[[], StreamCore], failure: BaseException | None, level: int, closing: Close | None
) -> None:
    c = make()
    assert c.outcome(failure)[0] == level
    assert c.take_close() == closing


def test_an_app_that_trips_over_its_gone_client_is_not_an_error() -> None:
    c = started()
    c.client_left(None)
    assert c.outcome(ClientDisconnected())[0] == logging.DEBUG
    assert c.take_close() is None


# Read-ahead and idleness.


def test_read_ahead_keeps_64_kib_then_stops_and_a_message_after_the_end_is_a_violation() -> None:
    c = core()
    chunk = text("x" * 1024)
    kept = 0
    while c.may_read_ahead():
        assert c.read_ahead(chunk) == KEEP
        kept += 1
    assert kept == 64 * 1024 // 1024 + 1  # 64 KiB, plus the message that crossed it
    assert c.next_kept() == chunk
    assert c.may_read_ahead()
    assert c.read_ahead(text("")) == KEEP  # the half-close, read ahead
    assert c.read_ahead(text("late")) == VIOLATION
    assert c.take_close() == Close(1008, "message after end of request body")


def test_read_ahead_sees_the_client_go() -> None:
    c = core()
    assert c.read_ahead({"type": "websocket.disconnect", "code": 1006}) == GONE
    assert c.gone
    assert not c.may_read_ahead()


def test_the_end_of_the_body_with_a_message_already_waiting_is_a_violation() -> None:
    nothing_waits = core()
    nothing_waits.client_message(text(""))
    assert nothing_waits.next_action() is BODY_ENDED
    c = core(single_message=True)
    c.read_ahead(text("waiting"))
    c.client_message(text("first"))  # a single-message call: the first ends the body
    assert c.next_action() == Close(1008, "message after end of request body")


# A call without a body (GET, HEAD).


def bodyless(**settings: Any) -> StreamCore:
    return StreamCore(StreamSettings(**settings), bodyless=True)


def test_a_call_without_a_body_starts_with_it_ended_and_watches_the_socket() -> None:
    c = bodyless()
    assert not c.body_open
    assert c.pending
    assert c.next_action() is BODY_ENDED  # the shell watches the socket from the start
    assert c.next_action() is None
    assert c.ended_body() == request(b"", more=False)  # the app's first receive
    assert c.ended_body() is None  # once: then the app waits for the client to go
    assert c.stats.messages_in == 0


@pytest.mark.parametrize(
    "message", [text("x"), binary(b"x"), text("{}"), binary(b"\xff"), text("END")], ids=repr
)
def test_a_client_message_on_a_call_without_a_body_closes_1008_as_upstream_does(message: Message) -> None:
    c = bodyless()
    assert c.read_ahead(message) == VIOLATION
    # The same code and reason as wsproxy.upstream's RequestBodyNotAllowed.
    assert c.next_action() == Close(1008, "message after end of request body")
    assert closecodes.close_for_exception(RequestBodyNotAllowed("GET takes no request body")) == (
        1008,
        "message after end of request body",
    )
    assert c.ended_body() is None  # gone: the app hears of it as a disconnect


@pytest.mark.parametrize(
    ("settings", "marker"),
    [
        ({}, text("")),
        ({}, binary(b"")),
        ({}, {"type": "websocket.receive"}),
        ({"half_close": b"END"}, text("END")),
    ],
    ids=repr,
)
def test_the_half_close_on_a_call_without_a_body_changes_nothing(
    settings: dict[str, Any], marker: Message
) -> None:
    c = bodyless(**settings)
    for _ in range(3):  # however often
        assert c.read_ahead(marker) == KEEP
    assert c.next_kept() is None  # nothing kept for the app
    assert not c.closed
    assert c.may_read_ahead()  # the socket is still watched
    assert c.ended_body() == request(b"", more=False)


def test_with_the_half_close_disabled_an_empty_message_on_a_call_without_a_body_is_a_violation() -> None:
    c = bodyless(half_close=None)
    assert c.read_ahead(text("")) == VIOLATION
    assert c.take_close() == Close(1008, "message after end of request body")


def test_a_call_without_a_body_sees_its_client_go() -> None:
    c = bodyless()
    assert c.read_ahead({"type": "websocket.disconnect", "code": 1001}) == GONE
    assert c.ended_body() is None
    assert c.stats.close_code == 1001


def test_a_call_with_a_body_is_not_owed_an_ended_one() -> None:
    for c in (core(), core(single_message=True)):
        assert c.body_open
        assert not c.pending
        assert c.ended_body() is None
        assert c.read_ahead(text("")) == KEEP  # kept: the app reads the half-close
        assert c.next_kept() == text("")


def test_idle_timeout_counts_whole_ticks_without_traffic() -> None:
    c = core(idle_timeout=2.5)  # 3 ticks of 1 s
    assert [c.tick(), c.tick()] == [False, False]
    c.client_message(text("traffic"))
    assert [c.tick(), c.tick(), c.tick()] == [False, False, False]  # the first tick saw the traffic
    assert c.tick()
    assert c.take_close() == Close(1001, "idle timeout")
    assert not core().tick()  # no idle timeout set


# Idleness.


@pytest.mark.parametrize(("timeout", "ticks"), [(0.5, 1), (1, 1), (1.5, 2), (2, 2), (3, 3)])
def test_the_idle_timeout_runs_out_after_whole_ticks_without_traffic(timeout: float, ticks: int) -> None:
    stream = core(idle_timeout=timeout)
    assert [stream.tick() for _ in range(ticks)] == [False] * (ticks - 1) + [True]
    assert stream.take_close() == Close(1001, "idle timeout")
    assert stream.tick() is False  # gone: no second close


def test_traffic_either_way_or_the_end_of_the_body_restarts_the_idle_count() -> None:
    stream = core(idle_timeout=2)
    assert stream.tick() is False
    stream.client_message(text("in"))
    assert stream.tick() is False
    assert stream.tick() is False
    stream.response.metadata({"type": "http.response.start", "status": 200})
    stream.response.body(body(b"out\n"))
    assert stream.tick() is False
    assert stream.tick() is False
    stream.client_message(text(""))  # the half-close
    assert stream.tick() is False
    assert stream.tick() is False
    assert stream.tick() is True
    assert core().tick() is False  # no idle timeout: never


# Settings and helpers.


def test_settings_come_from_the_options() -> None:
    options = ProxyOptions(half_close_message="END", max_message_size=10, max_line_size=20, idle_timeout=5)
    assert StreamSettings.from_options(options) == StreamSettings(
        half_close=b"END", max_message_size=10, max_line_size=20, idle_timeout=5
    )
    assert StreamSettings.from_options(ProxyOptions()).half_close == b""


@pytest.mark.parametrize(
    ("message", "data", "size"),
    [(text("é"), "é".encode(), 1), (binary(b"ab"), b"ab", 2), ({"type": "websocket.receive"}, b"", 0)],
)
def test_message_data_and_size(message: Message, data: bytes, size: int) -> None:
    assert message_data(message) == data
    assert message_size(message) == size


def test_the_core_counts_into_its_live_record() -> None:
    def hook(stats: StreamStats) -> None:
        return None

    settings = StreamSettings.from_options(ProxyOptions(), on_stream_start=hook, on_stream_end=hook)
    assert (settings.on_stream_start, settings.on_stream_end) == (hook, hook)
    stats = StreamStats(method="POST", path="/v1/chat", client="10.0.0.1:5")
    stream = StreamCore(settings, stats)
    assert stream.stats is stats
    assert (stats.method, stats.path, stats.client) == ("POST", "/v1/chat", "10.0.0.1:5")
    stream.client_message(text("abc"))
    assert (stats.messages_in, stats.bytes_in) == (1, 3)
    assert not isinstance(stream, StreamStats)  # the record is its own object, for observers to keep


def test_the_settings_defaults_are_the_options_defaults() -> None:
    options = ProxyOptions()
    assert StreamSettings() == StreamSettings.from_options(options)
    assert (StreamSettings().max_message_size, StreamSettings().max_line_size) == (1 << 20, 1 << 20)


@pytest.mark.parametrize("name", ["on_stream_start", "on_stream_end"])
def test_a_hook_that_is_not_callable_is_refused(name: str) -> None:
    with pytest.raises(TypeError, match=rf"^{name} must be callable: \(StreamStats\) -> None$"):
        StreamSettings(**{name: 42})  # type: ignore[arg-type]


# Gathering: short text messages that already wait behind one another reach the app as one chunk.


def gathered(
    first: Message, waiting: list[Message | None], **settings: Any
) -> tuple[StreamCore, Message | None, int]:
    """Offer `first`, then each of `waiting` while the core asks for more, as the shell does with what
    the server already holds (None: the server would wait). Returns the core, its joined event and
    how many times it asked for another message."""
    stream = core(**settings)
    asked = 0
    if stream.join(first):
        for message in [*waiting, None]:
            asked += 1
            if message is None or not stream.join(message):
                break
    return stream, stream.joined(), asked


LONG = "l" * 4096  # the documented bound: texts of 4096 characters or more are never joined


@pytest.mark.parametrize(
    ("first", "waiting", "event", "taken", "leftover", "counts"),
    [
        (text("a"), [], request(b"a\n"), 1, None, (1, 1)),
        (text("a"), [text("b"), text("c"), None], request(b"a\nb\nc\n"), 3, None, (3, 3)),
        (text("é"), [text("ü")], request("é\nü\n".encode()), 2, None, (2, 4)),  # bytes, not characters
        (text("a"), [text("")], request(b"a\n"), 1, text(""), (1, 1)),  # the half-close marker: kept apart
        (text("a"), [binary(b"b")], request(b"a\n"), 1, binary(b"b"), (1, 1)),
        (text("a"), [text("b\nc")], request(b"a\n"), 1, text("b\nc"), (1, 1)),
        (text("a"), [text("b\rc")], request(b"a\n"), 1, text("b\rc"), (1, 1)),
        (text("a"), [text(LONG)], request(b"a\n"), 1, text(LONG), (1, 1)),
        (text("a"), [text(LONG[1:]), None], request(f"a\n{LONG[1:]}\n".encode()), 2, None, (2, 4096)),
        (text("a"), [{"type": "websocket.disconnect", "code": 1001}], request(b"a\n"), 1, None, (1, 1)),
        (text(""), [text("b")], None, 0, None, (0, 0)),
        (binary(b"a"), [text("b")], None, 0, None, (0, 0)),
        (text(LONG), [text("b")], None, 0, None, (0, 0)),
        (text("a\nb"), [text("b")], None, 0, None, (0, 0)),
    ],
)
def test_what_gathering_joins(
    first: Message,
    waiting: list[Message | None],
    event: Message | None,
    taken: int,
    leftover: Message | None,
    counts: tuple[int, int],
) -> None:
    stream, got, took = gathered(first, waiting)
    assert (got, took, stream.next_kept()) == (
        event,
        taken,
        leftover,
    )  # a message kept apart waits in the inbox
    assert (stream.stats.messages_in, stream.stats.bytes_in) == counts


def test_a_disconnect_taken_while_gathering_leaves_the_client_gone_after_the_joined_chunk() -> None:
    stream, got, _ = gathered(text("a"), [text("b"), {"type": "websocket.disconnect", "code": 1001}])
    assert got == request(b"a\nb\n")
    assert (stream.gone, stream.pending, stream.stats.close_code, stream.closing) == (True, True, 1001, None)
    assert stream.next_action() is CLIENT_GONE


def test_gathering_joins_at_most_16_messages_the_yield_budget() -> None:
    stream, got, took = gathered(text("m"), [text("m")] * 40)
    assert got is not None
    assert got["body"] == b"m\n" * 16
    assert (took, stream.stats.messages_in, stream.turn_due, stream.pending) == (15, 16, True, True)


def test_gathering_counts_what_the_budget_already_spent() -> None:
    stream = core()
    for _ in range(10):
        stream.client_message(text("x"))
    assert stream.join(text("m"))
    while stream.join(text("m")):
        pass
    got = stream.joined()
    assert got is not None
    assert got["body"] == b"m\n" * 6
    assert stream.turn_due


@pytest.mark.parametrize(
    ("settings", "single"),
    [({"max_message_size": 16 * KIB - 1}, False), ({}, True)],
)
def test_nothing_is_joined_with_a_small_message_limit_or_a_single_message_call(
    settings: dict[str, Any], single: bool
) -> None:
    stream = core(single, **settings)
    assert stream.join(text("a")) is False
    assert stream.joined() is None


def test_nothing_is_joined_after_the_body_ended() -> None:
    stream = core()
    stream.client_message(text(""))
    assert stream.join(text("a")) is False
    assert stream.joined() is None


@pytest.mark.parametrize(
    ("chunk", "lines"),
    [
        (b"a\nb\n", ["a", "b"]),
        ("é\nü\n".encode(), ["é", "ü"]),
        (b"a\n", ["a"]),
        (b"a\nb", None),  # a tail: the splitter keeps it
        (b"a\r\nb\n", None),  # CR is stripped by the general path
        (b"a\n\nb\n", None),  # empty lines are skipped by the general path
        (b"\xff\nb\n", None),  # not UTF-8: that line goes as a binary frame
        (b"", None),
    ],
)
def test_the_several_lines_fast_path_takes_only_what_the_general_path_would_send_as_text(
    chunk: bytes, lines: list[str] | None
) -> None:
    fast = started()
    assert fast.response.several_lines(body(chunk)) == lines
    if lines is not None:
        general = started()
        assert [frame["text"] for frame in general.response.body(body(chunk))] == lines
        assert (fast.stats.messages_out, fast.stats.bytes_out) == (
            general.stats.messages_out,
            general.stats.bytes_out,
        )


def test_the_several_lines_fast_path_leaves_the_end_and_buffered_tails_to_the_general_path() -> None:
    stream = started()
    assert stream.response.several_lines(body(b"a\nb\n", more=False)) is None
    stream.response.body(body(b"tail"))
    assert stream.response.several_lines(body(b"a\nb\n")) is None
