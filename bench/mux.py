"""Many calls on one socket (wsproxy.mux.v1) against a new socket per call, side by side in one run.

Both sides use wsproxy.client against the same pinned bench server (the proxy around the NDJSON
echo): the baseline makes each unary call with `unary(url)` (connect, upgrade, one message,
half-close, reply, close); the mux side with `conn.unary(path)` on one open mux socket. The same
number of callers run concurrently in both. Rows: unary calls/s and p50 latency (targets: at least
5x the calls/s, at most 1/5 of the p50), and server memory per open call against per open
single-socket stream.

    python -m bench.mux [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

from bench.apps import PROXY_PATH
from bench.procstat import rss_bytes
from bench.report import Row, table
from bench.run import QUICK, Plan, _order, memory_round, progress, server
from wsproxy.client import MuxCall, MuxConnection, connect_mux, unary

UNARY_PATH = PROXY_PATH + "?method=POST"
MESSAGE = {"text": "hello"}
CALLERS = 8
CALLS_PER_SOCKET = 100  # the middleware's default max_calls_per_socket


def rows(plan: Plan) -> list[Row]:
    return [
        Row("mux rate", "unary calls, socket per call vs one mux socket: rate", "calls/s", ">= 5"),
        Row("mux p50", "unary calls, socket per call vs one mux socket: latency p50", "ms", "<= 0.2"),
        Row(
            "mux memory",
            f"memory per open stream vs per open mux call ({plan.memory_streams} open)",
            "KiB",
        ),
    ]


async def _calls(
    call: Callable[[], Awaitable[object]], warmup: float, duration: float
) -> tuple[float, float]:
    """CALLERS concurrent loops of `call`; calls per second and p50 latency (ms) after the warmup."""
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


async def unary_round(plan: Plan, port: int, mux: bool) -> tuple[float, float]:
    base = f"ws://127.0.0.1:{port}"
    if not mux:
        return await _calls(lambda: unary(base + UNARY_PATH, MESSAGE), plan.warmup, plan.duration)
    async with connect_mux(base + PROXY_PATH) as conn:
        return await _calls(lambda: conn.unary(UNARY_PATH, MESSAGE), plan.warmup, plan.duration)


async def _open_used_call(conn: MuxConnection) -> MuxCall:
    call = await conn.open(UNARY_PATH)
    await call.send(MESSAGE)
    if await anext(call) != MESSAGE:
        raise RuntimeError("the echo call did not answer")
    return call


async def mux_memory_round(plan: Plan) -> float:
    """Bytes of server RSS per open mux call: (RSS with N calls open - RSS with the sockets idle) / N."""
    sockets = max(1, plan.memory_streams // CALLS_PER_SOCKET)
    per_socket = plan.memory_streams // sockets
    async with server("echo", plan.ws) as srv, contextlib.AsyncExitStack() as stack:
        base = f"ws://127.0.0.1:{srv.port}{PROXY_PATH}"
        conns = [await stack.enter_async_context(connect_mux(base)) for _ in range(sockets)]
        for conn in conns:  # first calls import and allocate lazily
            await (await _open_used_call(conn)).close()
        await asyncio.sleep(0.5)
        idle = rss_bytes(srv.pid)
        # One at a time: the server's RSS with the calls open is measured, not a burst's.
        calls = [await _open_used_call(conn) for conn in conns for _ in range(per_socket)]
        await asyncio.sleep(1.5)  # every stream's timers have run once
        opened = rss_bytes(srv.pid)
        for call in calls:
            await call.close()
    return (opened - idle) / (sockets * per_socket)


async def mux_rounds(plan: Plan, rows: dict[str, Row]) -> None:
    async with server("echo", plan.ws) as srv:
        for round_ in range(plan.rounds):
            results: dict[bool, tuple[float, float]] = {}
            for single in _order(round_):
                results[not single] = await unary_round(plan, srv.port, mux=not single)
            rows["mux rate"].add(results[False][0], results[True][0])
            rows["mux p50"].add(results[False][1], results[True][1])
            progress(
                f"mux round {round_ + 1}/{plan.rounds}: socket per call {results[False][0]:,.0f} calls/s "
                f"p50 {results[False][1]:.2f} ms; one mux socket {results[True][0]:,.0f} calls/s "
                f"p50 {results[True][1]:.2f} ms"
            )
    for round_ in range(plan.memory_rounds):
        values: dict[bool, float] = {}
        for single in _order(round_):
            values[single] = (
                await memory_round(plan, False) if single else await mux_memory_round(plan)
            ) / 1024
        rows["mux memory"].add(values[True], values[False])
        progress(
            f"mux memory round {round_ + 1}: stream {values[True]:.1f} KiB, mux call {values[False]:.1f} KiB"
        )


async def run(plan: Plan) -> list[Row]:
    by_key = {row.key: row for row in rows(plan)}
    await mux_rounds(plan, by_key)
    return list(by_key.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mux")
    parser.add_argument("--quick", action="store_true", help="one short round: checks the bench works")
    args = parser.parse_args(argv)
    result = asyncio.run(run(QUICK if args.quick else Plan()))
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
