"""`python -m bench [--quick] [--loop L] [--ws IMPL] [--json FILE]`: the proxy vs. the bare echo (and, on
the echo rows, the contract's floor): one table, then each target's verdict."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

from bench.harness import ASYNCIO, CLIENT_CPU, UVLOOP, has_uvloop, progress, run_on
from bench.report import interleave, table, verdicts
from bench.run import GROUPS, QUICK, Plan, machine, run
from bench.server import raise_fd_limit

LOOPS = {"asyncio": (ASYNCIO,), "uvloop": (UVLOOP,), "both": (ASYNCIO, UVLOOP)}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="wsproxy around an NDJSON echo vs. a bare ASGI WebSocket echo on the same uvicorn, "
        "on each event loop. Ratios are wsproxy/baseline: the median of paired rounds, with their spread.",
    )
    parser.add_argument("--quick", action="store_true", help="a tiny run that only shows the bench works")
    parser.add_argument(
        "--loop",
        default="both",
        choices=sorted(LOOPS),
        help="the server's event loop: asyncio or uvloop, both with h11 (default: %(default)s)",
    )
    parser.add_argument(
        "--ws",
        default="websockets-sansio",
        choices=["websockets-sansio", "wsproto"],
        help="uvicorn's WebSocket implementation (default: %(default)s)",
    )
    parser.add_argument(
        "--group",
        action="append",
        choices=[group.name for group in GROUPS],
        help="measure only this row group; repeat for several (default: all)",
    )
    parser.add_argument("--rounds", type=int, help="rounds per row (default: 7, --quick: 1)")
    parser.add_argument("--json", metavar="FILE", help="also write every round's values to FILE")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    plan = dataclasses.replace(QUICK if args.quick else Plan(), ws=args.ws, loops=LOOPS[args.loop])
    if args.rounds:
        plan = dataclasses.replace(plan, rounds=args.rounds)
    if len(os.sched_getaffinity(0)) < 2:
        progress("python -m bench: needs two CPUs (server on one, load client on the other)")
        return 1
    os.sched_setaffinity(0, {CLIENT_CPU})
    raise_fd_limit()
    started = time.monotonic()
    try:
        # The load client runs on uvloop where it can, so it is never the bottleneck.
        groups = tuple(group for group in GROUPS if not args.group or group.name in args.group)
        results = run_on("uvloop" if has_uvloop() else "asyncio", run(plan, groups))
    except (OSError, RuntimeError) as exc:
        progress(f"python -m bench: {exc}")
        return 1
    minutes = (time.monotonic() - started) / 60
    print("\n".join([*machine(), f"uvicorn ws implementation: {plan.ws}; bench took {minutes:.1f} min", ""]))
    rows = interleave(results)
    print(table(rows))
    judged = verdicts(rows)
    if judged:
        print(f"\n{judged}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(
                {
                    loop: {key: {"baseline": r.base, "wsproxy": r.proxy} for key, r in rows.items()}
                    for loop, rows in results.items()
                },
                out,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
