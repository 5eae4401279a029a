"""Resource rows: server memory per open stream, and RSS growth over many streams opened and closed.

Each round starts a fresh server for each variant, so one round's streams never inflate the next.
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
    return 20 if plan.quick else 2000


def churn_streams(plan: Plan) -> int:
    return 40 if plan.quick else 5000


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


async def memory_round(bench: Bench, bare: bool) -> float:
    """Bytes of server RSS per open stream: (RSS with N streams open - idle RSS) / N."""
    path = BARE_PATH if bare else PROXY_ECHO
    payload = payload_of(64)
    count = memory_streams(bench.plan)
    async with bench.server(ECHO_SERVER) as srv:
        await scenarios.churn(srv.port, path, payload, 50)  # first streams import and allocate lazily
        await asyncio.sleep(0.3)
        idle = rss_bytes(srv.pid)
        conns = await scenarios.open_streams(srv.port, path, payload, count)
        await asyncio.sleep(1.2)  # every stream's timers have run once
        opened = rss_bytes(srv.pid)
        await asyncio.gather(*(c.close() for c in conns))
    return (opened - idle) / count


async def churn_round(bench: Bench, bare: bool) -> tuple[float, float]:
    """RSS after / before the churn streams opened, used and closed; and streams per second."""
    path = BARE_PATH if bare else PROXY_ECHO
    payload = payload_of(64)
    async with bench.server(ECHO_SERVER) as srv:
        await scenarios.churn(srv.port, path, payload, 200)
        await asyncio.sleep(0.3)
        before = rss_bytes(srv.pid)
        rate = await scenarios.churn(srv.port, path, payload, churn_streams(bench.plan))
        await asyncio.sleep(1.2)  # streams finishing their close handshakes
        after = rss_bytes(srv.pid)
    return after / before, rate


async def measure(bench: Bench) -> None:
    rounds = bench.plan.rounds
    for round_ in range(rounds):
        memory = {bare: await memory_round(bench, bare) / 1024 for bare in order(round_)}
        bench.add("memory", memory[True], memory[False])
        churned = {bare: await churn_round(bench, bare) for bare in order(round_)}
        bench.add("churn rss", churned[True][0], churned[False][0])
        bench.add("churn rate", churned[True][1], churned[False][1])
        bench.say(
            f"resources round {round_ + 1}/{rounds}: memory per stream bare {memory[True]:.1f} KiB, "
            f"proxy {memory[False]:.1f} KiB; RSS after/before churn bare {churned[True][0]:.3f}, "
            f"proxy {churned[False][0]:.3f}"
        )


GROUP = RowGroup("resources", rows, measure)
