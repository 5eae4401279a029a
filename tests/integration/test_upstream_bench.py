"""bench/upstream_scale.py works: a tiny run of both variants, real processes, real numbers."""

from __future__ import annotations

from bench.upstream_scale import ScalePlan, one_variant


async def test_the_upstream_scale_row_measures_both_protocols() -> None:
    plan = ScalePlan(streams=20, rounds=1, busy_seconds=0.3)
    h1_conns, _, h1_rate = await one_variant(plan, "1.1")
    h2_conns, _, h2_rate = await one_variant(plan, "2")
    # One upstream connection per stream vs one shared connection. (Memory per stream is too noisy
    # at 20 streams to check here.)
    assert (h1_conns, h2_conns) == (20, 1)
    assert h1_rate > 0
    assert h2_rate > 0
