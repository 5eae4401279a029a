"""`python -m bench.flood URL [--size BYTES]`: one client flooding a bidi echo stream, as its own process.

It sends `--size`-byte text messages as fast as the connection takes them (a thread of its own) while
reading every reply, prints "FLOODING" once the first reply is back, and runs until it is killed or
the server ends the stream. The fairness row of the bench and tests/integration/test_liveness.py run it beside
the calls they time or check.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parent.parent


def flood(url: str, size: int) -> None:
    payload = "x" * size
    with connect(url, max_size=None, compression=None) as ws:

        def pump() -> None:
            with contextlib.suppress(ConnectionClosed, OSError):
                while True:
                    ws.send(payload)

        threading.Thread(target=pump, daemon=True).start()
        ws.recv()
        print("FLOODING", flush=True)
        with contextlib.suppress(ConnectionClosed):
            while True:
                ws.recv()


@contextlib.contextmanager
def flooding(url: str, size: int = 1024, cpu: int | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A flood process on `url` (pinned to `cpu` if given), once its flood is flowing; killed at the end."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.flood", url, "--size", str(size)],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
    )
    try:
        if cpu is not None:
            os.sched_setaffinity(proc.pid, {cpu})
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        if not ready or proc.stdout.readline().strip() != b"FLOODING":
            raise RuntimeError(f"the flood on {url} did not start")
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.flood")
    parser.add_argument("url")
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        flood(args.url, args.size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
