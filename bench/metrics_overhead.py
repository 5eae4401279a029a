"""What Prometheus metrics cost: the proxy's 64 B echo and its connection churn, metrics on vs off.

One server process serves both variants side by side (`metrics_server`): `/metrics-off` is the proxy
without metrics, `/metrics-on` the same proxy with `metrics=` a registry of its own. The rounds
alternate A B, B A on the same process and CPU, so drift hits both alike; each row's ratio is on / off
(target: at most 3% throughput lost at 64 B). Metrics are published per stream, not per message, so
the echo row should show no difference and the churn row shows the per-stream cost.

    python -m bench.metrics_overhead [--quick] [--ws IMPL]     # this table alone
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys

from bench import scenarios
from bench.apps import ndjson_echo
from bench.report import Row, table
from bench.run import CLIENT_CPU, QUICK, Plan, _add_flow, _flow_rows, _order, progress, server
from bench.scenarios import Flow, payload_of
from wsproxy import WebSocketProxyMiddleware
from wsproxy._types import ASGIApp, Receive, Scope, Send

OFF_PATH = "/metrics-off?method=POST"
ON_PATH = "/metrics-on?method=POST"
SIZE = 64


def metrics_server() -> ASGIApp:
    """`python -m bench.server metrics`: the proxy around the NDJSON echo, without and with metrics."""
    from prometheus_client import CollectorRegistry

    off = WebSocketProxyMiddleware(ndjson_echo)
    on = WebSocketProxyMiddleware(ndjson_echo, metrics=CollectorRegistry())

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await (on if scope.get("path") == "/metrics-on" else off)(scope, receive, send)

    return app


def rows() -> list[Row]:
    """The rows this module fills: baseline = metrics off, wsproxy = metrics on."""
    return [
        *_flow_rows("metrics 64 B", "64 B echo, metrics on / off", rate_target=">= 0.97"),
        Row("metrics churn", "connection churn, metrics on / off", "streams/s", ">= 0.9"),
    ]


async def metrics_rounds(plan: Plan, table_rows: dict[str, Row]) -> None:
    payload = payload_of(SIZE)
    size = next((s for s in plan.sizes if s.size == SIZE), plan.sizes[0])
    async with server("metrics", plan.ws) as srv:
        for round_ in range(plan.rounds):
            flows: dict[bool, Flow] = {}
            for off in _order(round_):
                flows[off] = await scenarios.echo_flow(
                    srv.port,
                    srv.pid,
                    OFF_PATH if off else ON_PATH,
                    payload,
                    streams=size.streams,
                    in_flight=size.in_flight,
                    warmup=plan.warmup,
                    duration=plan.duration,
                )
                if flows[off].wrong_size:
                    raise RuntimeError(f"{flows[off].wrong_size} replies of the wrong size")
            _add_flow(table_rows, "metrics 64 B", flows[True], flows[False], latency=True)
            progress(
                f"metrics 64 B round {round_ + 1}/{plan.rounds}: off {flows[True].messages_per_s:,.0f}, "
                f"on {flows[False].messages_per_s:,.0f} msg/s"
            )
        for round_ in range(plan.churn_rounds):
            rates = {
                off: await scenarios.churn(
                    srv.port, OFF_PATH if off else ON_PATH, payload, plan.churn_streams
                )
                for off in _order(round_)
            }
            table_rows["metrics churn"].add(rates[True], rates[False])
            progress(
                f"metrics churn round {round_ + 1}: off {rates[True]:,.0f}, on {rates[False]:,.0f} streams/s"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.metrics_overhead", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a tiny run that only shows the bench works")
    parser.add_argument("--ws", default="websockets-sansio", choices=["websockets-sansio", "wsproto"])
    args = parser.parse_args(argv)
    plan = dataclasses.replace(QUICK if args.quick else Plan(), ws=args.ws)
    if len(os.sched_getaffinity(0)) >= 2:
        os.sched_setaffinity(0, {CLIENT_CPU})
    filled = {row.key: row for row in rows()}
    asyncio.run(metrics_rounds(plan, filled))
    header, *body = table(list(filled.values())).splitlines()
    print("\n".join([header.replace("baseline", "metrics off").replace("wsproxy", "metrics on"), *body]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
