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
import statistics
import time

from websockets.asyncio.client import connect

from bench.apps import BARE_PATH, PROXY_PATH
from bench.flood import flooding
from bench.harness import CLIENT_CPU, Bench, Plan, RowGroup, order
from bench.report import Row

ECHO_SERVER = "bench.apps:echo_server"
FLOOD_MESSAGE_BYTES = 1024
CALL_TIMEOUT = 60.0  # a call that takes longer counts as this long (the row then shows it)


def calls_per_round(plan: Plan) -> int:
    """Sequential new calls per variant and round."""
    return 5 if plan.quick else 60


def rows(plan: Plan) -> list[Row]:
    return [
        Row("fairness p50", "new call while a client floods: latency p50", "ms", "<= 2"),
        Row("fairness p99", "new call while a client floods: latency p99", "ms", "<= 3"),
    ]


async def one_call(url: str, payload: str) -> float:
    """Seconds from connect to the echo of one message; the call is closed afterwards."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(CALL_TIMEOUT), connect(url, compression=None) as ws:
            await ws.send(payload)
            await ws.recv()
            return time.perf_counter() - started
    except TimeoutError:
        return CALL_TIMEOUT


async def probe(port: int, path: str, calls: int) -> tuple[float, float]:
    """p50 and p99 (ms) of `calls` sequential new calls on `path` while one client floods `path`."""
    url = f"ws://127.0.0.1:{port}{path}"
    with flooding(url, FLOOD_MESSAGE_BYTES, cpu=CLIENT_CPU):
        latencies = sorted([await one_call(url, f"probe {i}") * 1000 for i in range(calls)])
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    return statistics.median(latencies), p99


async def measure(bench: Bench) -> None:
    plan = bench.plan
    calls = calls_per_round(plan)
    async with bench.server(ECHO_SERVER) as srv:
        for round_ in range(plan.rounds):
            results: dict[bool, tuple[float, float]] = {}
            for bare in order(round_):
                results[bare] = await probe(
                    srv.port, BARE_PATH if bare else PROXY_PATH + "?method=POST", calls
                )
            bench.add("fairness p50", results[True][0], results[False][0])
            bench.add("fairness p99", results[True][1], results[False][1])
            bench.say(
                f"fairness round {round_ + 1}/{plan.rounds}: new call under a flood, p50/p99 "
                f"bare {results[True][0]:.1f}/{results[True][1]:.1f} ms, "
                f"proxy {results[False][0]:.1f}/{results[False][1]:.1f} ms"
            )


GROUP = RowGroup("fairness", rows, measure)
