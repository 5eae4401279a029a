"""The demo's Chat RPC over WebSocket: gateway with the in-process binding vs. over a gRPC channel.

Two demo servers (`python -m bench.server demo-channel` and `demo-inprocess`) run side by side,
both pinned to the server CPU; each round measures one then the other (A B, then B A) with the same
load as the "chat" rows, so the ratio in-process/channel is paired against drift. In the table the
"baseline" column is the channel binding and the "wsproxy" column the in-process binding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench import scenarios
from bench.report import Row
from bench.scenarios import Flow

if TYPE_CHECKING:
    from bench.run import Plan

PREFIX = "binding"
STREAMS = 4
IN_FLIGHT = 64


def inprocess_rows() -> list[Row]:
    label = "Chat over WS, in-process vs channel binding"
    return [
        Row(f"{PREFIX} rate", f"{label}: throughput", "msg/s", ">= 5"),
        Row(f"{PREFIX} cpu/msg", f"{label}: server CPU per message", "µs", "<= 0.2"),
        Row(f"{PREFIX} p50", f"{label}: latency p50", "ms"),
        Row(f"{PREFIX} server cpu", f"{label}: server CPU", "%"),
        Row(f"{PREFIX} client cpu", f"{label}: load client CPU", "%"),
    ]


async def chat_flow(port: int, pid: int, plan: Plan) -> Flow:
    from bench.run import CHAT_MESSAGE, CHAT_WS

    return await scenarios.echo_flow(
        port,
        pid,
        CHAT_WS,
        CHAT_MESSAGE,
        streams=STREAMS,
        in_flight=IN_FLIGHT,
        warmup=plan.warmup,
        duration=plan.duration,
        check_size=False,
    )


async def inprocess_rounds(plan: Plan, rows: dict[str, Row]) -> None:
    from bench.run import _order, progress, server

    async with server("demo-channel", plan.ws) as channel, server("demo-inprocess", plan.ws) as inprocess:
        for round_ in range(plan.e2e_rounds):
            flows: dict[bool, Flow] = {}
            for in_process in _order(round_):
                srv = inprocess if in_process else channel
                flows[in_process] = await chat_flow(srv.port, srv.pid, plan)
            base, fast = flows[False], flows[True]
            rows[f"{PREFIX} rate"].add(base.messages_per_s, fast.messages_per_s)
            rows[f"{PREFIX} cpu/msg"].add(base.server_us_per_message, fast.server_us_per_message)
            rows[f"{PREFIX} server cpu"].add(base.server_cpu * 100, fast.server_cpu * 100)
            rows[f"{PREFIX} client cpu"].add(base.client_cpu * 100, fast.client_cpu * 100)
            if base.p50_ms and fast.p50_ms:
                rows[f"{PREFIX} p50"].add(base.p50_ms, fast.p50_ms)
            progress(
                f"binding round {round_ + 1}/{plan.e2e_rounds}: channel {base.messages_per_s:,.0f} msg/s "
                f"({base.server_us_per_message:.0f} µs/msg), in-process {fast.messages_per_s:,.0f} msg/s "
                f"({fast.server_us_per_message:.0f} µs/msg)"
            )
