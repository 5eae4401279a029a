"""The fast event loop by default: the `wsproxy` command and the demo run on uvloop where it is
installed (a dependency) and on asyncio when asked, each proven on a real running server."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
from websockets.asyncio.client import connect

from tests.support.servers import bind_loopback, drain
from tests.support.upstream_apps import ROOT, spawn_listening
from wsproxy._types import Receive, Scope, Send

WSPROXY = [sys.executable, "-m", "wsproxy", "--log-level", "warning"]


async def loop_app(scope: Scope, receive: Receive, send: Send) -> None:
    """One NDJSON line naming the event loop that runs this app."""
    if scope["type"] != "http":
        return
    name = type(asyncio.get_running_loop()).__module__.split(".")[0]
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": json.dumps({"loop": name}).encode() + b"\n"})


async def loop_of_the_command(*args: str) -> str:
    """The loop named by an app served by the real `wsproxy` command, asked over a proxied WebSocket."""
    with spawn_listening([*WSPROXY, "--app", "tests.integration.test_event_loop:loop_app", *args]) as proxy:
        async with connect(proxy.ws + "/loop", open_timeout=30) as ws:
            frames, code, _ = await drain(ws)
    assert code == 1000
    (frame,) = frames
    assert isinstance(frame, str)
    loop: str = json.loads(frame)["loop"]
    return loop


async def test_the_command_runs_on_uvloop_by_default() -> None:
    pytest.importorskip("uvloop")
    assert await loop_of_the_command() == "uvloop"


async def test_the_command_runs_on_asyncio_when_asked() -> None:
    assert await loop_of_the_command("--loop", "asyncio") == "asyncio"


@pytest.mark.parametrize(("args", "expected"), [((), "uvloop"), (("--loop", "asyncio"), "asyncio")])
def test_the_demo_runs_on_uvloop_by_default_and_on_asyncio_when_asked(
    args: tuple[str, ...], expected: str
) -> None:
    if expected == "uvloop":
        pytest.importorskip("uvloop")
    with bind_loopback() as probe:
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "example_service", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("wsproxy demo: open http://")
        assert process.stdout.readline().strip() == f"wsproxy demo: event loop {expected}, stop with Ctrl-C"
    finally:
        process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            pytest.fail("the demo ignored SIGTERM")
