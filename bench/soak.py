"""Soak: minutes of stream churn with faults mixed in, watching the server's memory and tasks.

    python -m bench.soak --minutes 2

A child process runs uvicorn with the middleware in front of a small app whose routes are the
faults. The parent keeps `--concurrency` clients busy with a random mix of clean calls, abrupt
disconnects, app crashes, oversize messages, hanging apps (left by the client or closed by the idle
timeout) and refused handshakes, and every few seconds asks the child for its RSS, asyncio task
count and open streams. A client that vanishes cannot see what became of its call, so for those the
app records how its call ended (under a call id in the query) and the client asks the child for
that record: the app saw `http.disconnect`, its `send()` raised, or it was cancelled. At the end it waits for the streams to drain and prints a table and a
verdict: flat RSS (the last samples within 10% of the early ones) and tasks back to baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import resource
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import httpx
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bench.apps import ndjson_echo
from wsproxy import WebSocketProxyMiddleware
from wsproxy._types import Message, Receive, Scope, Send

MAX_MESSAGE = 64 * 1024
IDLE_TIMEOUT = 2.0
RSS_TOLERANCE = 0.10
SETTLE_SECONDS = 6.0  # one tick, one grace period and the idle timeout, with room to spare


# The server side (child process).


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class CallLog:
    """How each call that carried a `call` id ended, kept until the client asks (then forgotten)."""

    def __init__(self) -> None:
        self.ended: dict[str, str] = {}
        self.waiting: dict[str, asyncio.Future[str]] = {}

    def record(self, call: str, outcome: str) -> None:
        waiter = self.waiting.pop(call, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(outcome)
        else:
            self.ended[call] = outcome

    async def outcome(self, call: str, timeout: float) -> str:
        if call in self.ended:
            return self.ended.pop(call)
        waiter = self.waiting[call] = asyncio.get_running_loop().create_future()
        try:
            return await asyncio.wait_for(waiter, timeout)
        except asyncio.TimeoutError:
            return "still running"
        finally:
            self.waiting.pop(call, None)


def _outcome_of(exc: BaseException | None, saw_disconnect: bool) -> str:
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    if exc is not None:
        return f"raised {type(exc).__name__}"
    return "returned after http.disconnect" if saw_disconnect else "returned"


def build_app() -> WebSocketProxyMiddleware:
    proxy: WebSocketProxyMiddleware
    calls = CallLog()

    async def start(send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        query = dict(parse_qsl(scope.get("query_string", b"").decode()))
        call = query.get("call")
        if call is None or scope["path"] == "/_outcome":
            await route(scope, query, receive, send)
            return
        saw_disconnect = False

        async def watched() -> Message:
            nonlocal saw_disconnect
            message = await receive()
            saw_disconnect = saw_disconnect or message["type"] == "http.disconnect"
            return message

        failure: BaseException | None = None
        try:
            await route(scope, query, watched, send)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            calls.record(call, _outcome_of(failure, saw_disconnect))

    async def route(scope: Scope, query: dict[str, str], receive: Receive, send: Send) -> None:
        path = scope["path"]
        if path == "/_outcome":  # how call `call` ended, once it has (waits up to `wait` seconds)
            outcome = await calls.outcome(query["call"], float(query.get("wait", "15")))
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": outcome.encode()})
        elif path == "/_stats":
            stats = {"rss": _rss_bytes(), "tasks": len(asyncio.all_tasks()), "streams": proxy.active_streams}
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": json.dumps(stats).encode()})
        elif path == "/echo":
            await ndjson_echo(scope, receive, send)
        elif path == "/crash":
            await start(send)
            await send({"type": "http.response.body", "body": b'{"partial": 1}\n', "more_body": True})
            raise RuntimeError("soak: the app crashed")
        elif path == "/hang":
            await start(send)
            await send({"type": "http.response.body", "body": b'{"ready": 1}\n', "more_body": True})
            await asyncio.Event().wait()
        elif path == "/stream":
            await start(send)
            while True:  # until send() raises because the client left
                await send({"type": "http.response.body", "body": b'{"tick": 1}\n' * 20, "more_body": True})
                await asyncio.sleep(0.005)

    proxy = WebSocketProxyMiddleware(app, max_message_size=MAX_MESSAGE, idle_timeout=IDLE_TIMEOUT)
    return proxy


def serve_forever() -> None:
    # The crashes are deliberate: their tracebacks would drown the table. So would asyncio's
    # "socket.send() raised exception." warnings, from writes to sockets the soak resets on purpose.
    logging.getLogger("wsproxy").setLevel(logging.CRITICAL)
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(build_app(), log_level="critical", lifespan="off", backlog=2048)
    server = uvicorn.Server(config)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    server.run(sockets=[sock])


# The client side (parent process).

Scenario = Callable[[str], Awaitable[str]]


def _vanish(ws: ClientConnection) -> None:
    sock = ws.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.transport.abort()


async def _drain(ws: ClientConnection) -> int | None:
    try:
        while True:
            await ws.recv()
    except ConnectionClosed:
        return ws.close_code


def _connect(url: str) -> connect:
    return connect(url, ping_interval=None, compression=None, max_size=None, open_timeout=30)


async def clean_call(base: str) -> str:
    async with _connect(base + "/echo?method=POST") as ws:
        for i in range(random.randint(1, 50)):
            await ws.send(json.dumps({"i": i, "pad": "p" * random.randint(0, 2000)}))
            await ws.recv()
        await ws.send("")
        return f"clean {await _drain(ws)}"


async def _server_outcome(base: str, call: str) -> str:
    """What the app recorded about call `call`: the evidence for a client that is no longer there."""
    http_base = base.replace("ws://", "http://", 1)
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(f"{http_base}/_outcome", params={"call": call})
    return response.text


async def vanish_mid_call(base: str) -> str:
    call = uuid.uuid4().hex
    async with _connect(f"{base}/echo?method=POST&call={call}") as ws:
        for i in range(random.randint(0, 20)):
            await ws.send(f'{{"i": {i}}}')
            await ws.recv()
        _vanish(ws)
    return f"vanish-mid-call: {await _server_outcome(base, call)}"


async def app_crash(base: str) -> str:
    async with _connect(base + "/crash") as ws:
        return f"crash {await _drain(ws)}"


async def oversize(base: str) -> str:
    async with _connect(base + "/echo?method=POST") as ws:
        await ws.send("o" * (MAX_MESSAGE + 1))
        return f"oversize {await _drain(ws)}"


async def hang_then_vanish(base: str) -> str:
    call = uuid.uuid4().hex
    async with _connect(f"{base}/hang?method=POST&call={call}") as ws:
        await ws.recv()
        if random.random() < 0.5:
            await ws.send("")
        _vanish(ws)
    return f"hang-vanish: {await _server_outcome(base, call)}"


async def hang_until_idle(base: str) -> str:
    async with _connect(base + "/hang") as ws:
        return f"hang-idle {await _drain(ws)}"


async def stream_then_vanish(base: str) -> str:
    call = uuid.uuid4().hex
    async with _connect(f"{base}/stream?call={call}") as ws:
        for _ in range(random.randint(1, 100)):
            await ws.recv()
        _vanish(ws)
    return f"stream-vanish: {await _server_outcome(base, call)}"


async def refused(base: str) -> str:
    try:
        async with _connect(base + "/echo?method=G%0AT"):
            return "refused accepted!"
    except InvalidStatus as exc:
        return f"refused {exc.response.status_code}"


# (scenario, weight, the outcome that is expected)
SCENARIOS: list[tuple[Scenario, int, str]] = [
    (clean_call, 6, "clean 1000"),
    # The app was reading: it got http.disconnect and returned.
    (vanish_mid_call, 3, "vanish-mid-call: returned after http.disconnect"),
    (app_crash, 2, "crash 1011"),
    (oversize, 2, "oversize 1009"),
    # The app neither read nor wrote: cancelled after the grace period.
    (hang_then_vanish, 2, "hang-vanish: cancelled"),
    (hang_until_idle, 1, "hang-idle 1001"),
    # The app was writing: its send() raised ClientDisconnected.
    (stream_then_vanish, 2, "stream-vanish: raised ClientDisconnected"),
    (refused, 1, "refused 400"),
]


@dataclass
class Sample:
    elapsed: float
    rss: int
    tasks: int
    streams: int
    calls: int


async def stats(client: httpx.AsyncClient, base: str) -> dict[str, Any]:
    response = await client.get(base + "/_stats")
    result: dict[str, Any] = response.json()
    return result


async def soak(port: int, minutes: float, concurrency: int, every: float) -> bool:
    ws_base, http_base = f"ws://127.0.0.1:{port}", f"http://127.0.0.1:{port}"
    outcomes: Counter[str] = Counter()
    expected = {outcome for _, _, outcome in SCENARIOS}
    scenarios = [scenario for scenario, _, _ in SCENARIOS]
    weights = [weight for _, weight, _ in SCENARIOS]
    deadline = time.monotonic() + minutes * 60

    async def worker() -> None:
        while time.monotonic() < deadline:
            scenario = random.choices(scenarios, weights)[0]
            try:
                outcomes[await scenario(ws_base)] += 1
            except Exception as exc:
                outcomes[f"{scenario.__name__} {type(exc).__name__}"] += 1

    samples: list[Sample] = []
    async with httpx.AsyncClient() as client:
        baseline = await stats(client, http_base)
        started = time.monotonic()
        workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
        while time.monotonic() < deadline:
            await asyncio.sleep(min(every, max(0.0, deadline - time.monotonic())))
            now = await stats(client, http_base)
            samples.append(
                Sample(time.monotonic() - started, now["rss"], now["tasks"], now["streams"], outcomes.total())
            )
        await asyncio.gather(*workers)
        await asyncio.sleep(SETTLE_SECONDS)
        final = await stats(client, http_base)

    print(f"{'t (s)':>7} {'RSS (MiB)':>10} {'tasks':>6} {'streams':>8} {'calls':>7}")
    for s in samples:
        print(f"{s.elapsed:7.0f} {s.rss / 2**20:10.1f} {s.tasks:6d} {s.streams:8d} {s.calls:7d}")
    print(f"{'settled':>7} {final['rss'] / 2**20:10.1f} {final['tasks']:6d} {final['streams']:8d}")
    print(f"baseline before churn: {baseline['rss'] / 2**20:.1f} MiB, {baseline['tasks']} tasks")
    print("outcomes:", ", ".join(f"{name}: {count}" for name, count in sorted(outcomes.items())))

    early, late = _early_and_late(samples)
    rss_flat = late <= early * (1 + RSS_TOLERANCE)
    tasks_back = final["tasks"] <= baseline["tasks"] and final["streams"] == 0
    unexpected = {name: count for name, count in outcomes.items() if name not in expected}
    print(
        f"RSS: early {early / 2**20:.1f} MiB, late {late / 2**20:.1f} MiB -> {'flat' if rss_flat else 'GROWING'}"
    )
    print(
        f"tasks: {final['tasks']} after vs {baseline['tasks']} before -> {'back' if tasks_back else 'LEAKED'}"
    )
    if unexpected:
        print("unexpected outcomes:", unexpected)
    ok = rss_flat and tasks_back and not unexpected
    print("verdict:", "PASS" if ok else "FAIL")
    return ok


def _early_and_late(samples: list[Sample]) -> tuple[float, float]:
    """Mean RSS of three early samples (after a warm-up third of the run) and of the last three.

    The warm-up lets the allocator reach the high-water mark of a full set of concurrent streams.
    """
    if len(samples) < 9:
        raise SystemExit("soak: too few samples; run longer or sample more often (--sample-every)")
    warm = len(samples) // 3
    early = samples[warm : warm + 3]
    late = samples[-3:]
    return sum(s.rss for s in early) / len(early), sum(s.rss for s in late) / len(late)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=2.0, help="how long to churn (default 2)")
    parser.add_argument("--concurrency", type=int, default=50, help="clients at once (default 50)")
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds between samples (default 5)")
    parser.add_argument("--seed", type=int, default=None, help="random seed, for a repeatable mix")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)
    if args.serve:
        serve_forever()
        return 0
    random.seed(args.seed)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * args.concurrency + 256)), hard))
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.soak", "--serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        if not line.startswith("PORT "):
            print("soak: the server did not start", file=sys.stderr)
            return 1
        ok = asyncio.run(soak(int(line.split()[1]), args.minutes, args.concurrency, args.sample_every))
        return 0 if ok else 1
    finally:
        child.terminate()
        child.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
