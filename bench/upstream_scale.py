"""Scale row: many concurrent streams through `wsproxy --upstream`, over HTTP/1.1 and over HTTP/2.

    python -m bench.upstream_scale [--quick] [--streams N]     (alone)
    make bench                                                 (bench/rows_upstream.py, both loops)

Each round runs both variants, alternating which goes first: an NDJSON echo served by hypercorn
(which takes HTTP/1.1 and h2c with prior knowledge on one port, up to `UPSTREAM_STREAM_LIMIT`
streams per HTTP/2 connection) in its own process, and the `wsproxy` command in front of it with
`--upstream-http-version 1.1` or `2`, pinned to CPU 0. The load client (this process, CPU 1) opens
N streams, then keeps one message in flight on every stream for a while. Measured on the proxy:

- upstream connections: ESTABLISHED TCP connections to the upstream's port (/proc/net/tcp*),
- memory per stream: (proxy RSS with N streams open - RSS before) / N,
- messages/s: echoes answered per second with all N streams busy.

In the table "baseline" is HTTP/1.1 and "wsproxy" is HTTP/2. Targets: HTTP/2 on at most 8
connections, memory per stream no worse than HTTP/1.1's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from bench.procstat import rss_bytes
from bench.report import Row, table
from bench.scenarios import open_streams
from bench.server import raise_fd_limit
from bench.wsclient import client_frame

PROXY_CPU = 0
CLIENT_CPU = 1
# Below 1000: hypercorn's priority tree refuses a 1001st stream, and closing ones still count there.
UPSTREAM_STREAM_LIMIT = 800
PATH = "/echo?method=POST"
MESSAGE = b'{"text":"hello"}'
VERSIONS = ("1.1", "2")


@dataclass(frozen=True)
class ScalePlan:
    streams: int = 5000
    rounds: int = 3
    busy_seconds: float = 3.0


QUICK = ScalePlan(streams=100, rounds=1, busy_seconds=0.5)

# hypercorn's command has no flag for SETTINGS_MAX_CONCURRENT_STREAMS; this sets it in a Config.
_UPSTREAM = f"""
import asyncio, socket, sys
from hypercorn.asyncio import serve
from hypercorn.config import Config
from bench.apps import ndjson_echo
async def app(scope, receive, send):
    if scope["type"] != "lifespan":
        return await ndjson_echo(scope, receive, send)
    while (message := await receive())["type"] != "lifespan.shutdown":
        await send({{"type": "lifespan.startup.complete"}})
    await send({{"type": "lifespan.shutdown.complete"}})
config = Config()
config.bind = ["fd://" + sys.argv[1]]
config.loglevel = "WARNING"
config.h2_max_concurrent_streams = {UPSTREAM_STREAM_LIMIT}
config.backlog = 4096
config.keep_alive_timeout = 600
asyncio.run(serve(app, config))
"""


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class Spawned:
    proc: subprocess.Popen[bytes]
    port: int


@contextlib.contextmanager
def listening(argv: list[str], *, cpu: int | None = None, cwd: str | None = None) -> Iterator[Spawned]:
    """Run argv, where `{fd}` stands for the number of a listening loopback socket it inherits."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    sock.set_inheritable(True)
    argv = [part.replace("{fd}", str(sock.fileno())) for part in argv]
    if cpu is not None and shutil.which("taskset"):
        argv = ["taskset", "-c", str(cpu), *argv]
    proc = subprocess.Popen(argv, pass_fds=[sock.fileno()], stdin=subprocess.DEVNULL, cwd=cwd)
    port = sock.getsockname()[1]
    sock.close()
    try:
        yield Spawned(proc, port)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def upstream_connections(port: int) -> int:
    """ESTABLISHED TCP connections whose remote end is loopback `port` (only the proxy dials it)."""
    count = 0
    for table_path in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table_path) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count


async def ready(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on port {port}") from None
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return


@contextlib.asynccontextmanager
async def proxy_stack(version: str, loop: str = "auto") -> AsyncIterator[tuple[Spawned, Spawned]]:
    """The hypercorn upstream and `wsproxy --upstream` in front of it (on `loop`), speaking `version`."""
    with listening([sys.executable, "-c", _UPSTREAM, "{fd}"], cpu=CLIENT_CPU) as upstream:
        await ready(upstream.port)
        argv = [sys.executable, "-m", "wsproxy", "--fd", "{fd}", "--log-level", "warning",
                "--upstream", f"http://127.0.0.1:{upstream.port}", "--upstream-http-version", version,
                "--no-upstream-check", "--loop", loop]  # fmt: skip
        with listening(argv, cpu=PROXY_CPU) as proxy:
            await ready(proxy.port)
            yield upstream, proxy


async def busy_rate(conns: list[object], seconds: float) -> float:
    """Echoes per second with one message in flight on every stream."""
    frame = client_frame(MESSAGE)
    running = True

    def again(conn: object, replies: int, _: float) -> None:
        if running:
            conn.send(frame, replies)  # type: ignore[attr-defined]

    before = sum(c.replies for c in conns)  # type: ignore[attr-defined]
    for conn in conns:
        conn.on_replies = again  # type: ignore[attr-defined]
        conn.send(frame, 1)  # type: ignore[attr-defined]
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    answered = sum(c.replies for c in conns) - before  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - started
    running = False
    await asyncio.sleep(0.5)  # the last messages in flight come back before the streams close
    return answered / elapsed


async def one_variant(plan: ScalePlan, version: str, loop: str = "auto") -> tuple[float, float, float]:
    """(upstream connections, KiB per stream, messages/s) for `plan.streams` streams over `version`."""
    async with proxy_stack(version, loop) as (upstream, proxy):
        warm = await open_streams(proxy.port, PATH, MESSAGE, 20)  # imports and first allocations
        await asyncio.gather(*(c.close() for c in warm))
        await asyncio.sleep(0.5)
        idle = rss_bytes(proxy.proc.pid)
        conns = await open_streams(proxy.port, PATH, MESSAGE, plan.streams)
        await asyncio.sleep(1.0)
        opened = rss_bytes(proxy.proc.pid)
        connections = upstream_connections(upstream.port)
        rate = await busy_rate(list(conns), plan.busy_seconds)
        await asyncio.gather(*(c.close() for c in conns))
    return connections, (opened - idle) / plan.streams / 1024, rate


def rows(plan: ScalePlan) -> dict[str, Row]:
    n = f"{plan.streams:,}"
    return {
        "upstream conns": Row(
            "upstream conns", f"upstream connections, {n} streams (HTTP/1.1 vs 2)", "conns", "<= 8", True
        ),
        "upstream memory": Row(
            "upstream memory", f"proxy memory per stream, {n} streams (HTTP/1.1 vs 2)", "KiB", "<= 1.0"
        ),
        "upstream rate": Row("upstream rate", f"echoes/s, {n} busy streams (HTTP/1.1 vs 2)", "msgs/s"),
    }


async def run(plan: ScalePlan) -> dict[str, Row]:
    table_rows = rows(plan)
    for round_ in range(plan.rounds):
        results: dict[str, tuple[float, float, float]] = {}
        for version in VERSIONS if round_ % 2 == 0 else reversed(VERSIONS):
            results[version] = await one_variant(plan, version)
            conns, memory, rate = results[version]
            progress(
                f"upstream scale round {round_ + 1}, HTTP/{version}: {conns:.0f} upstream connections, "
                f"{memory:.1f} KiB per stream, {rate:,.0f} echoes/s"
            )
        for index, row in enumerate(table_rows.values()):
            row.add(results["1.1"][index], results["2"][index])
    return table_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.upstream_scale", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="a tiny run that only shows the bench works")
    parser.add_argument("--streams", type=int, help="concurrent streams (default: 5000; quick: 100)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else ScalePlan()
    if args.streams:
        plan = ScalePlan(args.streams, plan.rounds, plan.busy_seconds)
    raise_fd_limit()
    if len(os.sched_getaffinity(0)) >= 2:
        os.sched_setaffinity(0, {CLIENT_CPU})
    try:
        result = asyncio.run(run(plan))
    except (OSError, RuntimeError) as exc:
        progress(f"python -m bench.upstream_scale: {exc}")
        return 1
    print("baseline = HTTP/1.1 upstream, wsproxy = HTTP/2 upstream (same proxy, same upstream)\n")
    print(table(list(result.values())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
