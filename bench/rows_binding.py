"""The gateway's two bindings: the demo's Chat RPC over WebSocket, in-process vs over a gRPC channel.

Two demo servers run side by side, pinned to the server CPU: `demo_channel_app` (gateway -> grpc.aio
channel -> grpcio server, all in one process) and `demo_inprocess_app` (gateway -> servicer
directly). Each round measures one then the other (A B, then B A). "baseline" is the channel
binding, "wsproxy" the in-process binding. 64 messages in flight on each of 4 streams keep both
servers busy: with 16 the in-process server idles half the time and the rate measures round trips.
"""

from __future__ import annotations

from bench import scenarios
from bench.harness import Bench, Plan, RowGroup, add_flow, brief, flow_rows, order
from bench.report import Row
from bench.rows_chat import CHAT_MESSAGE, CHAT_WS
from bench.scenarios import Flow

CHANNEL_SERVER = "bench.server:demo_channel_app"
INPROCESS_SERVER = "bench.server:demo_inprocess_app"
STREAMS = 4
IN_FLIGHT = 64


def rows(plan: Plan) -> list[Row]:
    table = flow_rows("binding", "Chat over WS, in-process vs channel binding", rate_target=">= 5")
    for row in table:
        if row.key == "binding cpu/msg":
            row.target = "<= 0.2"
    return table


async def _flow(bench: Bench, port: int, pid: int) -> Flow:
    plan = bench.plan
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


async def measure(bench: Bench) -> None:
    plan = bench.plan
    async with bench.server(CHANNEL_SERVER) as channel, bench.server(INPROCESS_SERVER) as inprocess:
        for round_ in range(plan.rounds):
            flows: dict[bool, Flow] = {}
            for over_channel in order(round_):
                srv = channel if over_channel else inprocess
                flows[over_channel] = await _flow(bench, srv.port, srv.pid)
            add_flow(bench, "binding", flows[True], flows[False])
            bench.say(f"binding round {round_ + 1}/{plan.rounds}: {brief(flows, ('channel', 'in-process'))}")


GROUP = RowGroup("binding", rows, measure)
