"""Many calls on one socket (wsproxy.mux.v1) against a new socket per call, side by side.

Both sides use wsproxy.client against the same pinned echo server (the proxy around the NDJSON echo):
the baseline makes each unary call with `unary(url)` (connect, upgrade, one message, half-close,
reply, close), the variant with `conn.unary(path)` on one open mux socket; the same number of callers
run concurrently in both, both without per-message deflate (its zlib work per small frame would
weigh on both sides alike). Rows: unary calls/s and p50 latency (targets: at least 5x the calls/s, at
most 1/5 of the p50), and server memory per open single-socket stream against per open mux call.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Awaitable, Callable

from bench.apps import PROXY_PATH
from bench.harness import Bench, Plan, RowGroup, order
from bench.procstat import rss_bytes
from bench.report import Row
from bench.rows_echo import ECHO_SERVER, PROXY_ECHO
from bench.rows_resources import resource_round
from wsproxy.client import MuxCall, MuxConnection, connect_mux, unary

MESSAGE = {"text": "hello"}
CALLERS = 8
CALLS_PER_SOCKET = 100  # the middleware's default max_calls_per_socket
MEMORY_ROUNDS = 2  # each round starts two fresh servers; memory varies little between rounds


def memory_calls(plan: Plan) -> int:
    return 20 if plan.quick else 1000


def rows(plan: Plan) -> list[Row]:
    return [
        Row("mux rate", "unary calls, socket per call vs one mux socket: rate", "calls/s", ">= 5"),
        Row("mux p50", "unary calls, socket per call vs one mux socket: latency p50", "ms", "<= 0.2"),
        Row("mux memory", f"memory per open stream vs per open mux call ({memory_calls(plan)} open)", "KiB"),
    ]


async def _calls(
    call: Callable[[], Awaitable[object]], warmup: float, duration: float
) -> tuple[float, float]:
    """CALLERS concurrent loops of `call`: calls per second and p50 latency (ms) after the warmup."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    measuring = False
    stop_at = loop.time() + warmup + duration

    async def caller() -> None:
        while loop.time() < stop_at:
            started = time.perf_counter()
            reply = await call()
            if reply != MESSAGE:
                raise RuntimeError(f"unexpected reply {reply!r}")
            if measuring:
                latencies.append(time.perf_counter() - started)

    callers = [asyncio.create_task(caller()) for _ in range(CALLERS)]
    await asyncio.sleep(warmup)
    measuring = True
    began = time.perf_counter()
    await asyncio.gather(*callers)
    elapsed = time.perf_counter() - began
    return len(latencies) / elapsed, statistics.median(latencies) * 1000


async def unary_round(plan: Plan, port: int, *, mux: bool) -> tuple[float, float]:
    base = f"ws://127.0.0.1:{port}"
    if not mux:

        async def call() -> object:
            return await unary(base + PROXY_ECHO, MESSAGE, compression=False)

        return await _calls(call, plan.warmup, plan.duration)
    async with connect_mux(base + PROXY_PATH, compression=False) as conn:
        return await _calls(lambda: conn.unary(PROXY_ECHO, MESSAGE), plan.warmup, plan.duration)


async def _open_used_call(conn: MuxConnection) -> MuxCall:
    call = await conn.open(PROXY_ECHO)
    await call.send(MESSAGE)
    if await anext(call) != MESSAGE:
        raise RuntimeError("the echo call did not answer")
    return call


async def mux_memory_round(bench: Bench) -> float:
    """Bytes of server RSS per open mux call: (RSS with N calls open - RSS with the sockets idle) / N."""
    count = memory_calls(bench.plan)
    sockets = max(1, count // CALLS_PER_SOCKET)
    async with bench.server(ECHO_SERVER) as srv, contextlib.AsyncExitStack() as stack:
        url = f"ws://127.0.0.1:{srv.port}{PROXY_PATH}"
        conns = [await stack.enter_async_context(connect_mux(url, compression=False)) for _ in range(sockets)]
        for conn in conns:  # the first calls import and allocate lazily
            await (await _open_used_call(conn)).close()
        await asyncio.sleep(0.3)
        idle = rss_bytes(srv.pid)
        calls: list[MuxCall] = []
        for start in range(0, count, CALLS_PER_SOCKET):  # a socket's worth at a time
            batch = range(start, min(start + CALLS_PER_SOCKET, count))
            calls += await asyncio.gather(*(_open_used_call(conns[n % sockets]) for n in batch))
        await asyncio.sleep(1.2)  # every stream's timers have run once
        opened = rss_bytes(srv.pid)
        for call in calls:
            await call.close()
    return (opened - idle) / count


async def measure(bench: Bench) -> None:
    plan = bench.plan
    async with bench.server(ECHO_SERVER) as srv:
        for round_ in range(plan.rounds):
            results = {single: await unary_round(plan, srv.port, mux=not single) for single in order(round_)}
            bench.add("mux rate", results[True][0], results[False][0])
            bench.add("mux p50", results[True][1], results[False][1])
            bench.say(
                f"mux round {round_ + 1}/{plan.rounds}: socket per call {results[True][0]:,.0f} calls/s "
                f"p50 {results[True][1]:.2f} ms; one mux socket {results[False][0]:,.0f} calls/s "
                f"p50 {results[False][1]:.2f} ms"
            )
    for round_ in range(min(plan.rounds, MEMORY_ROUNDS)):
        memory: dict[bool, float] = {}
        for single in order(round_):
            memory[single] = (
                (await resource_round(bench, False))[2] if single else await mux_memory_round(bench)
            ) / 1024
        bench.add("mux memory", memory[True], memory[False])
        bench.say(
            f"mux memory round {round_ + 1}: stream {memory[True]:.1f} KiB, mux call {memory[False]:.1f} KiB"
        )


GROUP = RowGroup("mux", rows, measure)
