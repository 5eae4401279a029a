"""`python -m example_service` and `make demo` run as documented: a real process, a real port."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import httpx
from websockets.sync.client import connect

from example_service import _protoc
from tests.support.servers import bind_loopback


def _demo(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "example_service", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=_protoc.PACKAGE_ROOT,
    )


def test_demo_starts_with_no_configuration_and_prints_the_url() -> None:
    with bind_loopback() as probe:
        port = probe.getsockname()[1]
    process = _demo("--port", str(port))
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line == f"wsproxy demo: open http://127.0.0.1:{port}/"
        assert process.stdout.readline().startswith("wsproxy demo: event loop ")
        grpc_line = process.stdout.readline().strip()
        assert re.fullmatch(
            r"wsproxy demo: gRPC on 127\.0\.0\.1:\d+, gateway binding: inprocess", grpc_line
        ), grpc_line
        echo = httpx.post(f"http://127.0.0.1:{port}/v1/echo", json={"message": "up"}, timeout=10)
        assert echo.json() == {"message": "up"}
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 200
        with connect(f"ws://127.0.0.1:{port}/v1/echo?method=POST", open_timeout=10) as ws:
            ws.send('{"message": "hi"}')
            ws.send("")
            assert ws.recv(timeout=10) == '{"message":"hi"}'
        # Each call's access line, as it ends: how it ended and what went each way.
        access = process.stdout.readline().strip()
        assert re.fullmatch(
            r'127\.0\.0\.1:\d+ - "WebSocket POST /v1/echo" 1000 in 1 msg 17 B, out 1 msg 16 B, \d+\.\d{3} s',
            access,
        ), access
    finally:
        process.terminate()
        process.communicate(timeout=10)


def test_demo_port_taken_is_a_one_line_error() -> None:
    with bind_loopback() as taken:
        taken.listen()
        port = taken.getsockname()[1]
        process = _demo("--port", str(port))
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 1
    assert stderr.strip().splitlines() == [f"wsproxy demo: port {port} on 127.0.0.1 is taken; try --port"]


def test_make_demo_takes_a_port() -> None:
    """`make demo PORT=8011`, as docs/example.md and README.md say (make -n: print, don't run)."""
    # As typed in a shell: under `make test` (CI) the inherited MAKELEVEL makes make print
    # "make[1]: Leaving directory" after the command.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    with_port = subprocess.run(
        ["make", "-n", "demo", "PORT=8011"],
        cwd=_protoc.PACKAGE_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    without = subprocess.run(
        ["make", "-n", "demo"], cwd=_protoc.PACKAGE_ROOT, capture_output=True, text=True, timeout=60, env=env
    )
    assert with_port.stdout.splitlines()[-1].endswith("-m example_service --port 8011")
    assert without.stdout.splitlines()[-1].rstrip().endswith("-m example_service")
