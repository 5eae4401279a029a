"""What every row group of the bench shares: the plan, the event loops, the server process, the rounds.

Theory of operation. A row group (`RowGroup`) names its rows and measures them on one event loop at a
time: `run.py` calls its `measure` once per loop in `Plan.loops`, with a `Bench` that starts servers on
that loop and collects the rows of that loop. Inside a group, each round runs the baseline and the
variant back to back in alternating order (`order`), so drift within a round hits both alike, and a
row keeps each round's pair: the report gives the median of the per-round ratios and their spread.

The server under test is `python -m bench.server MODULE:FACTORY` in a subprocess pinned to
SERVER_CPU; this load client stays on CLIENT_CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bench.report import Row
from bench.scenarios import Flow

T = TypeVar("T")

SERVER_CPU = 0
CLIENT_CPU = 1


@dataclass(frozen=True)
class Loop:
    """An event loop for the server, with the HTTP parser uvicorn picks along with it."""

    name: str  # uvicorn's --loop: "asyncio" or "uvloop"
    http: str  # uvicorn's --http; h11 on both: httptools refuses custom methods (grpc-gateway's verbs)

    @property
    def label(self) -> str:
        return f"{self.name}+{self.http}"


ASYNCIO = Loop("asyncio", "h11")
UVLOOP = Loop("uvloop", "h11")


@dataclass(frozen=True)
class Plan:
    """How much to measure. Groups scale their own sizes with `quick` (a tiny run for the tests)."""

    rounds: int = 7  # the verdict is the median of the per-round ratios: at least 7 (issue 11)
    warmup: float = 0.3
    duration: float = 1.2
    quick: bool = False
    ws: str = "websockets-sansio"
    loops: tuple[Loop, ...] = (ASYNCIO, UVLOOP)


QUICK = Plan(rounds=1, warmup=0.1, duration=0.3, quick=True)


@dataclass(frozen=True)
class Server:
    pid: int
    port: int


@dataclass
class Bench:
    """One group's measuring session on one loop: start servers on it, record rows for it."""

    plan: Plan
    loop: Loop
    rows: dict[str, Row] = field(default_factory=dict)

    def server(self, app: str) -> contextlib.AbstractAsyncContextManager[Server]:
        """The server under test on this loop; `app` is a "module:factory" string (see bench/server.py)."""
        return server(app, ws=self.plan.ws, loop=self.loop)

    def add(self, key: str, baseline: float, variant: float) -> None:
        self.rows[key].add(baseline, variant)

    def say(self, text: str) -> None:
        progress(f"[{self.loop.name}] {text}")


@dataclass(frozen=True)
class RowGroup:
    """Rows measured together. To add one: see the registry in bench/run.py."""

    name: str
    rows: Callable[[Plan], list[Row]]  # the rows, before any round (labels may name plan sizes)
    measure: Callable[[Bench], Awaitable[None]]  # every round of every row, on bench.loop


def order(round_: int) -> tuple[bool, bool]:
    """Which runs first in a round: baseline then variant, then the other way round (A B, B A, ...)."""
    return (True, False) if round_ % 2 == 0 else (False, True)


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def run_on(loop: str, main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run() on the named event loop ("asyncio" or "uvloop")."""
    if loop == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)


@contextlib.asynccontextmanager
async def server(app: str, *, ws: str, loop: Loop) -> AsyncIterator[Server]:
    """`python -m bench.server` in a subprocess pinned to SERVER_CPU; its stderr is shown if not empty."""
    command = [
        sys.executable,
        "-m",
        "bench.server",
        app,
        "--ws",
        ws,
        "--loop",
        loop.name,
        "--http",
        loop.http,
    ]
    if shutil.which("taskset"):
        command = ["taskset", "-c", str(SERVER_CPU), *command]
    with tempfile.TemporaryFile() as errors:
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=errors
        )
        try:
            if not shutil.which("taskset"):
                os.sched_setaffinity(process.pid, {SERVER_CPU})
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), 60)
            if not line.startswith(b"PORT "):
                raise RuntimeError(f"bench server {app} did not start (exit status {await process.wait()})")
            yield Server(process.pid, int(line.split()[1]))
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 10)
                except TimeoutError:
                    process.kill()
                    await process.wait()
            errors.seek(0)
            text = errors.read().decode(errors="replace").strip()
            if text:
                progress(f"bench server ({app}, {loop.label}) wrote to stderr:\n{text[-2000:]}")


def flow_rows(prefix: str, label: str, *, rate_target: str = "", p99_target: str = "") -> list[Row]:
    """The rows of a streaming measure (see `add_flow`): rate, latency, and what it cost each side."""
    return [
        Row(f"{prefix} rate", f"{label}: throughput", "msg/s", rate_target),
        Row(f"{prefix} p50", f"{label}: latency p50", "ms"),
        Row(f"{prefix} p99", f"{label}: latency p99", "ms", p99_target),
        Row(f"{prefix} cpu/msg", f"{label}: server CPU per message", "µs"),
        Row(f"{prefix} faults/msg", f"{label}: server page faults per message", "faults"),
        Row(f"{prefix} server cpu", f"{label}: server CPU, core {SERVER_CPU}", "%"),
        Row(f"{prefix} client cpu", f"{label}: load client CPU, core {CLIENT_CPU}", "%"),
    ]


def add_flow(bench: Bench, prefix: str, baseline: Flow, variant: Flow) -> None:
    bench.add(f"{prefix} rate", baseline.messages_per_s, variant.messages_per_s)
    bench.add(f"{prefix} cpu/msg", baseline.server_us_per_message, variant.server_us_per_message)
    bench.add(f"{prefix} faults/msg", baseline.server_faults_per_message, variant.server_faults_per_message)
    bench.add(f"{prefix} server cpu", baseline.server_cpu * 100, variant.server_cpu * 100)
    bench.add(f"{prefix} client cpu", baseline.client_cpu * 100, variant.client_cpu * 100)
    if baseline.p50_ms and variant.p50_ms and baseline.p99_ms and variant.p99_ms:
        bench.add(f"{prefix} p50", baseline.p50_ms, variant.p50_ms)
        bench.add(f"{prefix} p99", baseline.p99_ms, variant.p99_ms)


def brief(flows: dict[bool, Flow], names: tuple[str, str] = ("bare", "proxy")) -> str:
    """One progress line for a round: `flows` maps baseline? -> its Flow."""
    return ", ".join(
        f"{names[0] if baseline else names[1]} {flow.messages_per_s:,.0f} msg/s "
        f"(server {flow.server_cpu:.0%}, client {flow.client_cpu:.0%})"
        for baseline, flow in sorted(flows.items(), reverse=True)
    )
