"""The Python client against the real demo: gRPC EchoService behind the gateway and wsproxy.

Run with the middleware in this process, and with the demo's gateway in its own process behind
the `wsproxy --upstream` command, so the remote-upstream mode passes the same WebSocket checks;
each with both gateway bindings (servicer in-process, or over a gRPC channel).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import httpx
import pytest

from example_service.app import demo
from tests.support.servers import bind_loopback, serve
from tests.support.upstream_apps import ROOT, spawn_listening
from wsproxy.client import HTTPStatusError, StreamError, bidi, client_stream, connect, server_stream, unary


@contextlib.asynccontextmanager
async def in_process(binding: Any) -> AsyncIterator[str]:
    async with demo(binding=binding) as running, serve(cast(Any, running.app)) as server:
        yield server.ws


@contextlib.contextmanager
def demo_process(binding: str) -> Iterator[str]:
    """`python -m example_service` on a free port: the gateway as a separate, remote-like upstream."""
    sock = bind_loopback()
    port = sock.getsockname()[1]
    sock.close()  # the demo binds the port itself; the window for another taker is tiny
    proc = subprocess.Popen(
        [sys.executable, "-m", "example_service", "--port", str(port), "--binding", binding],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def wait_until_serving(url: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(url + "/")).status_code == 200:
                    return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not start serving")


@contextlib.asynccontextmanager
async def through_upstream_command(binding: str) -> AsyncIterator[str]:
    with demo_process(binding) as gateway_url:
        await wait_until_serving(gateway_url)
        argv = [sys.executable, "-m", "wsproxy", "--upstream", gateway_url, "--log-level", "warning"]
        with spawn_listening(argv) as proxy:
            await wait_until_serving(proxy.http)
            yield proxy.ws


@pytest.fixture(params=["in-process", "wsproxy --upstream"])
async def base(request: pytest.FixtureRequest, binding: str) -> AsyncIterator[str]:
    running = in_process(binding) if request.param == "in-process" else through_upstream_command(binding)
    async with running as url:
        yield url


async def test_four_call_kinds_and_the_bearer_identity(base: str) -> None:
    assert await unary(f"{base}/v1/echo", {"message": "hi"}, method="POST") == {"message": "hi"}

    ticks = [tick async for tick in server_stream(f"{base}/v1/ticker?count=3&interval_ms=0")]
    assert [tick.get("seq", 0) for tick in ticks] == [0, 1, 2]
    assert all("time" in tick for tick in ticks)

    values = ({"value": n} for n in (5, 6, 7))
    assert await client_stream(f"{base}/v1/sum", values, method="POST") == {"total": "18", "count": 3}

    async with bidi(f"{base}/v1/chat", method="POST") as call:
        await call.send({"text": "ping"})
        assert await asyncio.wait_for(anext(call), 10) == {"text": "ping", "seq": 0}  # before any half-close
        await call.send({"text": "pong"})
        assert await asyncio.wait_for(anext(call), 10) == {"text": "pong", "seq": 1}
        await call.close_send()
        assert [reply async for reply in call] == []
        assert call.close_code == 1000

    async with connect(f"{base}/v1/whoami", token="demo-token") as call:
        await call.close_send()
        assert await call.result() == {"authorization": "Bearer demo-token"}
        assert call.subprotocol == "wsproxy.status.v1"  # offered after the Bearer pair, and selected


@pytest.mark.parametrize(
    ("path", "message", "expected"),
    [
        ("/v1/echo?method=POST", {"message": ""}, "HTTP 400 INVALID_ARGUMENT message must not be empty"),
        ("/v1/ticker?count=0", None, "HTTP 400 INVALID_ARGUMENT count must be 1..1000"),
        ("/v1/nowhere", None, "HTTP 404 NOT_FOUND Not Found"),
    ],
)
async def test_error_statuses_with_their_details(base: str, path: str, message: Any, expected: str) -> None:
    with pytest.raises(HTTPStatusError) as caught:
        await unary(f"{base}{path}", message)
    assert str(caught.value) == expected
    if isinstance(caught.value, StreamError):  # a stream's {"error": ...} line, raised before the close
        assert path.startswith("/v1/ticker")
    else:
        assert caught.value.code == 4000 + caught.value.status


async def test_the_python_block_of_clients_md_runs_against_the_demo() -> None:
    """docs/clients.md's first Python block, as a reader would save and run it, against the demo."""
    text = (ROOT / "docs" / "clients.md").read_text()
    section = text[text.index("## Python\n") :]
    block = section[section.index("```python\n") + len("```python\n") : section.index("\n```\n")]
    async with in_process("inprocess") as url:
        script = block.replace("ws://localhost:8000", url)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert (proc.returncode, err.decode()) == (0, "")
    lines = out.decode().splitlines()
    assert lines[0] == "{'message': 'hi'}"
    assert lines[1:6] == ["0", "1", "2", "3", "4"]
    assert lines[6] == "{'total': '45', 'count': 10}"
    assert lines[7].startswith("{'text': 'hello', 'seq': 0")
    assert lines[-1] == "{'authorization': 'Bearer my-token'}"
