"""What a real `wsproxy` process logs at each --log-level, and where a secret does and does not appear.

Each run makes the same calls with secrets in every place a client puts them: a plain HTTP request
and a WebSocket with `?token=` in the query, a `Bearer` subprotocol carrying the token, and a
payload. docs/operations.md ("What is logged at each level") says what each level shows; these
assertions are that list.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.support.servers import bind_loopback, drain
from tests.support.upstream_apps import ROOT

QUERY_SECRET = "q-s3cret-in-the-query"
TOKEN = "t0ken-in-the-subprotocol"
PAYLOAD = "p4yload-in-a-message"
LEVELS = ["critical", "error", "warning", "info", "debug", "trace"]


async def _calls(port: int) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(600):  # the first request also waits for the start-up
            try:
                response = await client.get(f"http://127.0.0.1:{port}/stream?count=1&token={QUERY_SECRET}")
                break
            except httpx.ConnectError:
                await asyncio.sleep(0.05)
        assert response.status_code == 200
    url = f"ws://127.0.0.1:{port}/bidi?method=POST&token={QUERY_SECRET}"
    async with connect(url, subprotocols=["Bearer", TOKEN], open_timeout=30) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"secret": PAYLOAD}))
        assert json.loads(await ws.recv()) == {"echo": {"secret": PAYLOAD}}
        await ws.send("")
        assert (await drain(ws))[1] == 1000


def _run_at(level: str) -> list[str]:
    """The command's output lines (stdout and stderr) for the calls above, at `level`."""
    sock = bind_loopback()
    port = sock.getsockname()[1]
    argv = [sys.executable, "-m", "wsproxy", "--app", "tests.support.upstream_apps:app"]
    proc = subprocess.Popen(
        [*argv, "--log-level", level, "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    sock.close()  # picked a free port; the command binds it itself, so it prints its address
    try:
        asyncio.run(_calls(port))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            output, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate(timeout=15)
    return output.splitlines()


@pytest.fixture(scope="module")
def logs() -> dict[str, list[str]]:
    return {level: _run_at(level) for level in LEVELS}


@pytest.mark.parametrize("level", ["critical", "error", "warning", "info", "debug"])
def test_no_secret_below_trace(logs: dict[str, list[str]], level: str) -> None:
    text = "\n".join(logs[level])
    for secret in (QUERY_SECRET, TOKEN, PAYLOAD):
        assert secret not in text, f"{secret} logged at {level}:\n{text}"


def test_trace_logs_the_token_and_the_query_as_documented(logs: dict[str, list[str]]) -> None:
    """docs/operations.md says trace shows them: uvicorn's ASGI scopes and the websockets library's lines."""
    text = "\n".join(logs["trace"])
    assert TOKEN in text
    assert QUERY_SECRET in text
    assert PAYLOAD in text
    assert any(line.startswith("TRACE:") and "ASGI" in line for line in logs["trace"])
    assert any("< TEXT" in line for line in logs["trace"])  # the websockets library's frame lines


@pytest.mark.parametrize("level", ["critical", "error", "warning"])
def test_nothing_at_info_shows_above_it(logs: dict[str, list[str]], level: str) -> None:
    assert [line for line in logs[level] if line.startswith(("INFO:", "DEBUG:", "TRACE:"))] == []


@pytest.mark.parametrize("level", ["info", "debug", "trace"])
def test_info_shows_start_handshake_and_access_lines_without_the_query(
    logs: dict[str, list[str]], level: str
) -> None:
    lines = logs[level]
    assert any(line.startswith("INFO:     Uvicorn running on") for line in lines)
    assert any(line.endswith('"GET /stream HTTP/1.1" 200 OK') for line in lines)  # uvicorn.access
    assert any(line.endswith('"WebSocket /bidi" [accepted]') for line in lines)  # uvicorn.error
    assert any('"WebSocket POST /bidi" 1000 in ' in line for line in lines)  # wsproxy.access


def test_info_shows_no_debug_lines(logs: dict[str, list[str]]) -> None:
    assert [line for line in logs["info"] if line.startswith(("DEBUG:", "TRACE:"))] == []


def test_debug_adds_wsproxys_stream_summary_and_not_the_websockets_library(
    logs: dict[str, list[str]],
) -> None:
    debug = [line for line in logs["debug"] if line.startswith("DEBUG:")]
    assert any("POST /bidi closed 1000" in line for line in debug)
    assert not [line for line in debug if line.startswith(("DEBUG:    < ", "DEBUG:    > ", "DEBUG:    = "))]
    assert not [line for line in logs["debug"] if line.startswith("TRACE:")]
