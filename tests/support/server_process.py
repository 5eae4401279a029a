"""A server in a process of its own, for tests where the server itself may freeze.

`python -m tests.support.server_process SERVER module:app --fd N [--ping-interval S --ping-timeout S]
[--ws-max-size BYTES] [--loop asyncio|uvloop]` serves
`app` on the listening socket N with SERVER (one of tests.support.servers.SERVERS), prints "READY" and runs
until SIGTERM. Logging goes to stderr as "LEVEL logger: message", so a test can check that nothing
was logged at ERROR. `server_process()` starts one; `ServerProcess.stop()` sends SIGTERM and tells
whether the process exited in time (otherwise it is killed with SIGKILL, and the test should fail).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from tests.support.servers import Running, hypercorn_config, listening_loopback

ROOT = Path(__file__).resolve().parents[2]
STOP_SECONDS = 15.0  # uvicorn's and hypercorn's graceful shutdown, with room for a loaded machine


class ServerProcess:
    def __init__(self, proc: subprocess.Popen[bytes], running: Running, stderr: Any) -> None:
        self.proc = proc
        self.running = running
        self._stderr = stderr

    def stop(self, timeout: float = STOP_SECONDS) -> bool:
        """SIGTERM; True if the server exited within `timeout`, else it is SIGKILLed and False."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            return False

    def stderr(self) -> str:
        self._stderr.seek(0)
        return str(self._stderr.read().decode(errors="replace"))

    def error_lines(self, *, ignore: tuple[str, ...] = ()) -> list[str]:
        """What the server logged at ERROR or above (uvicorn, hypercorn, asyncio, wsproxy alike), but
        for the loggers named in `ignore`. A traceback always follows such a line."""
        return [
            line
            for line in self.stderr().splitlines()
            if line.startswith(("ERROR ", "CRITICAL ")) and line.split()[1].rstrip(":") not in ignore
        ]


@contextlib.contextmanager
def server_process(server: str, app: str, *args: str) -> Iterator[ServerProcess]:
    """`app` ("module:attribute") served by `server` in a child process; killed at the end if still alive."""
    sock = listening_loopback()
    port = sock.getsockname()[1]
    with tempfile.TemporaryFile() as stderr:
        try:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.support.server_process",
                    server,
                    app,
                    "--fd",
                    str(sock.fileno()),
                    *args,
                ],
                pass_fds=[sock.fileno()],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
        finally:
            sock.close()
        process = ServerProcess(proc, Running("127.0.0.1", port), stderr)
        try:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            line = proc.stdout.readline() if ready else b""
            if line.strip() != b"READY":
                raise RuntimeError(f"{server} did not start: {process.stderr()[-2000:]}")
            yield process
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()


def _load(ref: str) -> Any:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


async def _serve(server: str, app: Any, sock: socket.socket, args: argparse.Namespace) -> None:
    ping_interval, ping_timeout = args.ping_interval, args.ping_timeout
    if server == "hypercorn":
        from hypercorn.asyncio import serve

        config = hypercorn_config(sock, websocket_ping_interval=ping_interval or None)
        if args.ws_max_size:
            config.websocket_max_message_size = args.ws_max_size
        print("READY", flush=True)
        await serve(app, config)  # installs its own SIGTERM handler
        return
    import uvicorn

    config = uvicorn.Config(
        app,
        ws=server,
        lifespan="off",
        log_config=None,
        ws_ping_interval=ping_interval or None,
        ws_ping_timeout=ping_timeout or None,
        ws_max_size=args.ws_max_size or 16 * 1024 * 1024,
    )
    print("READY", flush=True)
    await uvicorn.Server(config).serve(sockets=[sock])  # installs its own SIGTERM handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.server_process")
    parser.add_argument("server")
    parser.add_argument("app")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--ping-interval", type=float, default=0.0)
    parser.add_argument("--ping-timeout", type=float, default=0.0)
    parser.add_argument("--ws-max-size", type=int, default=0, help="the server's own message size limit")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    warnings.simplefilter("ignore", DeprecationWarning)  # uvicorn's legacy websockets implementation
    sock = socket.socket(fileno=args.fd)
    main = _serve(args.server, cast(Any, _load(args.app)), sock, args)
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(main)
    else:
        asyncio.run(main)
    return 0


if __name__ == "__main__":
    sys.exit(main())
