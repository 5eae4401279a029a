"""The whole benchmark: every row group on every event loop, and the machine it ran on.

Adding rows: write `bench/rows_<name>.py` with a `GROUP = RowGroup(name, rows, measure)` (see
bench/rows_chat.py for a short one, bench/harness.py for what `measure` gets), then add one line to
GROUPS below. The group runs on each loop of the plan, its rows appear in the report once per loop,
and tests/integration/test_bench.py runs it in the --quick plan. Keep a group's default run under ~40 s
per loop (the echo group, three paths at three sizes, takes ~100 s) and its --quick run to a second or two.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from importlib.metadata import PackageNotFoundError, version

from bench import (
    rows_binding,
    rows_chat,
    rows_echo,
    rows_fairness,
    rows_metrics,
    rows_mux,
    rows_resources,
    rows_upstream,
    rows_upstream_cpu,
)
from bench.harness import QUICK, Bench, Loop, Plan, RowGroup, has_uvloop, progress
from bench.report import Row

__all__ = ["GROUPS", "QUICK", "Plan", "all_rows", "machine", "run"]

# The registry of row groups, in report order: one line per group.
GROUPS: tuple[RowGroup, ...] = (
    rows_echo.GROUP,
    rows_resources.GROUP,
    rows_chat.GROUP,
    rows_binding.GROUP,
    rows_fairness.GROUP,
    rows_metrics.GROUP,
    rows_upstream.GROUP,
    rows_upstream_cpu.GROUP,
    rows_mux.GROUP,
)


def all_rows(plan: Plan, loop: Loop) -> dict[str, Row]:
    """Every row of every group, for one loop, keyed by row key (keys are unique across groups)."""
    rows: dict[str, Row] = {}
    for group in GROUPS:
        for row in group.rows(plan):
            if row.key in rows:
                raise ValueError(f"bench row key {row.key!r} of group {group.name!r} is already taken")
            row.loop = loop.label
            rows[row.key] = row
    return rows


def usable_loops(plan: Plan) -> tuple[Loop, ...]:
    loops = tuple(loop for loop in plan.loops if loop.name != "uvloop" or has_uvloop())
    for loop in plan.loops:
        if loop not in loops:
            progress(f"python -m bench: {loop.name} is not installed here; its rows are left out")
    return loops


async def run(plan: Plan, groups: tuple[RowGroup, ...] = GROUPS) -> dict[str, dict[str, Row]]:
    """{loop label: {row key: Row}}; groups run one after the other, each on every loop in turn."""
    loops = usable_loops(plan)
    results = {loop.label: all_rows(plan, loop) for loop in loops}
    for group in groups:
        for loop in loops:
            started = time.monotonic()
            await group.measure(Bench(plan, loop, results[loop.label]))
            progress(f"[{loop.name}] group {group.name} took {time.monotonic() - started:.0f} s")
    return results


def _version(name: str) -> str:
    try:
        return f"{name} {version(name)}"
    except PackageNotFoundError:
        return f"{name} (not installed)"


def machine() -> list[str]:
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        model = next(
            (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), model
        )
    names = ("uvicorn", "uvloop", "httptools", "websockets", "wsproto", "h11", "httpx", "grpcio")
    return [
        f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
        f"machine: {os.cpu_count()} CPUs, {model}, Linux {platform.release()}",
        f"python: {platform.python_implementation()} {platform.python_version()}; "
        + ", ".join(_version(name) for name in names),
    ]
