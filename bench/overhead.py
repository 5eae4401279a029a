"""`python -m bench.overhead`: the proxy's own CPU time per message, in-process, without sockets.

The same fake ASGI WebSocket (a `receive` that hands out prebuilt messages, a `send` that drops the
frames) drives the bare echo and the proxy around the NDJSON echo, alternating, on each event loop.
What is left of the difference is exactly the proxy's work per message: the server's own work
(frame parsing, UTF-8, writes) is not in either. Less noisy than the server rows on a shared
machine, so it is what each hot-path change was measured with (see docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

from bench.apps import bare_echo, ndjson_echo
from bench.harness import has_uvloop, run_on
from bench.scenarios import payload_of
from wsproxy import WebSocketProxyMiddleware
from wsproxy._types import ASGIApp, Message

SIZES = {"64 B": 64, "64 KiB": 64 * 1024, "1 MiB": 1024 * 1024}
SCOPE = {
    "type": "websocket",
    "asgi": {"version": "3.0"},
    "scheme": "ws",
    "http_version": "1.1",
    "path": "/echo",
    "raw_path": b"/echo",
    "query_string": b"method=POST",
    "root_path": "",
    "headers": [(b"host", b"bench")],
    "client": ("127.0.0.1", 1),
    "server": ("127.0.0.1", 2),
    "subprotocols": [],
    "extensions": {},
}


async def one_pass(app: ASGIApp, text: str, count: int) -> float:
    """CPU seconds per message for `count` text messages through `app` on a fake WebSocket."""
    message = {"type": "websocket.receive", "text": text}
    left = count
    sent = 0

    async def receive() -> Message:
        nonlocal left
        if left == -1:
            return {"type": "websocket.connect"}
        if left == 0:
            await asyncio.sleep(0)
            return {"type": "websocket.disconnect", "code": 1000}
        left -= 1
        return message

    async def send(event: Message) -> None:
        nonlocal sent
        if event["type"] == "websocket.send":
            sent += 1

    left = -1
    first = await receive()
    assert first["type"] == "websocket.connect"
    left = count

    async def connect_once() -> Message:
        return first

    calls = 0

    async def receive_all() -> Message:
        nonlocal calls
        calls += 1
        return first if calls == 1 else await receive()

    started = time.process_time()
    await app(dict(SCOPE), receive_all, send)
    elapsed = time.process_time() - started
    if sent < count:
        raise RuntimeError(f"only {sent} of {count} messages came back")
    return elapsed / count


async def measure(size: int, count: int, rounds: int) -> tuple[list[float], list[float]]:
    text = payload_of(size).decode()
    proxy = WebSocketProxyMiddleware(ndjson_echo)
    bare: list[float] = []
    proxied: list[float] = []
    await one_pass(proxy, text, max(count // 10, 1))  # warm up
    for round_ in range(rounds):
        for is_bare in (True, False) if round_ % 2 == 0 else (False, True):
            if is_bare:
                bare.append(await one_pass(bare_echo, text, count))
            else:
                proxied.append(await one_pass(proxy, text, count))
    return bare, proxied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--size", action="append", choices=list(SIZES), help="default: all")
    parser.add_argument("--loop", action="append", choices=["asyncio", "uvloop"], help="default: both")
    args = parser.parse_args(argv)
    loops = args.loop or ["asyncio", *(["uvloop"] if has_uvloop() else [])]
    print("| size | loop | bare echo (µs/msg) | proxy (µs/msg) | proxy's own (µs/msg) | spread |")
    print("|---|---|---:|---:|---:|:-:|")
    for label in args.size or list(SIZES):
        size = SIZES[label]
        count = max(20, min(20_000, 200_000_000 // (size * 40) if size > 1024 else 20_000))
        for loop in loops:
            bare, proxied = run_on(loop, measure(size, count, args.rounds))
            own = [(p - b) * 1e6 for b, p in zip(bare, proxied, strict=True)]
            print(
                f"| {label} | {loop} | {statistics.median(bare) * 1e6:.2f} | {statistics.median(proxied) * 1e6:.2f} "
                f"| {statistics.median(own):.2f} | {min(own):.2f} to {max(own):.2f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
