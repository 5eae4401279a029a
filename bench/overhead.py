"""`python -m bench.overhead`: the proxy's own CPU time per message, in-process, without sockets.

The same fake ASGI WebSocket drives the bare echo and the proxy around the NDJSON echo, alternating,
on each event loop. Like uvicorn's, its `receive` decodes each text message from bytes (a fresh str)
and its `send` encodes each text frame back to bytes, so the allocations of large messages, and the
page faults they cause, follow the server's pattern; frame parsing and socket writes are left out. Less noisy than the server rows on a shared
machine, so it is what each hot-path change was measured with (see docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import time

from bench.apps import bare_echo, ndjson_echo
from bench.harness import has_uvloop, run_on
from bench.scenarios import payload_of
from wsproxy import WebSocketProxyMiddleware
from wsproxy._types import ASGIApp, Message

FAULTS: list[float] = []  # page faults per message of each pass, in order
SIZES = {"64 B": 64, "64 KiB": 64 * 1024, "1 MiB": 1024 * 1024}
COUNTS = {"64 B": 20_000, "64 KiB": 2_000, "1 MiB": 200}
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
    raw = text.encode()
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
        return {"type": "websocket.receive", "text": raw.decode()}

    async def send(event: Message) -> None:
        nonlocal sent
        if event["type"] == "websocket.send":
            text = event.get("text")
            if text is not None:
                text.encode()
            sent += 1

    left = -1
    first = await receive()
    assert first["type"] == "websocket.connect"
    left = count

    calls = 0

    async def receive_all() -> Message:
        nonlocal calls
        calls += 1
        return first if calls == 1 else await receive()

    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    started = time.process_time()
    await app(dict(SCOPE), receive_all, send)
    elapsed = time.process_time() - started
    FAULTS.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / count)
    if sent < count:
        raise RuntimeError(f"only {sent} of {count} messages came back")
    return elapsed / count


async def measure(size: int, count: int, rounds: int) -> tuple[list[float], list[float], float, float]:
    text = payload_of(size).decode()
    proxy = WebSocketProxyMiddleware(ndjson_echo)
    bare: list[float] = []
    proxied: list[float] = []
    bare_faults: list[float] = []
    proxy_faults: list[float] = []
    await one_pass(proxy, text, max(count // 10, 1))  # warm up
    for round_ in range(rounds):
        for is_bare in (True, False) if round_ % 2 == 0 else (False, True):
            if is_bare:
                bare.append(await one_pass(bare_echo, text, count))
                bare_faults.append(FAULTS[-1])
            else:
                proxied.append(await one_pass(proxy, text, count))
                proxy_faults.append(FAULTS[-1])
    return bare, proxied, statistics.median(bare_faults), statistics.median(proxy_faults)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--size", action="append", choices=list(SIZES), help="default: all")
    parser.add_argument("--loop", action="append", choices=["asyncio", "uvloop"], help="default: both")
    args = parser.parse_args(argv)
    loops = args.loop or ["asyncio", *(["uvloop"] if has_uvloop() else [])]
    print(
        "| size | loop | bare echo (µs/msg) | proxy (µs/msg) | proxy's own (µs/msg) | spread "
        "| page faults/msg, bare / proxy |"
    )
    print("|---|---|---:|---:|---:|:-:|:-:|")
    for label in args.size or list(SIZES):
        size = SIZES[label]
        count = COUNTS[label]
        for loop in loops:
            bare, proxied, bare_faults, proxy_faults = run_on(loop, measure(size, count, args.rounds))
            own = [(p - b) * 1e6 for b, p in zip(bare, proxied, strict=True)]
            print(
                f"| {label} | {loop} | {statistics.median(bare) * 1e6:.2f} | {statistics.median(proxied) * 1e6:.2f} "
                f"| {statistics.median(own):.2f} | {min(own):.2f} to {max(own):.2f} "
                f"| {bare_faults:.1f} / {proxy_faults:.1f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
