"""Front CPU rows: what a message costs `wsproxy --upstream` against what it costs the in-process proxy.

The same NDJSON echo, reached two ways: in-process, the middleware around `bench.apps.ndjson_echo`
in the bench server (baseline); and through the front, the `wsproxy --upstream` command in front
of `bench.upstream_echo` over HTTP/1.1 and over HTTP/2 (h2c), one front per HTTP version (variants).
The in-process server and both fronts run on the server's core and the group's loop; the upstream
shares the load client's core, and its CPU is left out: each path is charged only its own
process's CPU time (/proc/<pid>/stat). Each round measures the three paths in rotating order, at
64 B and at 64 KiB. Target: the front's CPU per message at most 1.5x the in-process server's.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

from bench import scenarios
from bench.harness import CLIENT_CPU, SERVER_CPU, Bench, Plan, RowGroup
from bench.report import Row
from bench.rows_echo import ECHO_SERVER, PROXY_ECHO
from bench.scenarios import Flow, payload_of
from bench.upstream_scale import Spawned, listening, ready

VERSIONS = ("1.1", "2")
FRONT_PATH = "/echo?method=POST"
TARGET = "<= 1.5"


@dataclass(frozen=True)
class Size:
    label: str
    size: int
    streams: int
    in_flight: int


SIZES = (Size("64 B", 64, 8, 16), Size("64 KiB", 64 * 1024, 4, 4))
QUICK_SIZES = (Size("64 B", 64, 2, 4), Size("64 KiB", 64 * 1024, 1, 2))


def sizes(plan: Plan) -> tuple[Size, ...]:
    return QUICK_SIZES if plan.quick else SIZES


def paths() -> list[str]:
    return ["in-process", *(f"HTTP/{version}" for version in VERSIONS)]


def rotation(round_: int) -> list[str]:
    """The order of the three paths in a round: each takes each place in turn."""
    names = paths()
    shift = round_ % len(names)
    return names[shift:] + names[:shift]


def rows(plan: Plan) -> list[Row]:
    out: list[Row] = []
    for size in sizes(plan):
        for version in VERSIONS:
            name = f"{size.label} echo, in-process vs `wsproxy --upstream` over HTTP/{version}"
            out += [
                Row(f"front h{version} {size.label} cpu/msg", f"{name}: front CPU per message", "µs", TARGET),
                Row(f"front h{version} {size.label} rate", f"{name}: throughput", "msg/s"),
            ]
    return out


def front_argv(upstream_port: int, version: str, loop: str, ws: str) -> list[str]:
    """`wsproxy --upstream` on an inherited socket (`{fd}`, see `listening`), speaking `version` upstream."""
    return [sys.executable, "-m", "wsproxy", "--fd", "{fd}", "--log-level", "warning", "--no-access-log",
            "--upstream", f"http://127.0.0.1:{upstream_port}", "--upstream-http-version", version,
            "--no-upstream-check", "--loop", loop, "--ws", ws]  # fmt: skip


@contextlib.asynccontextmanager
async def fronts(
    loop: str, ws: str, wanted: dict[str, tuple[str, str | None]]
) -> AsyncIterator[dict[str, Spawned]]:
    """The upstream echo (on the client's core) and the fronts named in `wanted` (name -> (HTTP
    version, directory to run from: None for this tree; `python -m` imports wsproxy from there))."""
    upstream_argv = [sys.executable, "-m", "bench.upstream_echo", "{fd}", "--loop", loop]
    with listening(upstream_argv, cpu=CLIENT_CPU) as upstream, contextlib.ExitStack() as stack:
        await ready(upstream.port)
        spawned = {
            name: stack.enter_context(
                listening(front_argv(upstream.port, version, loop, ws), cpu=SERVER_CPU, cwd=cwd)
            )
            for name, (version, cwd) in wanted.items()
        }
        for front in spawned.values():
            await ready(front.port)
        yield spawned


async def measure(bench: Bench) -> None:
    plan = bench.plan
    wanted: dict[str, tuple[str, str | None]] = {f"HTTP/{version}": (version, None) for version in VERSIONS}
    async with bench.server(ECHO_SERVER) as srv, fronts(bench.loop.name, plan.ws, wanted) as front:
        where = {"in-process": (srv.port, srv.pid, PROXY_ECHO)}
        where |= {name: (f.port, f.proc.pid, FRONT_PATH) for name, f in front.items()}
        for size in sizes(plan):
            payload = payload_of(size.size)
            for round_ in range(plan.rounds):
                flows: dict[str, Flow] = {}
                for name in rotation(round_):
                    port, pid, path = where[name]
                    flows[name] = await scenarios.echo_flow(
                        port,
                        pid,
                        path,
                        payload,
                        streams=size.streams,
                        in_flight=size.in_flight,
                        warmup=plan.warmup,
                        duration=plan.duration,
                    )
                    if flows[name].wrong_size:
                        raise RuntimeError(f"{flows[name].wrong_size} replies of the wrong size from {name}")
                inproc = flows["in-process"]
                said = [f"in-process {inproc.server_us_per_message:.1f} µs/msg"]
                for version in VERSIONS:
                    flow = flows[f"HTTP/{version}"]
                    key = f"front h{version} {size.label}"
                    bench.add(f"{key} cpu/msg", inproc.server_us_per_message, flow.server_us_per_message)
                    bench.add(f"{key} rate", inproc.messages_per_s, flow.messages_per_s)
                    said.append(f"HTTP/{version} {flow.server_us_per_message:.1f} µs/msg")
                bench.say(f"front {size.label} round {round_ + 1}/{plan.rounds}: {', '.join(said)}")


GROUP = RowGroup("front", rows, measure)
