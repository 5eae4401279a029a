"""The fairness row: how long a new call takes while another client floods the same server (issue 10).

One client (`bench.flood`, a process of its own pinned beside the bench) floods a bidi echo stream
with 1 KiB messages as fast as it can while reading the replies. Meanwhile the prober (this process)
makes one new call after another: connect, send one message, get its echo back. Its latency is the
time from connect to the echo. Bare echo and proxy alternate (each flooded and probed on its own
path, same server process); the row gives p50 and p99 of the prober's calls, and the ratios
proxy/bare of the paired rounds. Before the stream core yielded to the loop, the proxy answered new
calls in seconds under such a flood.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Callable
from typing import Protocol

from websockets.asyncio.client import connect

from bench.apps import BARE_PATH, PROXY_PATH
from bench.flood import flooding
from bench.report import Row

FLOOD_MESSAGE_BYTES = 1024
CALL_TIMEOUT = 60.0  # a call that takes longer counts as this long (the row then shows it)


class _Server(Protocol):
    @property
    def port(self) -> int: ...


def calls_per_round(duration: float) -> int:
    """Sequential calls per variant and round: 100 in a full run (2 s rounds), 10 in a quick one."""
    return 100 if duration >= 1 else 10


def rows() -> list[Row]:
    return [
        Row("fairness p50", "new call while a client floods: latency p50", "ms", "<= 2"),
        Row("fairness p99", "new call while a client floods: latency p99", "ms", "<= 3"),
    ]


async def one_call(url: str, payload: str) -> float:
    """Seconds from connect to the echo of one message; the call is closed afterwards."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(CALL_TIMEOUT):
            async with connect(url, compression=None) as ws:
                await ws.send(payload)
                await ws.recv()
                elapsed = time.perf_counter() - started
    except TimeoutError:
        return CALL_TIMEOUT
    return elapsed


async def probe(port: int, path: str, calls: int, flood_cpu: int | None) -> tuple[float, float]:
    """p50 and p99 (ms) of `calls` sequential new calls on `path` while one client floods `path`."""
    url = f"ws://127.0.0.1:{port}{path}"
    with flooding(url, FLOOD_MESSAGE_BYTES, cpu=flood_cpu):
        latencies = [await one_call(url, f"probe {i}") * 1000 for i in range(calls)]
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    return statistics.median(latencies), p99


async def fairness_rounds(
    server: Callable[[str, str], contextlib.AbstractAsyncContextManager[_Server]],
    ws: str,
    rounds: int,
    calls: int,
    table: dict[str, Row],
    *,
    flood_cpu: int | None = None,
    progress: Callable[[str], None] = print,
) -> None:
    """Alternate bare and proxy rounds on one server, adding to the fairness rows of `table`."""
    async with server("echo", ws) as srv:
        for round_ in range(rounds):
            results: dict[bool, tuple[float, float]] = {}
            for bare in (True, False) if round_ % 2 == 0 else (False, True):
                path = BARE_PATH if bare else PROXY_PATH + "?method=POST"
                results[bare] = await probe(srv.port, path, calls, flood_cpu)
            table["fairness p50"].add(results[True][0], results[False][0])
            table["fairness p99"].add(results[True][1], results[False][1])
            progress(
                f"fairness round {round_ + 1}/{rounds}: new call under a flood, p50/p99 "
                f"bare {results[True][0]:.1f}/{results[True][1]:.1f} ms, "
                f"proxy {results[False][0]:.1f}/{results[False][1]:.1f} ms"
            )


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.fairness [--rounds N] [--calls N] [--ws IMPL]`: the fairness row alone."""
    import argparse
    import os

    from bench.report import table
    from bench.run import CLIENT_CPU, progress, server
    from bench.server import raise_fd_limit

    parser = argparse.ArgumentParser(prog="python -m bench.fairness")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=100, help="new calls per variant and round")
    parser.add_argument("--ws", default="websockets-sansio")
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {CLIENT_CPU})
    raise_fd_limit()
    found = {row.key: row for row in rows()}
    asyncio.run(
        fairness_rounds(
            server, args.ws, args.rounds, args.calls, found, flood_cpu=CLIENT_CPU, progress=progress
        )
    )
    print(table(list(found.values())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
