"""What Prometheus metrics cost: the proxy's 64 B echo and its connection churn, metrics on vs off.

One server process serves both variants side by side (`metrics_app`): `/metrics-off` is the proxy
without metrics, `/metrics-on` the same proxy with `metrics=` a registry of its own. Rounds alternate
A B, B A on the same process and CPU, so drift hits both alike; each row's ratio is on / off (target:
at most 3% throughput lost at 64 B). Metrics are published per stream, never per message, so the echo
row should show no difference; the churn row shows the per-stream cost.
"""

from __future__ import annotations

from bench import scenarios
from bench.apps import ndjson_echo
from bench.harness import Bench, Plan, RowGroup, add_flow, brief, flow_rows, order
from bench.report import Row
from bench.scenarios import Flow, payload_of
from wsproxy import WebSocketProxyMiddleware
from wsproxy._types import ASGIApp, Receive, Scope, Send

METRICS_SERVER = "bench.rows_metrics:metrics_app"
OFF_PATH = "/metrics-off?method=POST"
ON_PATH = "/metrics-on?method=POST"


def metrics_app() -> ASGIApp:
    """The proxy around the NDJSON echo, without (/metrics-off) and with (/metrics-on) metrics."""
    from prometheus_client import CollectorRegistry

    off = WebSocketProxyMiddleware(ndjson_echo)
    on = WebSocketProxyMiddleware(ndjson_echo, metrics=CollectorRegistry())

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await (on if scope.get("path") == "/metrics-on" else off)(scope, receive, send)

    return app


def churn_streams(plan: Plan) -> int:
    return 40 if plan.quick else 1000


def rows(plan: Plan) -> list[Row]:
    """Baseline = metrics off, variant = metrics on."""
    return [
        *flow_rows("metrics 64 B", "64 B echo, metrics on / off", rate_target=">= 0.97"),
        Row("metrics churn", "connection churn, metrics on / off", "streams/s", ">= 0.9"),
    ]


async def measure(bench: Bench) -> None:
    plan = bench.plan
    payload = payload_of(64)
    streams, in_flight = (2, 4) if plan.quick else (8, 16)
    async with bench.server(METRICS_SERVER) as srv:
        for round_ in range(plan.rounds):
            flows: dict[bool, Flow] = {}
            for off in order(round_):
                flows[off] = await scenarios.echo_flow(
                    srv.port,
                    srv.pid,
                    OFF_PATH if off else ON_PATH,
                    payload,
                    streams=streams,
                    in_flight=in_flight,
                    warmup=plan.warmup,
                    duration=plan.duration,
                )
                if flows[off].wrong_size:
                    raise RuntimeError(f"{flows[off].wrong_size} replies of the wrong size")
            add_flow(bench, "metrics 64 B", flows[True], flows[False])
            bench.say(f"metrics 64 B round {round_ + 1}/{plan.rounds}: {brief(flows, ('off', 'on'))}")
        for round_ in range(min(plan.rounds, 3)):
            rates: dict[bool, float] = {}
            for off in order(round_):
                rates[off] = await scenarios.churn(
                    srv.port, OFF_PATH if off else ON_PATH, payload, churn_streams(plan)
                )
            bench.add("metrics churn", rates[True], rates[False])
            bench.say(
                f"metrics churn round {round_ + 1}: off {rates[True]:,.0f}, on {rates[False]:,.0f} streams/s"
            )


GROUP = RowGroup("metrics", rows, measure)
