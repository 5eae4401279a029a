"""The stream's I/O shell: run_stream() over an in-memory WebSocket, and its observers on a real server.

The core's decisions are table-tested in tests/unit/test_stream_core.py and test_stream_budget.py;
here the shell must keep them. The turn budget's documented numbers (docs/reliability.md: 16 frames
or 256 KiB) appear here as literals, not as the code's constants, so changing the code without the
docs turns these red.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from wsproxy._handshake import RequestPlan
from wsproxy._types import Message, Receive, Scope, Send
from wsproxy.errors import ClientDisconnected
from wsproxy.stream import Stream, StreamSettings, StreamStats, run_stream

DOCUMENTED_FRAMES = 16
DOCUMENTED_BYTES = 256 * 1024
DOCUMENTED_PUMP_MESSAGES = 64  # docs/gateway.md: the gateway's own pumps


def text(data: str) -> Message:
    return {"type": "websocket.receive", "text": data}


def body(data: bytes, more: bool = True) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": more}


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


async def test_a_server_whose_receive_is_not_a_coroutine_is_awaited_plainly() -> None:
    """The fallback of wsproxy/stream/_nowait.py: a receive that returns a Future is never run by hand;
    every message still reaches the app, in order, each as its own event (nothing joined)."""
    queued = [text(f"m{i}") for i in range(40)] + [text("")]
    awaited = 0

    def receive() -> Awaitable[Message]:
        nonlocal awaited
        awaited += 1
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        future.set_result(queued.pop(0) if queued else {"type": "websocket.disconnect", "code": 1000})
        return future

    events: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200})
        while True:
            event = await receive()
            events.append(event)
            if event.get("body"):
                await send(body(event["body"]))
            if not event.get("more_body"):
                break
        await send(body(b"", more=False))

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    stats = await asyncio.wait_for(run_stream(app, PLAN, StreamSettings(), receive, send), 10)
    assert [event["body"] for event in events] == [f"m{i}\n".encode() for i in range(40)] + [b""]
    assert [m["text"] for m in sent if m["type"] == "websocket.send"] == [f"m{i}" for i in range(40)]
    assert (stats.messages_in, stats.messages_out, stats.close_code) == (40, 40, 1000)
    assert awaited == 41  # one receive per message: none started ahead and left over


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
            async with connect(server.ws + "/echo?method=POST") as ws:
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
