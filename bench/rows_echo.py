"""Echo rows: the proxy around an NDJSON echo vs. the bare WebSocket echo and the contract's floor,
at 64 B, 64 KiB and 1 MiB.

Each round measures three paths of one server, in rotating order: the bare echo (the ceiling of any
ASGI middleware), the contract's floor (bench.apps.floor_echo: the bare echo plus only the passes over
each message that the contract forces) and the proxy. The 64 B targets are on the proxy against the
bare echo; the 64 KiB and 1 MiB targets are on the proxy against the floor, since at those sizes the
forced passes alone take a large share of the bare echo's rate (docs/performance.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench import scenarios
from bench.apps import BARE_PATH, FLOOR_PATH, PROXY_PATH
from bench.harness import Bench, Plan, RowGroup, add_flow, brief, flow_rows
from bench.report import Row
from bench.scenarios import Flow, payload_of

ECHO_SERVER = "bench.apps:echo_server"
PROXY_ECHO = PROXY_PATH + "?method=POST"
PATHS = {"bare": BARE_PATH, "floor": FLOOR_PATH, "proxy": PROXY_ECHO}


@dataclass(frozen=True)
class Size:
    label: str
    size: int
    streams: int
    in_flight: int


@dataclass(frozen=True)
class Targets:
    """A size's targets, each on the median of the per-round ratios (docs/performance.md, Targets)."""

    rate_vs_bare: str = ""  # the proxy's throughput / the bare echo's
    p99_vs_bare: str = ""  # the proxy's p99 latency / the bare echo's
    rate_vs_floor: str = ""  # the proxy's throughput / the contract's floor's


SIZES = (
    Size("64 B", 64, 8, 16),
    Size("64 KiB", 64 * 1024, 4, 4),
    Size("1 MiB", 1024 * 1024, 4, 2),
)
QUICK_SIZES = (Size("64 B", 64, 2, 4), Size("64 KiB", 64 * 1024, 1, 2), Size("1 MiB", 1024 * 1024, 1, 1))
TARGETS = {
    "64 B": Targets(rate_vs_bare=">= 0.85", p99_vs_bare="<= 1.3"),
    "64 KiB": Targets(rate_vs_floor=">= 0.85"),
    "1 MiB": Targets(rate_vs_floor=">= 0.85"),
}


def sizes(plan: Plan) -> tuple[Size, ...]:
    return QUICK_SIZES if plan.quick else SIZES


def rotation(round_: int) -> list[str]:
    """The order of the three paths in a round: each path takes each place in turn."""
    names = list(PATHS)
    shift = round_ % len(names)
    return names[shift:] + names[:shift]


def rows(plan: Plan) -> list[Row]:
    out: list[Row] = []
    for size in sizes(plan):
        targets = TARGETS.get(size.label, Targets())
        out += flow_rows(
            size.label, f"{size.label} echo", rate_target=targets.rate_vs_bare, p99_target=targets.p99_vs_bare
        )
        out += [
            Row(
                f"{size.label} floor rate",
                f"{size.label} echo, wsproxy vs the contract's floor: throughput",
                "msg/s",
                targets.rate_vs_floor,
            ),
            Row(
                f"{size.label} floor cpu/msg",
                f"{size.label} echo, wsproxy vs the contract's floor: server CPU per message",
                "µs",
            ),
            Row(
                f"{size.label} floor/bare rate",
                f"{size.label} echo, the contract's floor vs the bare echo: throughput",
                "msg/s",
            ),
        ]
    return out


async def measure(bench: Bench) -> None:
    plan = bench.plan
    async with bench.server(ECHO_SERVER) as srv:
        for size in sizes(plan):
            payload = payload_of(size.size)
            for round_ in range(plan.rounds):
                flows: dict[str, Flow] = {}
                for name in rotation(round_):
                    flows[name] = await scenarios.echo_flow(
                        srv.port,
                        srv.pid,
                        PATHS[name],
                        payload,
                        streams=size.streams,
                        in_flight=size.in_flight,
                        warmup=plan.warmup,
                        duration=plan.duration,
                    )
                    if flows[name].wrong_size:
                        raise RuntimeError(f"{flows[name].wrong_size} replies of the wrong size from {name}")
                bare, floor, proxy = flows["bare"], flows["floor"], flows["proxy"]
                add_flow(bench, size.label, bare, proxy)
                bench.add(f"{size.label} floor rate", floor.messages_per_s, proxy.messages_per_s)
                bench.add(
                    f"{size.label} floor cpu/msg", floor.server_us_per_message, proxy.server_us_per_message
                )
                bench.add(f"{size.label} floor/bare rate", bare.messages_per_s, floor.messages_per_s)
                progress = brief({True: bare, False: proxy})
                bench.say(
                    f"echo {size.label} round {round_ + 1}/{plan.rounds}: {progress}, "
                    f"floor {floor.messages_per_s:,.0f} msg/s"
                )


GROUP = RowGroup("echo", rows, measure)
