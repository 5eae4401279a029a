"""The whole benchmark: server pinned to CPU 0, this load client on CPU 1, bare and proxy alternating."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib.metadata import version

from bench import scenarios
from bench.apps import BARE_PATH, PROXY_PATH
from bench.inprocess import inprocess_rounds, inprocess_rows
from bench.procstat import rss_bytes
from bench.report import Row
from bench.scenarios import Flow, payload_of

SERVER_CPU = 0
CLIENT_CPU = 1
PROXY_ECHO = PROXY_PATH + "?method=POST"
CHAT_WS = "/v1/chat?method=POST"
CHAT_MESSAGE = b'{"text":"hello"}'


@dataclass(frozen=True)
class Size:
    label: str
    size: int
    streams: int
    in_flight: int


@dataclass(frozen=True)
class Plan:
    rounds: int = 5
    warmup: float = 0.5
    duration: float = 2.0
    sizes: tuple[Size, ...] = (
        Size("64 B", 64, 8, 16),
        Size("64 KiB", 64 * 1024, 4, 4),
        Size("1 MiB", 1024 * 1024, 4, 2),
    )
    memory_streams: int = 2000
    memory_rounds: int = 3
    churn_streams: int = 10_000
    churn_rounds: int = 2
    e2e_rounds: int = 3
    ws: str = "websockets-sansio"


QUICK = Plan(
    rounds=1,
    warmup=0.1,
    duration=0.3,
    sizes=(Size("64 B", 64, 2, 4), Size("64 KiB", 64 * 1024, 1, 2), Size("1 MiB", 1024 * 1024, 1, 1)),
    memory_streams=20,
    memory_rounds=1,
    churn_streams=40,
    churn_rounds=1,
    e2e_rounds=1,
)


@dataclass(frozen=True)
class Server:
    pid: int
    port: int


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@contextlib.asynccontextmanager
async def server(kind: str, ws: str) -> AsyncIterator[Server]:
    """`python -m bench.server` in a subprocess pinned to SERVER_CPU; its stderr is shown if not empty."""
    command = [sys.executable, "-m", "bench.server", kind, "--ws", ws]
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
                raise RuntimeError(f"bench server did not start (exit status {await process.wait()})")
            yield Server(process.pid, int(line.split()[1]))
        finally:
            if process.returncode is None:
                process.terminate()
                await process.wait()
            errors.seek(0)
            text = errors.read().decode(errors="replace").strip()
            if text:
                progress(f"bench server ({kind}) wrote to stderr:\n{text[-2000:]}")


def _order(round_: int) -> tuple[bool, bool]:
    """A B, then B A: drift within a round hits both variants alike."""
    return (True, False) if round_ % 2 == 0 else (False, True)


def _add_flow(rows: dict[str, Row], prefix: str, base: Flow, proxy: Flow, *, latency: bool) -> None:
    rows[f"{prefix} rate"].add(base.messages_per_s, proxy.messages_per_s)
    rows[f"{prefix} cpu/msg"].add(base.server_us_per_message, proxy.server_us_per_message)
    rows[f"{prefix} server cpu"].add(base.server_cpu * 100, proxy.server_cpu * 100)
    rows[f"{prefix} client cpu"].add(base.client_cpu * 100, proxy.client_cpu * 100)
    if latency and base.p50_ms and proxy.p50_ms and base.p99_ms and proxy.p99_ms:
        rows[f"{prefix} p50"].add(base.p50_ms, proxy.p50_ms)
        rows[f"{prefix} p99"].add(base.p99_ms, proxy.p99_ms)


def _flow_rows(prefix: str, label: str, *, rate_target: str = "", p99_target: str = "") -> list[Row]:
    return [
        Row(f"{prefix} rate", f"{label}: echo throughput", "msg/s", rate_target),
        Row(f"{prefix} p50", f"{label}: latency p50", "ms"),
        Row(f"{prefix} p99", f"{label}: latency p99", "ms", p99_target),
        Row(f"{prefix} cpu/msg", f"{label}: server CPU per message", "µs"),
        Row(f"{prefix} server cpu", f"{label}: server CPU, core {SERVER_CPU}", "%"),
        Row(f"{prefix} client cpu", f"{label}: load client CPU, core {CLIENT_CPU}", "%"),
    ]


async def echo_rounds(plan: Plan, rows: dict[str, Row]) -> None:
    async with server("echo", plan.ws) as srv:
        for size in plan.sizes:
            payload = payload_of(size.size)
            for round_ in range(plan.rounds):
                flows: dict[bool, Flow] = {}
                for bare in _order(round_):
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
                _add_flow(rows, size.label, flows[True], flows[False], latency=True)
                progress(f"echo {size.label} round {round_ + 1}/{plan.rounds}: {_brief(flows)}")


def _brief(flows: dict[bool, Flow]) -> str:
    return ", ".join(
        f"{'bare' if bare else 'proxy'} {flow.messages_per_s:,.0f} msg/s (server {flow.server_cpu:.0%}, "
        f"client {flow.client_cpu:.0%})"
        for bare, flow in sorted(flows.items(), reverse=True)
    )


async def memory_round(plan: Plan, bare: bool) -> float:
    """Bytes of server RSS per open stream: (RSS with N streams open - idle RSS) / N."""
    path = BARE_PATH if bare else PROXY_ECHO
    payload = payload_of(64)
    async with server("echo", plan.ws) as srv:
        await scenarios.churn(srv.port, path, payload, 50)  # first streams import and allocate lazily
        await asyncio.sleep(0.5)
        idle = rss_bytes(srv.pid)
        conns = await scenarios.open_streams(srv.port, path, payload, plan.memory_streams)
        await asyncio.sleep(1.5)  # every stream's timers have run once
        opened = rss_bytes(srv.pid)
        await asyncio.gather(*(c.close() for c in conns))
    return (opened - idle) / plan.memory_streams


async def churn_round(plan: Plan, bare: bool) -> tuple[float, float]:
    """RSS after / before `churn_streams` streams opened, used and closed; and streams per second."""
    path = BARE_PATH if bare else PROXY_ECHO
    payload = payload_of(64)
    async with server("echo", plan.ws) as srv:
        await scenarios.churn(srv.port, path, payload, 200)
        await asyncio.sleep(0.5)
        before = rss_bytes(srv.pid)
        rate = await scenarios.churn(srv.port, path, payload, plan.churn_streams)
        await asyncio.sleep(1.5)  # streams finishing their close handshakes
        after = rss_bytes(srv.pid)
    return after / before, rate


async def resource_rounds(plan: Plan, rows: dict[str, Row]) -> None:
    for round_ in range(plan.memory_rounds):
        values = {bare: await memory_round(plan, bare) / 1024 for bare in _order(round_)}
        rows["memory"].add(values[True], values[False])
        progress(
            f"memory round {round_ + 1}: bare {values[True]:.1f} KiB, proxy {values[False]:.1f} KiB per stream"
        )
    for round_ in range(plan.churn_rounds):
        churned = {bare: await churn_round(plan, bare) for bare in _order(round_)}
        rows["churn rss"].add(churned[True][0], churned[False][0])
        rows["churn rate"].add(churned[True][1], churned[False][1])
        progress(
            f"churn round {round_ + 1}: RSS after/before bare {churned[True][0]:.3f}, "
            f"proxy {churned[False][0]:.3f}; streams/s bare {churned[True][1]:,.0f}, proxy {churned[False][1]:,.0f}"
        )


async def e2e_rounds(plan: Plan, rows: dict[str, Row]) -> None:
    async with server("demo", plan.ws) as srv:
        for round_ in range(plan.e2e_rounds):
            flows: dict[bool, Flow] = {}
            for http in _order(round_):
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
            _add_flow(rows, "chat", flows[True], flows[False], latency=False)
            progress(
                f"chat round {round_ + 1}/{plan.e2e_rounds}: HTTP {_brief({True: flows[True]})[5:]}, "
                f"WS {_brief({False: flows[False]})[6:]}"
            )


def machine() -> list[str]:
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        model = next(
            (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), model
        )
    packages = ", ".join(
        f"{name} {version(name)}" for name in ("uvicorn", "websockets", "wsproto", "h11", "httpx", "grpcio")
    )
    return [
        f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
        f"machine: {os.cpu_count()} CPUs, {model}, Linux {platform.release()}",
        f"python: {platform.python_implementation()} {platform.python_version()}; {packages}",
    ]


def all_rows(plan: Plan) -> dict[str, Row]:
    rows = [
        *_flow_rows("64 B", "64 B", rate_target=">= 0.85", p99_target="<= 1.3"),
        *_flow_rows("64 KiB", "64 KiB", rate_target=">= 0.8"),
        *_flow_rows("1 MiB", "1 MiB", rate_target=">= 0.8"),
        Row("memory", f"memory per open stream ({plan.memory_streams} open)", "KiB", "<= 1.2"),
        Row(
            "churn rss", f"RSS after/before {plan.churn_streams:,} streams", "ratio", "<= 1.1", absolute=True
        ),
        Row("churn rate", "connection churn", "streams/s"),
        *_flow_rows("chat", "Chat RPC, HTTP vs WS"),
        *inprocess_rows(),
    ]
    return {row.key: row for row in rows}


async def run(plan: Plan) -> dict[str, Row]:
    rows = all_rows(plan)
    await echo_rounds(plan, rows)
    await resource_rounds(plan, rows)
    await e2e_rounds(plan, rows)
    await inprocess_rounds(plan, rows)
    return rows
