"""`python -m bench.compare [--rev REV]`: this working tree's proxy against a git revision's, in one server.

A change to the hot path moves the echo rows by a few percent, less than what one run's rounds
spread on a shared machine, so two separate bench runs cannot tell it. Here one server process
serves four paths side by side: the bare echo (`/bare`), the contract's floor (`/floor`: the bare
echo plus only the passes over each message that the contract forces, bench.apps.floor_echo), the
proxy as committed at REV (`/base`, exported with `git archive` into a temporary directory and
imported under the package name `wsproxy_base`), and the proxy of the working tree (`/work`), both
around the same NDJSON echo. Every round measures all four, in rotating order; each ratio is the median of the per-round ratios,
with their spread, as in the bench proper (docs/performance.md).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench import scenarios
from bench.apps import bare_echo, floor_echo, ndjson_echo
from bench.harness import ASYNCIO, CLIENT_CPU, UVLOOP, Loop, has_uvloop, run_on, server
from bench.scenarios import Flow, payload_of
from wsproxy._types import ASGIApp, Receive, Scope, Send

BASE_PACKAGE = "wsproxy_base"
PATHS = {"bare": "/bare", "floor": "/floor", "base": "/base?method=POST", "work": "/work?method=POST"}
SIZES = {"64 B": (64, 8, 16), "64 KiB": (64 * 1024, 4, 4), "1 MiB": (1024 * 1024, 4, 2)}
_IMPORT = re.compile(r"^(\s*)(from|import) wsproxy\b", re.MULTILINE)


def compare_server() -> ASGIApp:
    """The server's app (run by bench.server): /bare, /floor, /base (the revision's proxy), /work (this tree's)."""
    from wsproxy_base import WebSocketProxyMiddleware as Base  # type: ignore[import-not-found]

    from wsproxy import WebSocketProxyMiddleware as Work

    base, work = Base(ndjson_echo), Work(ndjson_echo)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        if path == "/bare":
            await bare_echo(scope, receive, send)
        elif path == "/floor":
            await floor_echo(scope, receive, send)
        elif path == "/base":
            await base(scope, receive, send)
        else:
            await work(scope, receive, send)

    return app


@contextlib.contextmanager
def exported(rev: str) -> Iterator[Path]:
    """The revision's wsproxy package, renamed to wsproxy_base, in a temporary directory."""
    repo = Path(__file__).resolve().parent.parent
    archive = subprocess.run(
        ["git", "archive", rev, "wsproxy"], check=True, capture_output=True, cwd=repo
    ).stdout
    with tempfile.TemporaryDirectory(prefix="wsproxy-compare-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        package = Path(tmp, BASE_PACKAGE)
        Path(tmp, "wsproxy").rename(package)
        for source in package.rglob("*.py"):
            source.write_text(_IMPORT.sub(rf"\1\2 {BASE_PACKAGE}", source.read_text()))
        yield Path(tmp)


async def measure(loop: Loop, size: str, rounds: int, ws: str, *, quick: bool) -> dict[str, list[Flow]]:
    payload_size, streams, in_flight = (SIZES[size][0], 1, 2) if quick else SIZES[size]
    payload = payload_of(payload_size)
    flows: dict[str, list[Flow]] = {name: [] for name in PATHS}
    async with server("bench.compare:compare_server", ws=ws, loop=loop) as srv:
        for round_ in range(rounds):
            names = list(PATHS)
            names = names[round_ % len(names) :] + names[: round_ % len(names)]
            for name in names:
                flows[name].append(
                    await scenarios.echo_flow(
                        srv.port,
                        srv.pid,
                        PATHS[name],
                        payload,
                        streams=streams,
                        in_flight=in_flight,
                        warmup=0.1 if quick else 0.3,
                        duration=0.3 if quick else 1.2,
                    )
                )
    return flows


def ratio(over: list[float], under: list[float]) -> str:
    values = [a / b for a, b in zip(over, under, strict=True)]
    return f"{statistics.median(values):.3f} ({min(values):.2f}-{max(values):.2f})"


def report(loop: Loop, size: str, flows: dict[str, list[Flow]]) -> str:
    rate = {name: [f.messages_per_s for f in runs] for name, runs in flows.items()}
    p99 = {name: [f.p99_ms or 0.0 for f in runs] for name, runs in flows.items()}
    cpu = {name: statistics.median(f.server_us_per_message for f in runs) for name, runs in flows.items()}
    return (
        f"| {size} | {loop.label} | {ratio(rate['base'], rate['bare'])} | {ratio(rate['work'], rate['bare'])} "
        f"| {ratio(rate['work'], rate['base'])} | {ratio(p99['base'], p99['bare'])} "
        f"| {ratio(p99['work'], p99['bare'])} | {ratio(rate['floor'], rate['bare'])} "
        f"| {ratio(rate['work'], rate['floor'])} "
        f"| {cpu['bare']:.1f} / {cpu['floor']:.1f} / {cpu['base']:.1f} / {cpu['work']:.1f} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("--rev", default="HEAD", help="the revision to compare with (default: %(default)s)")
    parser.add_argument("--size", action="append", choices=list(SIZES), help="default: all")
    parser.add_argument("--loop", action="append", choices=["asyncio", "uvloop"], help="default: both")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="a tiny run that only shows it works")
    parser.add_argument("--ws", default="websockets-sansio", choices=["websockets-sansio", "wsproto"])
    args = parser.parse_args(argv)
    loops = [ASYNCIO if name == "asyncio" else UVLOOP for name in args.loop or ["asyncio", "uvloop"]]
    loops = [loop for loop in loops if loop.name != "uvloop" or has_uvloop()]
    if len(os.sched_getaffinity(0)) < 2:
        print("python -m bench.compare: needs two CPUs (server on one, load client on the other)")
        return 1
    try:
        with exported(args.rev) as tmp:
            # The server subprocess finds wsproxy_base through PYTHONPATH; this process never imports it.
            paths = [str(tmp), os.environ.get("PYTHONPATH", "")]
            os.environ["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
            os.sched_setaffinity(0, {CLIENT_CPU})
            print(f"base: {args.rev}; work: the working tree; {args.rounds} rounds; ratios: median (spread)")
            print(
                "| size | loop | base / bare | work / bare | work / base | p99 base / bare "
                "| p99 work / bare | floor / bare | work / floor | server µs/msg bare / floor / base / work |"
            )
            print("|---|---|:-:|:-:|:-:|:-:|:-:|:-:|:-:|:-:|")
            for size in args.size or list(SIZES):
                for loop in loops:
                    client_loop = "uvloop" if has_uvloop() else "asyncio"
                    flows = run_on(client_loop, measure(loop, size, args.rounds, args.ws, quick=args.quick))
                    print(report(loop, size, flows), flush=True)
    except subprocess.CalledProcessError as exc:
        print(f"python -m bench.compare: git archive {args.rev} failed: {exc.stderr.decode().strip()}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
