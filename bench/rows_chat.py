"""End-to-end rows: the demo's Chat RPC (gateway -> grpcio in one process) over HTTP vs. over WebSocket."""

from __future__ import annotations

from bench import scenarios
from bench.harness import Bench, Plan, RowGroup, add_flow, brief, flow_rows, order
from bench.report import Row
from bench.scenarios import Flow

DEMO_SERVER = "bench.server:demo_app"
CHAT_WS = "/v1/chat?method=POST"
CHAT_MESSAGE = b'{"text":"hello"}'


def rows(plan: Plan) -> list[Row]:
    return flow_rows("chat", "Chat RPC, HTTP vs WS")


async def measure(bench: Bench) -> None:
    plan = bench.plan
    async with bench.server(DEMO_SERVER) as srv:
        for round_ in range(plan.rounds):
            flows: dict[bool, Flow] = {}
            for http in order(round_):
                if http:
                    flows[http] = await scenarios.http_chat_flow(
                        srv.port, srv.pid, requests=4, batch=200, warmup=plan.warmup, duration=plan.duration
                    )
                else:
                    flows[http] = await scenarios.echo_flow(
                        srv.port,
                        srv.pid,
                        CHAT_WS,
                        CHAT_MESSAGE,
                        streams=4,
                        in_flight=16,
                        warmup=plan.warmup,
                        duration=plan.duration,
                        check_size=False,
                    )
            add_flow(bench, "chat", flows[True], flows[False])
            bench.say(f"chat round {round_ + 1}/{plan.rounds}: {brief(flows, ('HTTP', 'WS'))}")


GROUP = RowGroup("chat", rows, measure)
