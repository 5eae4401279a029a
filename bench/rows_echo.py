"""Echo rows: the proxy around an NDJSON echo vs. the bare WebSocket echo, at 64 B, 64 KiB and 1 MiB."""

from __future__ import annotations

from dataclasses import dataclass

from bench import scenarios
from bench.apps import BARE_PATH, PROXY_PATH
from bench.harness import Bench, Plan, RowGroup, add_flow, brief, flow_rows, order
from bench.report import Row
from bench.scenarios import Flow, payload_of

ECHO_SERVER = "bench.apps:echo_server"
PROXY_ECHO = PROXY_PATH + "?method=POST"


@dataclass(frozen=True)
class Size:
    label: str
    size: int
    streams: int
    in_flight: int


SIZES = (
    Size("64 B", 64, 8, 16),
    Size("64 KiB", 64 * 1024, 4, 4),
    Size("1 MiB", 1024 * 1024, 4, 2),
)
QUICK_SIZES = (Size("64 B", 64, 2, 4), Size("64 KiB", 64 * 1024, 1, 2), Size("1 MiB", 1024 * 1024, 1, 1))
TARGETS = {"64 B": (">= 0.85", "<= 1.3"), "64 KiB": (">= 0.8", ""), "1 MiB": (">= 0.8", "")}


def sizes(plan: Plan) -> tuple[Size, ...]:
    return QUICK_SIZES if plan.quick else SIZES


def rows(plan: Plan) -> list[Row]:
    out: list[Row] = []
    for size in sizes(plan):
        rate, p99 = TARGETS.get(size.label, ("", ""))
        out += flow_rows(size.label, f"{size.label} echo", rate_target=rate, p99_target=p99)
    return out


async def measure(bench: Bench) -> None:
    plan = bench.plan
    async with bench.server(ECHO_SERVER) as srv:
        for size in sizes(plan):
            payload = payload_of(size.size)
            for round_ in range(plan.rounds):
                flows: dict[bool, Flow] = {}
                for bare in order(round_):
                    flows[bare] = await scenarios.echo_flow(
                        srv.port,
                        srv.pid,
                        BARE_PATH if bare else PROXY_ECHO,
                        payload,
                        streams=size.streams,
                        in_flight=size.in_flight,
                        warmup=plan.warmup,
                        duration=plan.duration,
                    )
                    if flows[bare].wrong_size:
                        raise RuntimeError(f"{flows[bare].wrong_size} replies of the wrong size")
                add_flow(bench, size.label, flows[True], flows[False])
                bench.say(f"echo {size.label} round {round_ + 1}/{plan.rounds}: {brief(flows)}")


GROUP = RowGroup("echo", rows, measure)
