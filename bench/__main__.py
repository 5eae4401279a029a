"""`python -m bench [--quick] [--ws IMPL] [--json FILE]`: the proxy vs. the bare echo, one table."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys

from bench.report import table
from bench.run import CLIENT_CPU, QUICK, Plan, machine, progress, run
from bench.server import raise_fd_limit


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="wsproxy around an NDJSON echo vs. a bare ASGI WebSocket echo on the same uvicorn. "
        "Ratios are wsproxy/baseline, medians of paired rounds.",
    )
    parser.add_argument("--quick", action="store_true", help="a tiny run that only shows the bench works")
    parser.add_argument(
        "--ws",
        default="websockets-sansio",
        choices=["websockets-sansio", "wsproto"],
        help="uvicorn's WebSocket implementation (default: %(default)s)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write every round's values to FILE")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    plan = dataclasses.replace(QUICK if args.quick else Plan(), ws=args.ws)
    if len(os.sched_getaffinity(0)) < 2:
        progress("python -m bench: needs two CPUs (server on one, load client on the other)")
        return 1
    os.sched_setaffinity(0, {CLIENT_CPU})
    raise_fd_limit()
    try:
        rows = asyncio.run(run(plan))
    except (OSError, RuntimeError) as exc:
        progress(f"python -m bench: {exc}")
        return 1
    print("\n".join([*machine(), f"uvicorn ws implementation: {plan.ws}", ""]))
    print(table(list(rows.values())))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(
                {key: {"baseline": r.base, "wsproxy": r.proxy} for key, r in rows.items()}, out, indent=1
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
