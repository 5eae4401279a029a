"""Metrics and the access log on real servers: the middleware under uvicorn (each WebSocket
implementation), and the `wsproxy` command with two workers, its metrics listener and its log; and
how the metrics listener retires the files of a worker process that died.

Each test makes a mix of calls (clean, failed, refused, abandoned) and checks every figure against
counts written out here, not against the code's own constants.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect

from tests.support.auth_apps import authenticate
from tests.support.logs import logged
from tests.support.servers import Ended, Running, drain, refusal, serve_on
from tests.support.upstream_apps import Process, app, spawn_listening
from wsproxy import WebSocketProxyMiddleware
from wsproxy.cli._metrics_listener import retire_dead_processes

TOKEN = "alice-token"  # tests.integration.test_auth's hook accepts it
APP_ORIGIN = "https://app.example"
QUERY_SECRET = "q-s3cret"
ECHO_0, ECHO_1 = '{"echo": {"n": 0}}', '{"echo": {"n": 1}}'
ACCESS_LINE = re.compile(
    r'^(?:INFO: +)?127\.0\.0\.1:\d+ - "WebSocket (?P<method>\w+) (?P<path>\S+)" (?P<code>\d+) '
    r"in (?P<min>\d+) msg (?P<bin>\d+) B, out (?P<mout>\d+) msg (?P<bout>\d+) B, \d+\.\d{3} s$"
)


def samples(registry_text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(registry_text):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


def figure(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def abandon(ws: ClientConnection) -> None:
    """The client vanishes: the TCP connection is dropped without a close frame."""
    ws.transport.abort()
    await asyncio.sleep(0)


async def mixed_calls(base: str) -> None:
    """2 clean calls, 1 error answer, 1 abandoned call, 2 refusals (origin 403, token 401)."""
    bearer: Any = ["Bearer", TOKEN]
    cookies = {"cookie": f"token={TOKEN}; session=cookie-s3cret"}
    async with connect(f"{base}/bidi?method=POST&api_key={QUERY_SECRET}", subprotocols=bearer) as ws:
        for n in (0, 1):
            await ws.send(json.dumps({"n": n}))  # '{"n": 0}': 8 bytes
        await ws.send("")
        assert await drain(ws) == ([ECHO_0, ECHO_1], 1000, "")
    async with connect(f"{base}/stream?count=2", additional_headers=cookies) as ws:
        assert (await drain(ws))[1] == 1000  # '{"n": 0}', '{"n": 1}' out
    async with connect(f"{base}/status/404", subprotocols=bearer) as ws:
        assert (await drain(ws))[1] == 4404  # '{"error": "status 404", "code": 404}' out: 36 bytes
    ws = await connect(f"{base}/forever", subprotocols=bearer)
    assert json.loads(await ws.recv()) == {"n": 0}
    await abandon(ws)
    with contextlib.suppress(Exception):
        await ws.close()
    assert (await refusal(f"{base}/bidi", subprotocols=bearer, origin=APP_ORIGIN + ".evil"))[0] == 403
    assert (await refusal(f"{base}/bidi", subprotocols=["Bearer", "stolen"]))[0] == 401


EXPECTED = {
    ("wsproxy_streams_total", "1000"): 2,
    ("wsproxy_streams_total", "4404"): 1,
    ("wsproxy_handshakes_refused_total", "403"): 1,
    ("wsproxy_handshakes_refused_total", "401"): 1,
}
# in: two 8-byte messages. out: 2 echoes (18 B each), 2 stream lines (8 B each), the 404 body (36 B), the
# abandoned call's first line (8 B).
EXPECTED_MESSAGES = {"in": 2, "out": 6}
EXPECTED_BYTES = {"in": 16, "out": 18 * 2 + 8 * 2 + 36 + 8}


# The close code of the abandoned call, as each server reports a client that vanished.
# uvicorn's websockets-sansio and wsproto: 1005 (connection lost after the handshake); legacy websockets
# and hypercorn: 1006 (abnormal closure, RFC 6455 7.1.5).
VANISHED = {"websockets": "1006", "hypercorn": "1006"}


def check_figures(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], server: str, extra: int = 0
) -> None:
    """`extra`: clean /status/200 calls made besides mixed_calls (one 36-byte line out each)."""
    got = {
        (name, label): figure(found, name, **{"code" if "streams" in name else "status": label})
        for name, label in EXPECTED
    }
    assert got == {**EXPECTED, ("wsproxy_streams_total", "1000"): 2 + extra}
    assert figure(found, "wsproxy_streams_total", code=VANISHED.get(server, "1005")) == 1
    assert figure(found, "wsproxy_messages_total", direction="in") == EXPECTED_MESSAGES["in"]
    assert figure(found, "wsproxy_bytes_total", direction="in") == EXPECTED_BYTES["in"]
    assert figure(found, "wsproxy_messages_total", direction="out") == EXPECTED_MESSAGES["out"] + extra
    assert figure(found, "wsproxy_bytes_total", direction="out") == EXPECTED_BYTES["out"] + 36 * extra
    assert figure(found, "wsproxy_streams_open") == 0
    assert figure(found, "wsproxy_stream_duration_seconds_count") == 4 + extra


def check_access_lines(lines: list[str], server: str) -> None:
    access = [
        ACCESS_LINE.match(line)
        for line in lines
        if '"WebSocket ' in line and " msg " in line and "/status/200" not in line
    ]
    assert None not in access, lines
    seen = sorted(
        (m["method"], m["path"], m["code"], m["min"], m["bin"], m["mout"], m["bout"]) for m in access if m
    )
    assert seen == [
        ("GET", "/forever", VANISHED.get(server, "1005"), "0", "0", "1", "8"),
        ("GET", "/status/404", "4404", "0", "0", "1", "36"),
        ("GET", "/stream", "1000", "0", "0", "2", "16"),
        ("POST", "/bidi", "1000", "2", "16", "2", "36"),
    ]
    text = "\n".join(lines)
    for secret in (TOKEN, "cookie-s3cret", QUERY_SECRET, "stolen"):
        assert secret not in text


async def settled(read: Any, streams: int = 4) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The figures once every stream has ended (the abandoned one within a few seconds)."""
    for _ in range(200):
        found = await read()
        if figure(found, "wsproxy_stream_duration_seconds_count") >= streams:
            return found  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)
    return await read()  # type: ignore[no-any-return]


# The middleware in this process, under uvicorn.


@dataclass
class Watched:
    running: Running
    registry: CollectorRegistry
    server: str
    ended: Ended


@pytest.fixture
async def watched(server_impl: str) -> AsyncIterator[Watched]:
    registry = CollectorRegistry()
    ended = Ended()
    proxy = WebSocketProxyMiddleware(
        app,
        metrics=registry,
        access_log=True,
        authenticate=authenticate,
        allowed_origins=[APP_ORIGIN],
        on_stream_end=ended,
    )
    async with serve_on(server_impl, proxy) as running:
        yield Watched(running, registry, server_impl, ended)


async def test_metrics_and_access_lines_of_a_mix_of_calls(watched: Watched) -> None:
    from prometheus_client import generate_latest

    with logged({"wsproxy.access": logging.INFO}) as log:
        await mixed_calls(watched.running.ws)

        async def read() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            return samples(generate_latest(watched.registry).decode())

        check_figures(await settled(read), watched.server)
    check_access_lines(log.lines, watched.server)


async def test_open_streams_are_counted_while_open_and_long_ones_published_on_the_tick(
    watched: Watched,
) -> None:
    registry = watched.registry
    bearer: Any = ["Bearer", TOKEN]
    async with contextlib.AsyncExitStack() as stack:
        streams = [
            await stack.enter_async_context(
                connect(watched.running.ws + "/bidi?method=POST", subprotocols=bearer)
            )
            for _ in range(3)
        ]
        for ws in streams:
            await ws.send('{"n": 0}')
            assert await ws.recv() == ECHO_0
        assert registry.get_sample_value("wsproxy_streams_open") == 3
        # Published on the tick (every 5 s), before any of them ends.
        for _ in range(140):
            if registry.get_sample_value("wsproxy_messages_total", {"direction": "in"}) == 3:
                break
            await asyncio.sleep(0.05)
        assert registry.get_sample_value("wsproxy_messages_total", {"direction": "in"}) == 3
        assert registry.get_sample_value("wsproxy_streams_total", {"code": "1000"}) is None
        for ws in streams:
            await ws.send("")
            assert (await drain(ws))[1] == 1000
    await watched.ended.reach(3)
    assert registry.get_sample_value("wsproxy_streams_open") == 0
    assert registry.get_sample_value("wsproxy_messages_total", {"direction": "in"}) == 3  # not twice


# The `wsproxy` command: two workers, the metrics listener, the access log on stderr.


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range, so no outgoing connection takes it
    between this check and the command's bind (the command cannot inherit a socket for metrics)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(100):
        port = random.randrange(max(low - 12000, 1024), low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


async def healthy(url: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(url + "/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.05)
    raise AssertionError("the metrics listener never answered")


WSPROXY = [sys.executable, "-m", "wsproxy", "--log-level", "info"]


async def test_the_command_counts_across_two_workers_and_logs_each_stream(
    upstream: Process, tmp_path: Path
) -> None:
    port = free_port()
    metrics = f"http://127.0.0.1:{port}"
    multiproc = tmp_path / "prometheus"
    argv = [
        *WSPROXY,
        "--upstream",
        upstream.http,
        "--workers",
        "2",
        "--metrics-port",
        str(port),
        "--authenticate",
        "tests.integration.test_auth:authenticate",
        "--allowed-origin",
        APP_ORIGIN,
    ]
    with (
        (tmp_path / "stderr").open("wb") as stderr,
        spawn_listening(argv, env={"PROMETHEUS_MULTIPROC_DIR": str(multiproc)}, stderr=stderr) as proxy,
    ):
        await healthy(metrics)
        async with httpx.AsyncClient() as client:
            assert (await client.get(metrics + "/healthz")).json() == {"status": "ok"}
            assert (await client.get(metrics + "/other")).status_code == 404

            async def read() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
                return samples((await client.get(metrics + "/metrics")).text)

            await mixed_calls(proxy.ws)
            # Calls until both workers have served one: then the scrape's figures are a sum over two.
            extra = 0
            while len(writers(multiproc, "counter_") - {proxy.proc.pid}) < 2 and extra < 200:
                await asyncio.gather(*(clean_call(proxy.ws) for _ in range(4)))
                extra += 4
            assert len(writers(multiproc, "counter_") - {proxy.proc.pid}) == 2, os.listdir(multiproc)
            check_figures(await settled(read, 4 + extra), "uvicorn", extra)
    check_access_lines((tmp_path / "stderr").read_text().splitlines(), "uvicorn")


def writers(directory: Path, prefix: str) -> set[int]:
    """The processes that wrote metric files of this kind (prometheus_client names them kind_PID.db)."""
    return {
        int(name.removesuffix(".db").rsplit("_", 1)[1])
        for name in os.listdir(directory)
        if name.startswith(prefix)
    }


async def clean_call(base: str) -> None:
    async with connect(f"{base}/status/200", subprotocols=["Bearer", TOKEN]) as ws:  # type: ignore[list-item]
        assert (await drain(ws))[1] == 1000


async def test_no_access_log_means_no_line(upstream: Process, tmp_path: Path) -> None:
    with (
        (tmp_path / "stderr").open("wb") as stderr,
        spawn_listening([*WSPROXY, "--upstream", upstream.http, "--no-access-log"], stderr=stderr) as proxy,
    ):
        async with connect(proxy.ws + "/stream?count=1", open_timeout=30) as ws:
            assert (await drain(ws))[1] == 1000
    assert " msg " not in (tmp_path / "stderr").read_text()


def worker_pids(parent: int) -> list[int]:
    """uvicorn's worker processes: the children of the command started by multiprocessing's spawn."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [
        int(pid)
        for pid in children
        if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
        and b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


async def test_workers_killed_mid_stream_leave_no_open_stream_behind(
    upstream: Process, tmp_path: Path
) -> None:
    port = free_port()
    metrics = f"http://127.0.0.1:{port}"
    argv = [
        *WSPROXY,
        "--upstream",
        upstream.http,
        "--workers",
        "2",
        "--metrics-port",
        str(port),
        "--no-access-log",
    ]
    multiproc = tmp_path / "prometheus"
    with spawn_listening(argv, env={"PROMETHEUS_MULTIPROC_DIR": str(multiproc)}) as proxy:
        await healthy(metrics)
        async with httpx.AsyncClient() as client:

            async def read() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
                return samples((await client.get(metrics + "/metrics")).text)

            async with connect(proxy.ws + "/stream?count=1", open_timeout=30) as ws:
                assert (await drain(ws))[1] == 1000
            ws = await connect(proxy.ws + "/forever", open_timeout=30)
            assert json.loads(await ws.recv()) == {"n": 0}
            assert figure(await read(), "wsproxy_streams_open") == 1
            for pid in worker_pids(proxy.proc.pid):
                os.kill(pid, signal.SIGKILL)
            assert (await drain(ws))[1] == 1006  # the worker died: no close frame
            for _ in range(200):  # uvicorn reaps the dead workers and starts new ones
                found = await read()
                if figure(found, "wsproxy_streams_open") == 0:
                    break
                await asyncio.sleep(0.05)
            assert figure(found, "wsproxy_streams_open") == 0
            assert figure(found, "wsproxy_streams_total", code="1000") == 1  # what the dead counted stays


# The metrics listener's bookkeeping of the multiprocess directory: the files of a worker that died.


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_dead_workers_open_gauge_is_retired_and_its_counters_kept(tmp_path: Path) -> None:
    dead, alive = dead_pid(), os.getpid()
    names = [
        f"gauge_livesum_{dead}.db",
        f"counter_{dead}.db",
        f"gauge_livesum_{alive}.db",
        f"counter_{alive}.db",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    retire_dead_processes(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == sorted(names[1:])
