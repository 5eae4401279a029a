"""`python -m bench.status_cost [--rounds N]`: what the status frames (wsproxy.status.v1) cost a unary call.

Both clients ask for the status by default; a call that does gets one more frame (the status) and
its request tells the app it may send trailers. Here the same unary echo calls run with `status=True`
and `status=False` side by side, in rotating order, against one pinned server (the proxy around the
NDJSON echo), on a mux socket and with a socket per call, on both loops. Ratios (on/off) are medians
of per-round ratios, with spreads: unary calls per second, and the server's CPU per call.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import statistics
import time
from collections.abc import Awaitable, Callable

from bench.harness import ASYNCIO, CLIENT_CPU, UVLOOP, Loop, has_uvloop, order, run_on, server
from bench.procstat import cpu_seconds
from bench.rows_echo import ECHO_SERVER, PROXY_ECHO
from bench.rows_mux import CALLERS, MESSAGE
from wsproxy.client import connect_mux, unary

WARMUP = 0.5


async def calls(call: Callable[[], Awaitable[object]], seconds: float, pid: int) -> tuple[float, float]:
    """CALLERS concurrent loops of `call` for `seconds` after a warmup: calls/s and server CPU µs/call."""
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + WARMUP + seconds
    counted = 0
    counting = False

    async def caller() -> None:
        nonlocal counted
        while loop.time() < stop_at:
            if await call() != MESSAGE:
                raise RuntimeError("the echo call did not answer")
            counted += counting

    callers = [asyncio.create_task(caller()) for _ in range(CALLERS)]
    await asyncio.sleep(WARMUP)
    counting = True
    began, cpu = time.perf_counter(), cpu_seconds(pid)
    await asyncio.gather(*callers)
    return counted / (time.perf_counter() - began), (cpu_seconds(pid) - cpu) / counted * 1e6


async def side(base: str, *, mux: bool, status: bool, seconds: float, pid: int) -> tuple[float, float]:
    if mux:
        async with connect_mux(base, compression=False) as conn:
            call = functools.partial(conn.unary, PROXY_ECHO, MESSAGE, status=status)
            return await calls(call, seconds, pid)
    call = functools.partial(unary, base + PROXY_ECHO, MESSAGE, compression=False, status=status)
    return await calls(call, seconds, pid)


async def measure(loop: Loop, rounds: int, seconds: float) -> dict[str, dict[str, list[float]]]:
    ratios: dict[str, dict[str, list[float]]] = {
        kind: {"calls/s": [], "server CPU/call": []} for kind in ("mux", "socket")
    }
    async with server(ECHO_SERVER, ws="websockets-sansio", loop=loop) as srv:
        base = f"ws://127.0.0.1:{srv.port}"
        for round_ in range(rounds):
            for kind in ("mux", "socket"):
                got = {
                    status: await side(base, mux=kind == "mux", status=status, seconds=seconds, pid=srv.pid)
                    for status in order(round_)
                }
                ratios[kind]["calls/s"].append(got[True][0] / got[False][0])
                ratios[kind]["server CPU/call"].append(got[True][1] / got[False][1])
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per side and round")
    args = parser.parse_args()
    os.sched_setaffinity(0, {CLIENT_CPU})
    for loop in (ASYNCIO, UVLOOP) if has_uvloop() else (ASYNCIO,):
        ratios = run_on("asyncio", measure(loop, args.rounds, args.seconds))
        for kind, measures in ratios.items():
            for name, values in measures.items():
                print(
                    f"{loop.label:12} {kind:6} {name:16} status on/off: median {statistics.median(values):.3f} "
                    f"({min(values):.3f}-{max(values):.3f}), {len(values)} rounds"
                )


if __name__ == "__main__":
    main()
