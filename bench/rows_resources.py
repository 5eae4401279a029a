"""Resource rows: RSS growth over many streams opened and closed, then server memory per open stream.

Each round starts a fresh server for each variant, so one round's streams never inflate the next. The
churn comes first: the open streams measured after it start from the heap the churn left.
"""

from __future__ import annotations

import asyncio

from bench import scenarios
from bench.apps import BARE_PATH
from bench.harness import Bench, Plan, RowGroup, order
from bench.procstat import rss_bytes
from bench.report import Row
from bench.rows_echo import ECHO_SERVER, PROXY_ECHO
from bench.scenarios import payload_of


def memory_streams(plan: Plan) -> int:
    return 20 if plan.quick else 1500


def churn_streams(plan: Plan) -> int:
    return 40 if plan.quick else 2500


def rows(plan: Plan) -> list[Row]:
    return [
        Row("memory", f"memory per open stream ({memory_streams(plan)} open)", "KiB", "<= 1.2"),
        Row(
            "churn rss",
            f"RSS after/before {churn_streams(plan):,} streams",
            "ratio",
            "<= 1.1",
            absolute=True,
        ),
        Row("churn rate", "connection churn", "streams/s"),
    ]


async def resource_round(bench: Bench, bare: bool) -> tuple[float, float, float]:
    """On a fresh server: RSS after / before the churn streams, streams per second, and then
    bytes of RSS per open stream, (RSS with N streams open - RSS before opening them) / N."""
    path = BARE_PATH if bare else PROXY_ECHO
    payload = payload_of(64)
    count = memory_streams(bench.plan)
    settle = 0.1 if bench.plan.quick else 1.0  # --quick only shows that it works
    async with bench.server(ECHO_SERVER) as srv:
        await scenarios.churn(srv.port, path, payload, 200)  # first streams import and allocate lazily
        await asyncio.sleep(0.3 * settle)
        before = rss_bytes(srv.pid)
        rate = await scenarios.churn(srv.port, path, payload, churn_streams(bench.plan))
        await asyncio.sleep(0.6 * settle)  # streams finishing their close handshakes (loopback: milliseconds)
        after = rss_bytes(srv.pid)
        conns = await scenarios.open_streams(srv.port, path, payload, count)
        await asyncio.sleep(1.1 * settle)  # every stream has had its first tick (within a second)
        opened = rss_bytes(srv.pid)
        for conn in conns:  # the server is stopped next: no need for closing handshakes
            if conn.transport is not None:
                conn.transport.abort()
    return after / before, rate, (opened - after) / count


async def measure(bench: Bench) -> None:
    rounds = bench.plan.rounds
    for round_ in range(rounds):
        results = {bare: await resource_round(bench, bare) for bare in order(round_)}
        bare, proxy = results[True], results[False]
        bench.add("churn rss", bare[0], proxy[0])
        bench.add("churn rate", bare[1], proxy[1])
        bench.add("memory", bare[2] / 1024, proxy[2] / 1024)
        bench.say(
            f"resources round {round_ + 1}/{rounds}: memory per stream bare {bare[2] / 1024:.1f} KiB, "
            f"proxy {proxy[2] / 1024:.1f} KiB; RSS after/before churn bare {bare[0]:.3f}, proxy {proxy[0]:.3f}"
        )


GROUP = RowGroup("resources", rows, measure)
