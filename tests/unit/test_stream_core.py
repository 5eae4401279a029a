"""The stream core's decisions, table-driven and without I/O (wsproxy/stream/_core.py).

Events in, app events and frames out: what each client message means, the read-ahead bound, the
yield budget, the frames and close code of each response, how each ending is reported, idleness.
These rows are also what `make mutate` runs against the core (docs/testing.md).
"""

from __future__ import annotations

import logging
import types
from collections.abc import Generator
from typing import Any

import pytest

from wsproxy._options import ProxyOptions
from wsproxy._types import Message
from wsproxy.errors import ClientDisconnected, MessageTooBig, UpstreamError
from wsproxy.stream._core import (
    GONE,
    KEEP,
    VIOLATION,
    Close,
    StreamCore,
    StreamSettings,
    StreamStats,
    YieldBudget,
    message_data,
    message_size,
)
from wsproxy.stream._nowait import Started, resume

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
    assert (stream.messages_in, stream.bytes_in) == counts
    ends_body = event["type"] == "http.request" and not event["more_body"]
    assert stream.body_open is (not ends_body)
    assert stream.pending is (ends_body or event["type"] == "http.disconnect")  # the shell must act


def test_a_message_over_the_limit_closes_1009() -> None:
    stream = core(max_message_size=3)
    stream.client_message(text("abcd"))
    assert (stream.gone, stream.closed, stream.close_code) == (True, True, 1009)
    assert stream.take_close() == Close(1009, "message too big")
    assert stream.take_close() is None


@pytest.mark.parametrize(
    ("message", "code"),
    [({"type": "websocket.disconnect", "code": 1005}, 1005), ({"type": "websocket.disconnect"}, 1001)],
)
def test_a_disconnect_marks_the_client_gone_with_its_code(message: Message, code: int) -> None:
    stream = core()
    assert stream.client_message(message) == DISCONNECT
    assert (stream.gone, stream.closed, stream.close_code, stream.closing) == (True, True, code, None)


def test_a_new_stream_starts_open_and_counts_every_message() -> None:
    stream = StreamCore(StreamSettings(yield_frames=4, yield_bytes=1000))
    # `is`, not ==: a None where False belongs would pass an equality test.
    flags = (stream.end_read, stream.response_complete, stream.gone, stream.closed, stream.pending)
    assert [flag is False for flag in flags] == [True] * 5
    assert (stream.body_open, stream.close_code, stream.spent) == (True, None, 0)
    assert (stream.method, stream.path, stream.client) == ("", "", None)
    assert stream.client_message(text("a")) == request(b"a\n")  # not a single-message call by default
    stream.client_message(text("bcd"))
    assert (stream.messages_in, stream.bytes_in, stream.spent) == (2, 4, 4 + 2 * 250)


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
    stream.took_from_inbox(text("ab"))
    assert stream.inbox_bytes == 3
    stream.took_from_inbox(binary(b"abc"))
    assert stream.inbox_bytes == 0


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
    assert (stream.gone, stream.close_code) == (True, code)
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
    if gone:
        stream.client_left(None)
    assert stream.body_ended(unread=unread) is violation
    assert stream.take_close() == (Close(1008, "message after end of request body") if violation else None)


# The yield budget: each frame costs its size plus yield_bytes // yield_frames.


@pytest.mark.parametrize(("size", "frames_to_due"), [(1, 4), (249, 3), (250, 2), (1000, 1)])
def test_the_budget_is_due_after_n_frames_or_n_bytes_whichever_first(size: int, frames_to_due: int) -> None:
    stream = core(yield_frames=4, yield_bytes=1000)
    stream.response_start({"type": "http.response.start", "status": 200})
    for _ in range(frames_to_due - 1):
        stream.client_message(binary(b"b" * size))
        assert (stream.yield_due, stream.pending) == (False, False)
    stream.client_message(binary(b"b" * size))
    assert (stream.yield_due, stream.pending) == (True, True)


def test_each_way_of_sending_charges_the_same_budget() -> None:
    by_single = started(yield_frames=1000, yield_bytes=10)  # frame cost 0: bytes alone
    assert by_single.single_frame(body(b"sssss\n")) == {"type": "websocket.send", "text": "sssss"}
    assert (by_single.yield_due, by_single.spent) == (False, 5)
    by_single.single_frame(body(b"sssss\n"))
    assert (by_single.yield_due, by_single.pending, by_single.spent) == (True, True, 10)
    by_body = started(yield_frames=1000, yield_bytes=10)
    by_body.response_body(body(b"bbbbb\n"))  # one frame: charged here
    assert (by_body.yield_due, by_body.spent) == (False, 5)
    by_body.response_body(body(b"bbbbb\n"))
    assert (by_body.yield_due, by_body.spent) == (True, 10)
    several = started(yield_frames=1000, yield_bytes=10)
    frames = several.response_body(body(b"ccccc\nccccc\n"))  # several: the shell charges each
    assert several.spent == 0
    assert [several.charge_frame(frame) for frame in frames] == [False, True]
    assert (several.yield_due, several.pending, several.spent) == (True, True, 10)
    empty = started(yield_frames=2, yield_bytes=10)  # an event with no line still costs its share
    empty.response_body(body(b"partial"))
    assert empty.spent == 5


def test_yielded_starts_the_budget_over_and_says_whether_the_app_only_sent() -> None:
    stream = started(yield_frames=2, yield_bytes=1000)
    stream.client_message(text("in"))
    stream.single_frame(body(b"out\n"))
    assert stream.yield_due is True
    assert stream.yielded() is False  # the app took a message during that budget
    assert (stream.yield_due, stream.spent) == (False, 0)
    stream.single_frame(body(b"out\n"))
    assert stream.yielded() is True  # it only sent
    stream.client_message(text("in"))
    assert stream.yielded() is False


@pytest.mark.parametrize(
    ("frames", "nbytes", "charges", "due_at"),
    [
        (4, 1000, [0, 0, 0, 0, 0], 4),
        (1000, 10, [5, 4, 1, 9], 3),
        (2, 10, [0, 0], 2),
        (3, 10, [0, 0, 0, 0], 4),
    ],
)
def test_the_shared_budget_for_other_pumps(frames: int, nbytes: int, charges: list[int], due_at: int) -> None:
    budget = YieldBudget(frames, nbytes)
    assert budget.spent == 0
    results = [budget.charge(size) for size in charges]
    assert results.index(True) + 1 == due_at
    assert results.count(True) == 1  # it starts over after saying so
    assert YieldBudget().frame_cost == 256 * KIB // 16  # the documented budget (docs/reliability.md)


# app -> client


def started(status: int = 200, **settings: Any) -> StreamCore:
    stream = core(**settings)
    stream.response_start({"type": "http.response.start", "status": status})
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
        out += stream.response_body(chunk)
    assert out == frames
    assert stream.response_complete is (not chunks[-1].get("more_body", False))
    assert stream.messages_out == len(frames)
    assert stream.bytes_out == sum(len(f.get("text", "").encode() or f.get("bytes", b"")) for f in frames)


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
    assert stream.response_body(body(b"last\n", more=True))
    assert stream.take_close() is None
    stream.response_body(body(b"", more=False))
    assert (stream.response_complete, stream.take_close(), stream.close_code) == (True, close, close.code)


def test_a_response_line_over_the_limit_closes_1009() -> None:
    stream = started(max_line_size=4)
    assert list(stream.response_body(body(b"abcd\n"))) == [{"type": "websocket.send", "text": "abcd"}]
    with pytest.raises(MessageTooBig):
        stream.response_body(body(b"abcde\n"))
    assert stream.take_close() == Close(1009, "response line too big")


def test_response_messages_out_of_order_raise_with_what_was_expected() -> None:
    with pytest.raises(
        RuntimeError,
        match=r'^Unexpected ASGI message "http.response.body" before "http.response.start" or after the end$',
    ):
        core().response_body(body(b"x\n"))
    stream = started()
    with pytest.raises(RuntimeError, match=r'^Unexpected ASGI message "http.response.start" sent twice$'):
        stream.response_start({"type": "http.response.start", "status": 200})
    with pytest.raises(
        RuntimeError,
        match=r"""^Expected ASGI message "http.response.start" or "http.response.body", but got 'http.response.trailers'$""",
    ):
        core().response_start({"type": "http.response.trailers"})
    stream.response_body(body(b"", more=False))
    with pytest.raises(RuntimeError):
        stream.response_body(body(b"x\n"))


def test_a_send_after_the_client_left_raises_client_disconnected() -> None:
    stream = started()
    stream.client_left(None)
    with pytest.raises(ClientDisconnected, match=r"^the WebSocket client has gone away$"):
        stream.response_body(body(b"x\n"))


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
        stream.response_start({"type": "http.response.start", "status": 200})
    if setup.get("buffered"):
        stream.response_body(body(b"partial"))
    if setup.get("complete"):
        stream.response_body(body(b"", more=False))
    if setup.get("gone"):
        stream.client_left(None)
    lines_before = stream.messages_out
    assert stream.single_frame(message) == frame
    assert stream.messages_out == lines_before + (frame is not None)


# The end.


def test_close_decides_once_and_not_for_a_client_already_gone() -> None:
    bare = core()
    bare.close(1011)
    assert bare.take_close() == Close(1011, "")
    stream = core()
    stream.close(1011, "first")
    stream.close(1000, "second")
    assert (stream.take_close(), stream.close_code) == (Close(1011, "first"), 1011)
    gone = core()
    gone.client_left(1000)
    gone.close(1011, "too late")
    assert (gone.take_close(), gone.close_code) == (None, 1000)
    lost = core()
    lost.server_closed()
    assert (lost.gone, lost.closed, lost.close_code, lost.take_close()) == (True, True, None, None)
    closed_first = core()
    closed_first.close(1009, "big")
    closed_first.client_left(1000)
    assert (closed_first.close_code, closed_first.closing) == (1009, None)


def ended(
    status: int | None = None, gone: bool = False, complete: bool = False, closed: bool = False
) -> StreamCore:
    stream = core()
    if status is not None:
        stream.response_start({"type": "http.response.start", "status": status})
        stream.response_body(body(b"x\n", more=not complete))
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
    stream.response_start({"type": "http.response.start", "status": 200})
    stream.response_body(body(b"out\n"))
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


def test_the_stream_is_its_own_live_record() -> None:
    def hook(stats: StreamStats) -> None:
        return None

    settings = StreamSettings.from_options(ProxyOptions(), on_stream_start=hook, on_stream_end=hook)
    assert (settings.on_stream_start, settings.on_stream_end) == (hook, hook)
    stream = StreamCore(settings, method="POST", path="/v1/chat", client="10.0.0.1:5")
    assert (stream.method, stream.path, stream.client) == ("POST", "/v1/chat", "10.0.0.1:5")
    stream.client_message(text("abc"))
    assert isinstance(stream, StreamStats)
    assert (stream.messages_in, stream.bytes_in) == (1, 3)


@pytest.mark.parametrize("name", ["on_stream_start", "on_stream_end"])
def test_a_hook_that_is_not_callable_is_refused(name: str) -> None:
    with pytest.raises(TypeError, match=rf"^{name} must be callable: \(StreamStats\) -> None$"):
        StreamSettings(**{name: 42})  # type: ignore[arg-type]


# Gathering: short text messages that already wait behind one another reach the app as one chunk.


class ServerReceive:
    """A server's receive for `gather`: each item of `waiting` is what one call gives. A message is
    there at once, None (or the end of the list) means the call would wait, an exception is raised
    at once. Calls that wait end with `later`, should anyone finish them."""

    def __init__(self, waiting: list[Any], later: Message | None = None) -> None:
        self.waiting = list(waiting)
        self.later = later
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        item = self.waiting.pop(0) if self.waiting else None
        if item is None:
            return self._waits()
        return self._now(item)

    async def _now(self, item: Any) -> Message:
        if isinstance(item, Exception):
            raise item
        message: Message = item
        return message

    @types.coroutine
    def _waits(self) -> Generator[None, None, Message | None]:
        yield None  # suspends: a task would wait here
        return self.later


def gathered(first: Message, waiting: list[Any], **settings: Any) -> tuple[StreamCore, Message | None, int]:
    stream = core(**settings)
    receive = ServerReceive(waiting)
    return stream, stream.gather(first, receive), receive.calls


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
    assert (got, took, stream.leftover) == (event, taken, leftover)
    assert (stream.messages_in, stream.bytes_in) == counts


def test_a_disconnect_taken_while_gathering_leaves_the_client_gone_after_the_joined_chunk() -> None:
    stream, got, _ = gathered(text("a"), [text("b"), {"type": "websocket.disconnect", "code": 1001}])
    assert got == request(b"a\nb\n")
    assert (stream.gone, stream.pending, stream.close_code, stream.closing) == (True, True, 1001, None)


def test_gathering_joins_at_most_16_messages_the_yield_budget() -> None:
    stream, got, took = gathered(text("m"), [text("m")] * 40)
    assert got is not None
    assert got["body"] == b"m\n" * 16
    assert (took, stream.messages_in, stream.yield_due, stream.pending) == (15, 16, True, True)


def test_gathering_counts_what_the_budget_already_spent() -> None:
    stream = core()
    for _ in range(10):
        stream.client_message(text("x"))
    got = stream.gather(text("m"), ServerReceive([text("m")] * 40))
    assert got is not None
    assert got["body"] == b"m\n" * 6
    assert stream.yield_due


@pytest.mark.parametrize(
    ("settings", "single"),
    [({"max_message_size": 16 * KIB - 1}, False), ({}, True)],
)
def test_nothing_is_joined_with_a_small_message_limit_or_a_single_message_call(
    settings: dict[str, Any], single: bool
) -> None:
    stream = core(single, **settings)
    assert stream.gather(text("a"), ServerReceive([text("b")])) is None


def test_nothing_is_joined_after_the_body_ended() -> None:
    stream = core()
    stream.client_message(text(""))
    assert stream.gather(text("a"), ServerReceive([text("b")])) is None


def test_a_receive_that_would_wait_is_kept_for_the_next_read_and_gives_what_comes_later() -> None:
    stream = core()
    receive = ServerReceive([text("b")], later=text("c"))
    assert stream.gather(text("a"), receive) == request(b"a\nb\n")
    assert receive.calls == 2
    started = stream.receiving
    assert isinstance(started, Started)
    rest = resume(started)
    assert rest.send(None) is None  # what the receive yielded, handed on to the task as is
    with pytest.raises(StopIteration) as finished:
        rest.send(None)
    assert finished.value.value == text("c")


def test_a_receive_that_fails_at_once_is_kept_to_raise_at_the_next_read() -> None:
    stream = core()
    assert stream.gather(text("a"), ServerReceive([OSError("reset")])) == request(b"a\n")
    assert stream.receiving is not None
    rest = resume(stream.receiving)
    rest.send(None)
    with pytest.raises(OSError, match="reset"):
        rest.send(None)


def test_a_receive_that_is_not_a_coroutine_is_gathered_from_too() -> None:
    class Done:
        def __await__(self) -> Generator[None, None, Message]:
            return text("b")
            yield  # a generator that returns at once

    stream = core()
    calls = iter([Done(), ServerReceive([])()])
    assert stream.gather(text("a"), lambda: next(calls)) == request(b"a\nb\n")
    assert isinstance(stream.receiving, Started)


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
    assert fast.several_lines(body(chunk)) == lines
    if lines is not None:
        general = started()
        assert [frame["text"] for frame in general.response_body(body(chunk))] == lines
        assert (fast.messages_out, fast.bytes_out) == (general.messages_out, general.bytes_out)


def test_the_several_lines_fast_path_leaves_the_end_and_buffered_tails_to_the_general_path() -> None:
    stream = started()
    assert stream.several_lines(body(b"a\nb\n", more=False)) is None
    stream.response_body(body(b"tail"))
    assert stream.several_lines(body(b"a\nb\n")) is None
