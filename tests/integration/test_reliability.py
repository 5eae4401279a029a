"""Reliability guarantees against real uvicorn: order and completeness both ways, clean-up after a
client vanishes at any point, faulty apps that end only their own stream, and the limits.

Each fault row of docs/reliability.md names the test here that backs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import json
import logging
import os
import random
import socket
import struct
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.support.reliability_apps import Tracker, tracked_app
from tests.support.servers import Running, drain, serve
from wsproxy import WebSocketProxyMiddleware
from wsproxy.stream import Stream as _Stream

SETTLE_SECONDS = 10.0  # generous: the middleware needs one tick + one grace period (about 2 s)


# What "nothing left behind" means, measured in this process (server and client share it).


@dataclass(frozen=True)
class Footprint:
    tasks: int
    fds: int
    streams: int

    @classmethod
    def now(cls) -> Footprint:
        gc.collect()
        streams = sum(1 for obj in gc.get_objects() if isinstance(obj, _Stream))
        return cls(len(asyncio.all_tasks()), len(os.listdir("/proc/self/fd")), streams)

    def within(self, baseline: Footprint) -> bool:
        return self.tasks <= baseline.tasks and self.fds <= baseline.fds and self.streams == 0


async def settled(baseline: Footprint, proxy: WebSocketProxyMiddleware, tracker: Tracker) -> Footprint:
    """Wait until every stream has been cleaned up; return what is left either way."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_SECONDS
    while True:
        now = Footprint.now()
        done = now.within(baseline) and proxy.active_streams == 0 and tracker.live == 0
        if done or loop.time() > deadline:
            return now
        await asyncio.sleep(0.1)


async def assert_nothing_left(baseline: Footprint, proxy: WebSocketProxyMiddleware, tracker: Tracker) -> None:
    left = await settled(baseline, proxy, tracker)
    assert tracker.live == 0, "an app call is still running"
    assert proxy.active_streams == 0
    assert left.streams == 0, "a stream (and its buffers) is still alive"
    assert left.tasks <= baseline.tasks, f"tasks left behind: {left.tasks} > {baseline.tasks}"
    assert left.fds <= baseline.fds, f"sockets left open: {left.fds} > {baseline.fds}"


def vanish(ws: ClientConnection) -> None:
    """Drop the TCP connection with a reset, no close frame: a client that just disappears."""
    sock = ws.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.transport.abort()


@contextlib.contextmanager
def wsproxy_errors_unlogged() -> Iterator[None]:
    """pytest's log capture keeps the records of "app raised" errors, and with them the traceback
    and the stream it names; that would look like a leak. These tests assert on outcomes, not logs."""
    logger = logging.getLogger("wsproxy")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


@dataclass
class Proxy:
    running: Running
    proxy: WebSocketProxyMiddleware
    tracker: Tracker
    baseline: Footprint


@pytest.fixture
async def proxied(ws_impl: str, request: pytest.FixtureRequest) -> AsyncIterator[Proxy]:
    options = getattr(request, "param", {})
    tracker = Tracker()
    proxy = WebSocketProxyMiddleware(tracked_app(tracker), **options)
    with wsproxy_errors_unlogged():
        async with serve(proxy, ws=ws_impl) as running:
            await asyncio.sleep(0)
            yield Proxy(running, proxy, tracker, Footprint.now())


def connect_to(p: Proxy, target: str) -> connect:
    """A POST call: these streams carry a request body (a GET has none, docs/protocol.md)."""
    target += "&method=POST" if "?" in target else "?method=POST"
    return connect(p.running.ws + target, max_size=None, ping_interval=None)


# 1. Order and completeness, both ways.


async def test_thousands_of_messages_come_back_as_lines_in_order(proxied: Proxy) -> None:
    count = 5000
    sent = [json.dumps({"seq": i, "pad": "x" * (i % 97)}) for i in range(count)]
    async with connect_to(proxied, "/echo") as ws:

        async def send_all() -> None:
            for message in sent:
                await ws.send(message)
            await ws.send("")

        sender = asyncio.create_task(send_all())
        frames, code, _ = await drain(ws)
        await sender
    assert code == 1000
    assert frames == sent
    # One line per message, in order; messages that waited together may share an event (docs/protocol.md).
    assert b"".join(proxied.tracker.bodies["/echo"]) == b"".join(m.encode() + b"\n" for m in sent)
    assert proxied.tracker.bodies["/echo"][-1] == b""  # the half-close, an event of its own
    await assert_nothing_left(proxied.baseline, proxied.proxy, proxied.tracker)


async def test_every_message_before_the_half_close_reaches_an_app_that_reads_late(proxied: Proxy) -> None:
    # The app waits past the read-ahead tick, so part of the body goes through the bounded inbox.
    count = 3000
    sent = [f'{{"seq": {i}, "data": "{"y" * 50}"}}' for i in range(count)]
    body = b"".join(m.encode() + b"\n" for m in sent)
    async with connect_to(proxied, "/collect?wait=1.5") as ws:
        for message in sent:
            await ws.send(message)
        await ws.send(b"")
        frames, code, _ = await drain(ws)
    assert code == 1000
    assert json.loads(frames[0]) == {"count": count, "sha256": hashlib.sha256(body).hexdigest()}


async def test_thousands_of_lines_in_unaligned_chunks_all_arrive_before_the_close(proxied: Proxy) -> None:
    count = 5000
    async with connect_to(proxied, f"/emit?n={count}&chunk=13") as ws:
        frames, code, _ = await drain(ws)
    assert code == 1000
    assert frames == [json.dumps({"seq": i}) for i in range(count)]


@pytest.mark.parametrize(
    ("query", "code"),
    [("status=503", 4503), ("status=404", 4404), ("end=raise", 1011)],
    ids=["error-status", "not-found", "app-raises"],
)
async def test_lines_written_before_an_error_or_a_crash_arrive_before_the_close(
    proxied: Proxy, query: str, code: int
) -> None:
    count = 2000
    async with connect_to(proxied, f"/emit?n={count}&chunk=64&{query}") as ws:
        frames, close_code, _ = await drain(ws)
    assert close_code == code
    assert frames == [json.dumps({"seq": i}) for i in range(count)]


@pytest.mark.parametrize("proxied", [{"max_message_size": 4096, "max_line_size": 4096}], indirect=True)
async def test_messages_and_lines_at_the_size_limits_pass_whole_and_one_byte_more_closes_1009(
    proxied: Proxy,
) -> None:
    rng = random.Random(7)
    sizes = [4096, 4095, 1, 4096, *(rng.randint(1, 4096) for _ in range(400)), 4096]
    sent = ["".join(rng.choice('abcdefghij {}":,') for _ in range(size)) for size in sizes]
    sent = [m if m.strip() else "z" * len(m) for m in sent]
    async with connect_to(proxied, "/echo") as ws:
        for message in sent:
            await ws.send(message)
        await ws.send("q" * 4097)
        frames, code, reason = await drain(ws)
    assert (code, reason) == (1009, "message too big")
    assert frames == sent
    async with connect_to(proxied, "/sized?size=4096&n=300") as ws:
        frames, code, _ = await drain(ws)
    assert code == 1000
    assert [len(frame) for frame in frames] == [4096] * 300
    async with connect_to(proxied, "/sized?size=4097&n=1") as ws:
        assert await drain(ws) == ([], 1009, "response line too big")


async def test_messages_at_the_default_one_mebibyte_limit_pass_whole(proxied: Proxy) -> None:
    limit = 1 << 20
    sent = [bytes([65 + i]) * (limit - i) for i in range(4)]
    async with connect_to(proxied, "/echo") as ws:
        for message in sent:
            await ws.send(message)
            assert await ws.recv() == message.decode()
        await ws.send(b"b" * (limit + 1))
        assert (await drain(ws))[1] == 1009


# 2. A client that vanishes at any point leaves nothing behind.


async def _before_first_message(ws: ClientConnection) -> None:
    await asyncio.sleep(0.05)


async def _mid_request(ws: ClientConnection) -> None:
    for i in range(20):
        await ws.send(f'{{"i": {i}}}')
        await ws.recv()


async def _while_the_app_streams(ws: ClientConnection) -> None:
    await ws.recv()  # the app is writing lines faster than anyone reads them


async def _while_the_app_hangs(ws: ClientConnection) -> None:
    await ws.recv()


async def _after_the_half_close(ws: ClientConnection) -> None:
    await ws.recv()
    await ws.send("")


async def _while_the_app_is_away_and_the_inbox_is_full(ws: ClientConnection) -> None:
    await ws.recv()
    for _ in range(40):  # 40 x 8 KiB: more than the read-ahead may hold
        await ws.send("z" * 8192)
    await asyncio.sleep(1.5)  # the read-ahead tick fills the inbox


async def _while_the_app_reads_late(ws: ClientConnection) -> None:
    for i in range(100):
        await ws.send(f'{{"i": {i}}}')


DISCONNECT_POINTS = {
    "before-first-message": ("/echo", _before_first_message, "returned"),
    "mid-request": ("/echo", _mid_request, "returned"),
    "while-the-app-reads-late": ("/collect?wait=1.2", _while_the_app_reads_late, "returned"),
    "while-the-app-streams": ("/emit?n=1000000&chunk=4096&slow=1", _while_the_app_streams, "raised"),
    "while-the-app-hangs": ("/hang", _while_the_app_hangs, "cancelled"),
    "after-the-half-close": ("/hang", _after_the_half_close, "cancelled"),
}


@pytest.mark.parametrize("point", list(DISCONNECT_POINTS))
async def test_a_client_that_vanishes_leaves_no_task_socket_or_buffer(proxied: Proxy, point: str) -> None:
    path, before, outcome = DISCONNECT_POINTS[point]
    target = f"{path}{'&' if '?' in path else '?'}tag={point}"
    async with connect_to(proxied, target) as ws:
        await before(ws)
        vanish(ws)
    await assert_nothing_left(proxied.baseline, proxied.proxy, proxied.tracker)
    assert proxied.tracker.outcomes[point] == outcome


async def test_a_client_that_vanishes_during_the_handshake_leaves_nothing(proxied: Proxy) -> None:
    host, port = proxied.running.host, proxied.running.port
    for _ in range(20):
        _, writer = await asyncio.open_connection(host, port)
        writer.write(
            f"GET /hang HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        writer.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        writer.transport.abort()
    await assert_nothing_left(proxied.baseline, proxied.proxy, proxied.tracker)


# 3. A faulty app ends only its own stream.


async def test_crashing_hanging_and_deaf_apps_end_only_their_own_streams(proxied: Proxy) -> None:
    async with connect_to(proxied, "/echo?tag=healthy") as healthy:

        async def still_works(n: int) -> None:
            await healthy.send(f"ping {n}")
            assert await healthy.recv() == f"ping {n}"

        await still_works(0)
        async with connect_to(proxied, "/crash?tag=crash") as ws:
            assert await drain(ws) == ([], 1011, "internal error")
        await still_works(1)
        async with (
            connect_to(proxied, "/hang?tag=hang") as hanging,
            connect_to(proxied, "/hang?tag=deaf") as deaf,
        ):
            await hanging.recv()
            await deaf.recv()
            for _ in range(4):  # the deaf app never reads: these wait in its (bounded) inbox
                await deaf.send("d" * 8192)
            await still_works(2)
        await still_works(3)
        await healthy.send("")
        assert await drain(healthy) == ([], 1000, "")
    await assert_nothing_left(proxied.baseline, proxied.proxy, proxied.tracker)
    assert proxied.tracker.outcomes == {
        "healthy": "returned",
        "crash": "raised",
        "hang": "cancelled",
        "deaf": "cancelled",
    }


# 4. The limits.


@pytest.mark.parametrize("proxied", [{"max_connections": 3}], indirect=True)
async def test_over_max_connections_is_refused_503_before_app_code_and_a_freed_slot_is_reused(
    proxied: Proxy,
) -> None:
    async def refused() -> None:
        with pytest.raises(InvalidStatus) as info:
            async with connect_to(proxied, "/echo?tag=over"):
                pass
        assert info.value.response.status_code == 503
        assert json.loads(info.value.response.body or b"") == {"error": "too many connections", "status": 503}

    clients = [await connect_to(proxied, f"/echo?tag=c{i}") for i in range(3)]
    await refused()
    await refused()
    assert "over" not in proxied.tracker.bodies
    await clients[0].send("")
    assert (await drain(clients[0]))[1] == 1000
    async with connect_to(proxied, "/echo?tag=again") as ws:
        await ws.send("in")
        assert await ws.recv() == "in"
        await refused()
    for ws in clients[1:]:
        await ws.send("still here")
        assert await ws.recv() == "still here"
        await ws.close()
    await assert_nothing_left(proxied.baseline, proxied.proxy, proxied.tracker)


@pytest.mark.parametrize("proxied", [{"idle_timeout": 1.0}], indirect=True)
@pytest.mark.parametrize(("path", "outcome"), [("/echo", "returned"), ("/hang", "cancelled")])
async def test_a_stream_idle_both_ways_is_closed_1001_and_cleaned_up(
    proxied: Proxy, path: str, outcome: str
) -> None:
    async with connect_to(proxied, path) as ws:
        _, code, reason = await drain(ws)
    assert (code, reason) == (1001, "idle timeout")
    await assert_nothing_left(proxied.baseline, proxied.proxy, proxied.tracker)
    assert proxied.tracker.outcomes[path] == outcome


@pytest.mark.parametrize("proxied", [{"idle_timeout": 1.0}], indirect=True)
async def test_idle_timeout_reclaims_a_deaf_app_whose_client_vanished(proxied: Proxy) -> None:
    # The deaf app never reads, so once its inbox is full nobody reads the socket: the vanished
    # client is invisible. The idle timeout is what ends such a stream.
    async with connect_to(proxied, "/hang?tag=deaf") as ws:
        await ws.recv()
        for _ in range(40):
            await ws.send("z" * 8192)
        vanish(ws)
    await assert_nothing_left(proxied.baseline, proxied.proxy, proxied.tracker)
    assert proxied.tracker.outcomes["deaf"] == "cancelled"
