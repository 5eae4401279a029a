"""Upstream scale rows: 5,000 streams through `wsproxy --upstream`, HTTP/1.1 (baseline) vs HTTP/2 (variant).

The measuring is bench/upstream_scale.py's (its own processes: a hypercorn upstream and the `wsproxy`
command on the group's loop). Opening 5,000 streams twice per round takes far longer than the other
groups (about a minute per round), so this group runs 2 rounds at most; `--quick` opens 20 streams.
"""

from __future__ import annotations

from bench.harness import Bench, Plan, RowGroup, order
from bench.report import Row
from bench.upstream_scale import QUICK, ScalePlan, one_variant
from bench.upstream_scale import rows as scale_rows

MAX_ROUNDS = 2  # A B then B A; the connection and memory figures hardly move between rounds


def scale_plan(plan: Plan) -> ScalePlan:
    if plan.quick:
        return ScalePlan(streams=20, rounds=1, busy_seconds=QUICK.busy_seconds)
    return ScalePlan(rounds=min(plan.rounds, MAX_ROUNDS))


def rows(plan: Plan) -> list[Row]:
    return list(scale_rows(scale_plan(plan)).values())


async def measure(bench: Bench) -> None:
    plan = scale_plan(bench.plan)
    for round_ in range(plan.rounds):
        # order(): True first means the baseline (HTTP/1.1) runs first in this round.
        results = {h1: await one_variant(plan, "1.1" if h1 else "2", bench.loop.name) for h1 in order(round_)}
        for index, key in enumerate(("upstream conns", "upstream memory", "upstream rate")):
            bench.add(key, results[True][index], results[False][index])
        (c1, m1, r1), (c2, m2, r2) = results[True], results[False]
        bench.say(
            f"upstream round {round_ + 1}/{plan.rounds}, {plan.streams} streams: HTTP/1.1 {c1:.0f} conns "
            f"{m1:.1f} KiB/stream {r1:,.0f}/s; HTTP/2 {c2:.0f} conns {m2:.1f} KiB/stream {r2:,.0f}/s"
        )


GROUP = RowGroup("upstream", rows, measure)
