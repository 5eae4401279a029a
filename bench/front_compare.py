"""`python -m bench.front_compare [--rev REV]`: this tree's `wsproxy --upstream` beside REV's, one run.

The front CPU rows (bench/rows_upstream_cpu.py) judge the front against the in-process proxy; a
change to the front moves them by less than two runs on a shared machine spread. Here every round
measures, in rotating order, the in-process proxy and, per HTTP version, the front as committed at
REV (exported with `git archive` into a temporary directory and run from there) and the working
tree's front, all before one upstream echo. Ratios are medians of per-round ratios, with spreads.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from bench import scenarios
from bench.harness import ASYNCIO, CLIENT_CPU, UVLOOP, Loop, has_uvloop, run_on, server
from bench.rows_echo import ECHO_SERVER, PROXY_ECHO
from bench.rows_upstream_cpu import FRONT_PATH, SIZES, VERSIONS, fronts
from bench.scenarios import Flow, payload_of


def export(rev: str, into: str) -> None:
    repo = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "archive", rev, "wsproxy"], check=True, capture_output=True, cwd=repo)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")


async def measure(
    loop: Loop, base_dir: str, rounds: int, ws: str, sizes: list[str]
) -> dict[str, dict[str, list[Flow]]]:
    wanted: dict[str, tuple[str, str | None]] = {}
    for version in VERSIONS:
        wanted[f"base h{version}"] = (version, base_dir)
        wanted[f"work h{version}"] = (version, None)
    out: dict[str, dict[str, list[Flow]]] = {}
    async with server(ECHO_SERVER, ws=ws, loop=loop) as srv, fronts(loop.name, ws, wanted) as front:
        where = {"in-process": (srv.port, srv.pid, PROXY_ECHO)}
        where |= {name: (f.port, f.proc.pid, FRONT_PATH) for name, f in front.items()}
        for size in (s for s in SIZES if s.label in sizes):
            flows: dict[str, list[Flow]] = {name: [] for name in where}
            for round_ in range(rounds):
                names = list(where)
                names = names[round_ % len(names) :] + names[: round_ % len(names)]
                for name in names:
                    port, pid, path = where[name]
                    flows[name].append(
                        await scenarios.echo_flow(
                            port,
                            pid,
                            path,
                            payload_of(size.size),
                            streams=size.streams,
                            in_flight=size.in_flight,
                            warmup=0.3,
                            duration=1.2,
                        )
                    )
            out[size.label] = flows
    return out


def ratio(over: list[float], under: list[float]) -> str:
    values = [a / b for a, b in zip(over, under, strict=True) if b]
    if not values:
        return "-"
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.front_compare", description=__doc__)
    parser.add_argument("--rev", default="HEAD", help="the revision to compare with (default: %(default)s)")
    parser.add_argument("--size", action="append", choices=[s.label for s in SIZES], help="default: all")
    parser.add_argument("--loop", action="append", choices=["asyncio", "uvloop"], help="default: both")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ws", default="websockets-sansio", choices=["websockets-sansio", "wsproto"])
    args = parser.parse_args(argv)
    loops = [ASYNCIO if name == "asyncio" else UVLOOP for name in args.loop or ["asyncio", "uvloop"]]
    loops = [loop for loop in loops if loop.name != "uvloop" or has_uvloop()]
    if len(os.sched_getaffinity(0)) < 2:
        print("python -m bench.front_compare: needs two CPUs (fronts on one, load client on the other)")
        return 1
    os.sched_setaffinity(0, {CLIENT_CPU})
    with tempfile.TemporaryDirectory(prefix="wsproxy-front-") as base_dir:
        try:
            export(args.rev, base_dir)
        except subprocess.CalledProcessError as exc:
            print(
                f"python -m bench.front_compare: git archive {args.rev} failed: {exc.stderr.decode().strip()}"
            )
            return 1
        print(f"base: {args.rev}; work: the working tree; {args.rounds} rounds; front CPU per message; "
              "ratios: median (spread) of the per-round ratios")  # fmt: skip
        print(
            "| size | loop | HTTP | base / in-process | work / in-process | work / base | µs/msg in-process / base / work |"
        )
        print("|---|---|---|:-:|:-:|:-:|:-:|")
        for loop in loops:
            client_loop = "uvloop" if has_uvloop() else "asyncio"
            results = run_on(
                client_loop,
                measure(loop, base_dir, args.rounds, args.ws, args.size or [s.label for s in SIZES]),
            )
            for size, flows in results.items():
                cpu = {name: [f.server_us_per_message for f in runs] for name, runs in flows.items()}
                inproc = cpu["in-process"]
                for version in VERSIONS:
                    base, work = cpu[f"base h{version}"], cpu[f"work h{version}"]
                    print(
                        f"| {size} | {loop.label} | {version} | {ratio(base, inproc)} | {ratio(work, inproc)} "
                        f"| {ratio(work, base)} | {statistics.median(inproc):.1f} / {statistics.median(base):.1f} "
                        f"/ {statistics.median(work):.1f} |",
                        flush=True,
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
