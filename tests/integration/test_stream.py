"""The stream core (wsproxy/stream/_core.py) table-driven, and run_stream() over an in-memory WebSocket.

The yield budget's documented numbers (docs/reliability.md: 16 frames or 256 KiB) appear here as
literals, not as the code's constants, so changing the code without the docs turns these red.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Any

import pytest

from wsproxy import closecodes
from wsproxy._handshake import RequestPlan
from wsproxy._types import Message, Receive, Scope, Send
from wsproxy.errors import ClientDisconnected, MessageTooBig, UpstreamError
from wsproxy.stream import Stream, run_stream
from wsproxy.stream._core import GONE, KEEP, VIOLATION, Close, StreamCore, StreamSettings, StreamStats

DOCUMENTED_FRAMES = 16
DOCUMENTED_BYTES = 256 * 1024
DOCUMENTED_PUMP_MESSAGES = 64  # docs/gateway.md: the gateway's own pumps


def core(**settings: Any) -> StreamCore:
    single = settings.pop("single_message", False)
    return StreamCore(StreamSettings(**settings), single_message=single)


def text(data: str) -> Message:
    return {"type": "websocket.receive", "text": data}


def started(status: int = 200, **settings: Any) -> StreamCore:
    c = core(**settings)
    c.response_start({"type": "http.response.start", "status": status})
    return c


def body(data: bytes, more: bool = True) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": more}


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
    assert (c.gone, c.closed, c.close_code) == (True, True, 4000)
    c.close(closecodes.NORMAL)
    assert c.take_close() is None
    assert c.close_code == 4000


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
    sent = [frame for event in events for frame in c.response_body(event)]
    assert sent == frames
    assert c.take_close() == closing
    assert c.messages_out == len(frames)


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
    assert c.single_frame(event) == single
    assert c.messages_out == (single is not None)
    c.client_left(None)
    assert c.single_frame(body(b"a\n")) is None  # gone: response_body raises for it


def test_a_response_line_over_the_limit_closes_1009() -> None:
    c = started(max_line_size=4)
    assert list(c.response_body(body(b"abcd\n"))) == [{"type": "websocket.send", "text": "abcd"}]
    with pytest.raises(MessageTooBig):
        c.response_body(body(b"abcde\n"))
    assert c.take_close() == Close(1009, "response line too big")
    with pytest.raises(ClientDisconnected):
        c.response_body(body(b"a\n"))


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
                c.response_body(event)
            else:
                c.response_start(event)

    with pytest.raises(RuntimeError, match=error):
        feed()


def test_after_the_server_closed_on_its_own_sends_raise_and_no_close_is_sent() -> None:
    c = started()
    c.server_closed()
    with pytest.raises(ClientDisconnected):
        c.response_body(body(b"x\n"))
    assert c.outcome(ClientDisconnected()) == (logging.DEBUG, "app ended on the client's absence")
    assert c.take_close() is None
    assert c.close_code is None


# How the app's end is reported.


def _complete(c: StreamCore) -> StreamCore:
    c.response_body(body(b"", more=False))
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
    c.took_from_inbox(chunk)
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
    assert not core().body_ended(unread=False)
    c = core()
    assert c.body_ended(unread=True)
    assert c.take_close() == Close(1008, "message after end of request body")


def test_idle_timeout_counts_whole_ticks_without_traffic() -> None:
    c = core(idle_timeout=2.5)  # 3 ticks of 1 s
    assert [c.tick(), c.tick()] == [False, False]
    c.client_message(text("traffic"))
    assert [c.tick(), c.tick(), c.tick()] == [False, False, False]  # the first tick saw the traffic
    assert c.tick()
    assert c.take_close() == Close(1001, "idle timeout")
    assert not core().tick()  # no idle timeout set


# The yield budget, in the documented numbers.


def test_the_budget_is_16_frames_in_either_direction() -> None:
    c = started()
    for i in range(DOCUMENTED_FRAMES - 1):
        if i % 2:
            c.client_message(text("m"))
        else:
            c.response_body(body(b"m\n"))
        assert not c.yield_due
    c.client_message(text("m"))
    assert c.yield_due
    assert not c.yielded()  # the app read during that budget: no need to watch the socket for it
    assert (c.yield_due, c.spent) == (False, 0)


def test_the_budget_is_256_kib() -> None:
    c = core()
    for _ in range(3):
        c.client_message(text("x" * (64 * 1024)))
        assert not c.yield_due
    c.client_message(text("x" * (64 * 1024)))  # 256 KiB
    assert c.yield_due
    c.yielded()
    c.client_message(text("x" * DOCUMENTED_BYTES))  # one message of 256 KiB ends a turn by itself
    assert c.yield_due


def test_a_chunk_of_many_lines_is_charged_frame_by_frame() -> None:
    c = started()
    frames = c.response_body(body(b"line\n" * 100))
    assert len(frames) == 100
    assert not c.yield_due  # charged as the shell sends them
    due = [c.charge_frame(frame) for frame in frames[:DOCUMENTED_FRAMES]]
    assert due == [False] * (DOCUMENTED_FRAMES - 1) + [True]
    assert c.yielded()  # only sent: the shell must watch the socket


def test_an_app_sending_nothing_but_empty_bodies_still_spends_its_budget() -> None:
    c = started()
    for _ in range(DOCUMENTED_FRAMES):
        assert list(c.response_body(body(b""))) == []
    assert c.yield_due


# run_stream() over an in-memory WebSocket: the shell keeps the core's promises.

PLAN = RequestPlan(
    scope={"type": "http", "method": "POST", "path": "/p", "client": ("10.0.0.1", 5000)},
    subprotocol=None,
    single_message=False,
)


class MemorySocket:
    """An ASGI WebSocket pair that never suspends (like a server with data queued and room to write),
    counting the frames that pass; `turns` records the counts each time the event loop gets a turn."""

    def __init__(self, incoming: int = 0, size: int = 10) -> None:
        self.incoming = incoming
        self.message = text("x" * size)
        self.received = 0
        self.sent: list[Message] = []
        self.frames = 0
        self.lost = asyncio.Event()

    async def receive(self) -> Message:
        if self.received < self.incoming:
            self.received += 1
            return dict(self.message)  # a fresh event each time, as servers make them
        if self.received == self.incoming:
            self.received += 1
            return text("")  # the half-close
        await self.lost.wait()
        return {"type": "websocket.disconnect", "code": 1006}

    async def send(self, message: Message) -> None:
        self.sent.append(message)
        if message["type"] == "websocket.send":
            self.frames += 1


async def watch_turns(count: Callable[[], int], turns: list[int]) -> None:
    while True:
        turns.append(count())
        await asyncio.sleep(0)


async def run_with_turns(app: Any, sock: MemorySocket, count: Callable[[], int]) -> tuple[StreamStats, int]:
    """Run the stream; the most frames that passed between two turns of the loop."""
    turns: list[int] = []
    watcher = asyncio.create_task(watch_turns(count, turns))
    await asyncio.sleep(0)
    try:
        stats = await run_stream(app, PLAN, StreamSettings(), sock.receive, sock.send)
    finally:
        watcher.cancel()
    turns.append(count())
    return stats, max(b - a for a, b in itertools.pairwise(turns))


def producer(lines: int, per_send: int, line: bytes = b"x" * 10) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200})
        for _ in range(lines // per_send):
            await send(body((line + b"\n") * per_send))
        await send(body(b"", more=False))

    return app


@pytest.mark.parametrize("per_send", [1, 100])
async def test_an_app_that_only_sends_yields_every_16_frames(per_send: int) -> None:
    sock = MemorySocket()
    stats, most = await run_with_turns(producer(2000, per_send), sock, lambda: sock.frames)
    assert len(sock.sent) == 2000 + 2  # accept, the lines, close
    assert most <= DOCUMENTED_FRAMES
    assert (stats.messages_out, stats.bytes_out, stats.close_code) == (2000, 20_000, 1000)


async def test_an_app_that_sends_big_lines_yields_every_256_kib() -> None:
    sock = MemorySocket()
    line = b"x" * (100 * 1024)
    _, most = await run_with_turns(producer(20, 1, line), sock, lambda: sock.frames)
    assert most * len(line) <= DOCUMENTED_BYTES + len(line)  # the frame that crosses it included


async def test_an_app_that_only_reads_yields_every_16_frames() -> None:
    async def reader(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200})
        await send(body(b"", more=False))

    sock = MemorySocket(incoming=2000)
    stats, most = await run_with_turns(reader, sock, lambda: sock.received)
    assert sock.received == 2001
    assert most <= DOCUMENTED_FRAMES
    assert (stats.messages_in, stats.bytes_in) == (2000, 20_000)
    assert (stats.method, stats.path, stats.client) == ("POST", "/p", "10.0.0.1:5000")


async def test_a_stream_that_waits_for_its_client_takes_no_forced_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A receive that suspends (the client's next message not there yet) gives the loop its turn:
    the budget starts over then, and no extra sleep(0) is spent (docs/reliability.md)."""
    forced = 0
    take_turn = Stream._take_turn

    async def counted(self: Any) -> None:
        nonlocal forced
        forced += 1
        await take_turn(self)

    monkeypatch.setattr(Stream, "_take_turn", counted)

    class WaitingSocket(MemorySocket):
        async def receive(self) -> Message:
            await asyncio.sleep(0)  # each message arrives after a turn of the loop
            return await super().receive()

    waiting = WaitingSocket(incoming=2000)
    stats = await run_stream(echo, PLAN, StreamSettings(), waiting.receive, waiting.send)
    assert (stats.messages_in, stats.messages_out) == (2000, 2000)
    assert forced == 0
    # The same app on a socket that never suspends is made to take its turns.
    eager = MemorySocket(incoming=2000)
    await run_stream(echo, PLAN, StreamSettings(), eager.receive, eager.send)
    assert forced >= 2000 // DOCUMENTED_FRAMES


class QueueSocket:
    """An ASGI WebSocket whose messages wait in a queue, like uvicorn's; counts concurrent readers."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[Message] = asyncio.Queue()
        self.sent: list[Message] = []
        self.readers = 0
        self.most_readers = 0

    async def receive(self) -> Message:
        self.readers += 1
        self.most_readers = max(self.most_readers, self.readers)
        try:
            return await self.incoming.get()
        finally:
            self.readers -= 1

    async def send(self, message: Message) -> None:
        self.sent.append(message)


async def test_a_send_in_another_task_never_starts_a_reader_beside_receive() -> None:
    """A bidi app reads in one task and streams in another. Its receive stops the reader ahead (an
    await); a send meanwhile must not start a new one: two readers on one socket, and the message
    the app waits for lands in the inbox, unseen (this hung the demo's Chat on asyncio)."""
    sock = QueueSocket()
    got: list[Message] = []
    start_reading = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200})

        async def stream_lines() -> None:
            for _ in range(2000):  # never suspends: forced turns, with the read-ahead started
                await send(body(b"x\n"))

        async def read_one() -> None:
            await start_reading.wait()
            got.append(await receive())

        await asyncio.gather(stream_lines(), read_one())
        await send(body(b"", more=False))

    stream = asyncio.create_task(run_stream(app, PLAN, StreamSettings(), sock.receive, sock.send))
    for _ in range(40):
        await asyncio.sleep(0)
    start_reading.set()
    for _ in range(4):
        await asyncio.sleep(0)
    sock.incoming.put_nowait(text("hello"))
    sock.incoming.put_nowait(text(""))
    stats = await asyncio.wait_for(stream, 5)
    assert got == [{"type": "http.request", "body": b"hello\n", "more_body": True}]
    assert sock.most_readers == 1
    assert (stats.messages_out, stats.close_code) == (2000, 1000)


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200})
    while True:
        message = await receive()
        if message.get("body"):
            await send(body(message["body"]))
        if not message.get("more_body"):
            break
    await send(body(b"", more=False))


async def test_a_client_lost_while_the_app_only_sends_is_noticed_within_a_few_budgets() -> None:
    """As on hypercorn, where sends to a lost client are dropped without an error."""
    sock = MemorySocket()
    sends = 0

    async def endless(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal sends
        await send({"type": "http.response.start", "status": 200})
        while True:
            await send(body(b"x\n"))
            sends += 1
            if sends == 100:
                sock.lost.set()

    stats = await asyncio.wait_for(run_stream(endless, PLAN, StreamSettings(), sock.receive, sock.send), 30)
    assert stats.close_code == 1006
    assert sends <= 100 + 2 * DOCUMENTED_FRAMES


# The middleware's on_stream_end observer, on a real server.


async def test_on_stream_end_gets_each_streams_record(ws_impl: str) -> None:
    from websockets.asyncio.client import connect

    from bench.apps import ndjson_echo
    from tests.support.servers import drain, serve
    from wsproxy import WebSocketProxyMiddleware

    records: asyncio.Queue[StreamStats] = asyncio.Queue()
    started: list[StreamStats] = []
    app = WebSocketProxyMiddleware(
        ndjson_echo, on_stream_start=started.append, on_stream_end=records.put_nowait
    )
    async with serve(app, ws=ws_impl) as server:
        async with connect(server.ws + "/echo?method=POST") as ws:
            for message in ("ab", "cd", "ef"):
                await ws.send(message)
            await ws.send("")
            frames, code, _ = await drain(ws)
        assert (frames, code) == (["ab", "cd", "ef"], 1000)
        stats = await asyncio.wait_for(records.get(), 10)
    assert started == [stats]
    assert started[0] is stats  # one live record, counted in place
    assert (stats.method, stats.path, stats.close_code) == ("POST", "/echo", 1000)
    assert (stats.messages_in, stats.bytes_in, stats.messages_out, stats.bytes_out) == (3, 6, 3, 6)
    assert stats.client is not None
    assert stats.client.startswith("127.0.0.1:")
    assert stats.duration > 0


async def test_an_observer_that_raises_is_logged_and_harms_nothing(caplog: pytest.LogCaptureFixture) -> None:
    from websockets.asyncio.client import connect

    from bench.apps import ndjson_echo
    from tests.support.servers import drain, serve
    from wsproxy import WebSocketProxyMiddleware

    def broken(stats: StreamStats) -> None:
        raise ValueError("observer bug")

    async with serve(WebSocketProxyMiddleware(ndjson_echo, on_stream_end=broken)) as server:
        for _ in range(2):
            async with connect(server.ws + "/echo") as ws:
                await ws.send("x")
                await ws.send("")
                assert (await drain(ws))[:2] == (["x"], 1000)
    assert any("stream observer" in r.getMessage() and "raised" in r.getMessage() for r in caplog.records)


# The gateway's pumps charge the same budget.


async def test_the_gateways_pumps_yield_every_64_messages() -> None:
    from wsproxy.gateway._io import RequestReader, ResponseWriter

    count = 0

    async def send(message: Message) -> None:
        nonlocal count
        count += 1

    async def receive() -> Message:
        nonlocal count
        count += 1
        return {"type": "http.request", "body": b'{"n": 1}\n', "more_body": True}

    async def write() -> None:
        writer = ResponseWriter(send, lambda message: b"{}")
        for _ in range(1000):
            await writer.stream_item({}, [])

    async def read() -> None:
        reader = RequestReader(receive, max_value_size=1024)
        for _ in range(1000):
            assert await reader.next_value() == {"n": 1}

    def current() -> int:
        return count

    for pump in (write, read):
        turns: list[int] = []
        count = 0
        watcher = asyncio.create_task(watch_turns(current, turns))
        await asyncio.sleep(0)
        await pump()
        watcher.cancel()
        turns.append(count)
        assert count >= 1000
        assert max(b - a for a, b in itertools.pairwise(turns)) <= DOCUMENTED_PUMP_MESSAGES


async def test_the_record_is_live_and_ends_even_when_the_server_cancels_the_stream() -> None:
    seen: list[tuple[str, int, int]] = []
    ended = asyncio.Event()
    sent_one = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200})
        await send(body(b"one\n"))
        sent_one.set()
        await asyncio.Event().wait()  # hangs until cancelled

    def start(stats: StreamStats) -> None:
        seen.append(("start", stats.messages_in, stats.messages_out))

    def end(stats: StreamStats) -> None:
        seen.append(("end", stats.messages_in, stats.messages_out))
        ended.set()

    sock = MemorySocket(incoming=2)
    settings = StreamSettings(on_stream_start=start, on_stream_end=end)
    task = asyncio.create_task(run_stream(app, PLAN, settings, sock.receive, sock.send))
    await sent_one.wait()
    task.cancel()  # as a server does at a forced shutdown
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ended.is_set()
    assert seen == [("start", 0, 0), ("end", 0, 1)]


def test_observers_must_be_callable() -> None:
    with pytest.raises(TypeError, match="on_stream_end must be callable"):
        StreamSettings(on_stream_end=42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "failure",
    [
        RuntimeError("Unexpected ASGI message 'websocket.send', after sending 'websocket.close'."),
        OSError("connection reset"),
    ],
    ids=["server-closed-keepalive", "reset"],
)
async def test_a_send_the_server_refuses_is_a_client_gone_with_no_second_close(
    failure: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    """As after uvicorn's keepalive timeout: its send raises RuntimeError once it sent its own close."""
    attempts: list[str] = []
    outcome: list[BaseException] = []

    async def receive() -> Message:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        attempts.append(message["type"])
        if message["type"] != "websocket.accept" and len(attempts) > 10:
            raise failure

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200})
        try:
            while True:
                await send(body(b"line\n"))
        except ClientDisconnected as exc:
            outcome.append(exc)
            raise

    stats = await asyncio.wait_for(run_stream(app, PLAN, StreamSettings(), receive, send), 10)
    assert len(outcome) == 1  # the app saw its client gone...
    assert attempts.count("websocket.close") == 0  # ...and no close frame was attempted after it
    assert stats.close_code is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
