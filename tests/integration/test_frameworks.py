"""The framework matrix: FastAPI, Starlette, Litestar, Django and Quart, wrapped in-process and behind
`wsproxy --upstream`, each row the same client dialogue (docs/frameworks.md has the table).

Apps: tests/support/frameworks/ (one module per framework, each written as its own docs write a
streaming endpoint). In-process: the module's `proxied` app on real uvicorn in a thread. Upstream: the
bare `app` on uvicorn in a process of its own, and a real `wsproxy --upstream` process in front of it.
Each framework's servers start once per module (the `framework` fixture is module-scoped).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from tests.support.frameworks import FRAMEWORKS
from tests.support.servers import drain, serve, serve_in_thread
from tests.support.upstream_apps import ROOT, spawn_listening

WSPROXY = [sys.executable, "-m", "wsproxy", "--log-level", "warning", "--no-access-log"]
UVICORN = [sys.executable, "-m", "uvicorn", "--log-level", "warning", "--no-access-log"]
MODES = ("in-process", "upstream")

# Django's ASGIHandler.handle closes the request's body file only when the response did not raise
# (django/core/handlers/asgi.py): a view that raises mid-stream leaks it, and its collection warns.
# Django's own leak, not the proxy's: collected where it happens (in-process), and not an error.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <function SpooledTemporaryFile.__del__:pytest.PytestUnraisableExceptionWarning"
)

# A GET call has no body in either mode (docs/protocol.md): Django, which reads the whole body before
# it calls a view, answers a GET with nothing sent. A GET row that hangs fails within this instead.
FAIL_FAST = 3.0
NO_REPLY = 1.5  # seconds a limited bidi row waits to show that no reply came
LOST_WITHIN = 20  # lines a limited bidi row sends, one reply awaited each, until one goes unanswered


def _module(framework: str) -> Any:
    return importlib.import_module(f"tests.support.frameworks.{framework}_app")


@pytest.fixture(scope="module", params=FRAMEWORKS)
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def servers(framework: str) -> Iterator[dict[str, str]]:
    """ws:// base URLs for each mode: the wrapped app here, and `wsproxy --upstream` before the bare app."""
    module = f"tests.support.frameworks.{framework}_app"
    with (
        serve_in_thread(_module(framework).proxied, lifespan="auto") as inprocess,
        spawn_listening([*UVICORN, f"{module}:app"], graceful_stop=False) as upstream,
    ):
        httpx.get(upstream.http + "/stream", timeout=30).raise_for_status()  # started
        with spawn_listening([*WSPROXY, "--upstream", upstream.http]) as proxy:
            yield {"in-process": inprocess.ws, "upstream": proxy.ws}


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest, framework: str) -> str:
    return str(request.param)


async def _call(
    url: str, messages: tuple[str, ...] = (), subprotocols: list[Subprotocol] | None = None
) -> tuple[list[Any], int | None, str | None]:
    """Send `messages`, then every frame until the close (each JSON if it parses), code and reason."""
    async with asyncio.timeout(FAIL_FAST * 3), connect(url, subprotocols=subprotocols) as ws:
        for message in messages:
            await ws.send(message)
        frames, code, reason = await drain(ws)
    return [_json_or_text(frame) for frame in frames], code, reason


def _json_or_text(frame: str | bytes) -> Any:
    try:
        return json.loads(frame)
    except ValueError:
        return frame


async def _get(base: str, path: str, **kw: Any) -> Any:
    """A GET call with nothing sent; one that hangs fails within FAIL_FAST seconds."""
    async with asyncio.timeout(FAIL_FAST):
        return await _call(base + path, **kw)


# The rows.


async def test_get_server_stream_with_nothing_sent(
    framework: str, mode: str, servers: dict[str, str]
) -> None:
    frames, code, _ = await _get(servers[mode], "/stream?count=3")
    assert (frames, code) == ([{"n": 0}, {"n": 1}, {"n": 2}], 1000)


async def test_client_stream_ended_by_the_half_close(
    framework: str, mode: str, servers: dict[str, str]
) -> None:
    messages = ('{"n": 1}', '{"n": 2}', '{"n": 3}', "")
    frames, code, _ = await _call(servers[mode] + "/sum?method=POST", messages)
    assert (frames, code) == ([{"sum": 6}], 1000)


async def _interactive(ws: ClientConnection, count: int) -> list[Any]:
    """Each reply before the next send."""
    replies = []
    for i in range(count):
        await ws.send(json.dumps({"i": i}))
        replies.append(json.loads(await ws.recv()))
    return replies


async def _first_unanswered(ws: ClientConnection, tries: int) -> int | None:
    """Send line after line, each reply awaited; the first line with no reply within NO_REPLY."""
    for i in range(tries):
        await ws.send(json.dumps({"i": i}))
        try:
            reply = await asyncio.wait_for(ws.recv(), NO_REPLY)
        except TimeoutError:
            return i
        assert json.loads(reply) == {"echo": {"i": i}}
    return None


def _bidi_works(framework: str, mode: str) -> bool:
    return framework == "quart" or (framework in ("fastapi", "starlette") and mode == "in-process")


async def test_bidi(framework: str, mode: str, servers: dict[str, str]) -> None:
    """Interactive where the framework can do it; elsewhere the exact outcome docs/frameworks.md explains."""
    async with asyncio.timeout(30), connect(servers[mode] + "/bidi?method=POST") as ws:
        if _bidi_works(framework, mode):
            assert await _interactive(ws, 3) == [{"echo": {"i": i}} for i in range(3)]
            await ws.send("")
            assert await drain(ws) == ([], 1000, "")
            return
        unanswered = await _first_unanswered(ws, LOST_WITHIN)
        if framework != "django":
            # Starlette's (below spec 2.4) and Litestar's disconnect listeners race the view's generator
            # for each body chunk; a chunk the listener wins is dropped. Which side wins varies from run
            # to run, so this run may lose a line or not; what always holds: every reply that comes is
            # the right one, in order (checked above), and a lost line's reply never comes.
            if unanswered is not None:
                await ws.send("")
                with contextlib.suppress(TimeoutError, ConnectionClosed):
                    late = await asyncio.wait_for(ws.recv(), NO_REPLY)
                    assert json.loads(late) != {"echo": {"i": unanswered}}
            return
        # Django has not called the view yet (it reads the whole body first): no reply to the first line.
        assert unanswered == 0
        await ws.send("")
        # Django: every reply at once, after the half-close.
        frames, code, _ = await drain(ws)
        assert ([json.loads(frame) for frame in frames], code) == ([{"echo": {"i": 0}}], 1000)


@pytest.mark.parametrize("framework", ["fastapi", "starlette"], indirect=True)
async def test_bidi_with_the_duplex_recipe(framework: str, mode: str, servers: dict[str, str]) -> None:
    """docs/frameworks.md's recipe: a StreamingResponse without Starlette's disconnect listener is
    interactive behind `wsproxy --upstream` (uvicorn says ASGI spec 2.3) as in-process."""
    async with asyncio.timeout(FAIL_FAST * 3), connect(servers[mode] + "/bidi-duplex?method=POST") as ws:
        assert await _interactive(ws, 3) == [{"echo": {"i": i}} for i in range(3)]
        await ws.send("")
        assert await drain(ws) == ([], 1000, "")


async def test_bearer_subprotocol_read_through_the_frameworks_header_access(
    framework: str, mode: str, servers: dict[str, str]
) -> None:
    subprotocols = [Subprotocol("Bearer"), Subprotocol("t0k")]
    frames, code, _ = await _get(servers[mode], "/whoami", subprotocols=subprotocols)
    assert (frames, code) == ([{"authorization": "Bearer t0k"}], 1000)


# Each framework's own error bodies: the first line the client reads.
UNAUTHORIZED = {
    "fastapi": {"detail": "no token"},
    "starlette": "no token",
    "litestar": {"status_code": 401, "detail": "no token"},
    "django": {"error": "no token"},
    "quart": "<!doctype html>",
}
NOT_FOUND = {
    "fastapi": {"detail": "Not Found"},
    "starlette": "Not Found",
    "litestar": {"status_code": 404, "detail": "Not Found"},
    "django": "<!doctype html>",
    "quart": "<!doctype html>",
}


async def test_the_frameworks_own_401_arrives_as_4401_after_its_body(
    framework: str, mode: str, servers: dict[str, str]
) -> None:
    frames, code, reason = await _get(servers[mode], "/whoami")
    assert (frames[0], code, reason) == (UNAUTHORIZED[framework], 4401, "Unauthorized")


async def test_the_frameworks_own_404_arrives_as_4404_after_its_body(
    framework: str, mode: str, servers: dict[str, str]
) -> None:
    frames, code, reason = await _get(servers[mode], "/nowhere")
    assert (frames[0], code, reason) == (NOT_FOUND[framework], 4404, "Not Found")


async def test_an_exception_in_a_streaming_view_closes_and_the_server_still_serves(
    framework: str, mode: str, servers: dict[str, str]
) -> None:
    frames, code, reason = await _get(servers[mode], "/boom-midway")
    # In-process the exception reaches the middleware: 1011. Upstream the app's server cuts the
    # response off, and the proxy names that: 1014 bad gateway.
    expected = (1011, "internal error") if mode == "in-process" else (1014, "bad gateway")
    assert (frames, code, reason) == ([{"n": 0}], *expected)
    assert await _call(servers[mode] + "/stream?count=1") == ([{"n": 0}], 1000, "")
    gc.collect()  # Django's leaked body file (above), collected while this module's filter holds


async def test_an_exception_before_the_view_answers(
    framework: str, mode: str, servers: dict[str, str]
) -> None:
    frames, code, reason = await _get(servers[mode], "/boom")
    if framework in ("fastapi", "starlette") and mode == "in-process":
        # Starlette's ServerErrorMiddleware sends its 500, then re-raises: the exception wins.
        assert (frames, code, reason) == ([], 1011, "internal error")
    else:
        # The framework answers its own 500 page: its lines, then 4500.
        assert frames, "the framework's error body"
        assert (code, reason) == (4500, "Internal Server Error")
    assert await _call(servers[mode] + "/stream?count=1") == ([{"n": 0}], 1000, "")


# The app keeps its own WebSocket routes: passthrough_paths.


async def test_a_fastapi_native_websocket_route_beside_proxied_streaming_routes() -> None:
    from tests.support.frameworks.fastapi_app import proxied  # passthrough_paths=["/ws/"]

    async with serve(proxied) as running:
        async with connect(running.ws + "/ws/native") as native:
            await native.send("hello")
            assert await native.recv() == "native: hello"
            async with connect(running.ws + "/stream?count=2") as ws:  # proxied while the native one is open
                assert await drain(ws) == (['{"n": 0}', '{"n": 1}'], 1000, "")
            await native.send("again")
            assert await native.recv() == "native: again"
        # Under the prefix, even an unknown route is FastAPI's: it refuses the handshake (403), where
        # the middleware would have accepted and closed 4404.
        with pytest.raises(InvalidStatus) as refused:
            await connect(running.ws + "/ws/nowhere")
        assert refused.value.response.status_code == 403


def test_the_command_flag_leaves_the_path_to_the_app() -> None:
    argv = [*WSPROXY, "--app", "tests.support.frameworks.fastapi_app:app"]
    with spawn_listening([*argv, "--passthrough-path", "/ws/"]) as proxy:
        assert asyncio.run(_native_then_proxied(proxy.ws)) == ("native: hi", ['{"n": 0}'], 1000)
    with spawn_listening(argv) as proxy:  # without it, the middleware takes the upgrade
        frames, code, _ = asyncio.run(_call(proxy.ws + "/ws/native"))
        assert (frames, code) == ([{"detail": "Not Found"}], 4404)


async def _native_then_proxied(base: str) -> tuple[str | bytes, list[str | bytes], int | None]:
    async with connect(base + "/ws/native") as native:
        await native.send("hi")
        reply = await native.recv()
    frames, code, _ = await drain(await connect(base + "/stream?count=1"))
    return reply, frames, code


def test_the_command_refuses_the_flag_with_upstream() -> None:
    argv = [*WSPROXY, "--upstream", "http://127.0.0.1:1", "--passthrough-path", "/ws/"]
    done = subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "wsproxy: error: --passthrough-path leaves upgrades to an --app's own WebSocket routes; "
        "not with --upstream (see wsproxy --help)"
    ]
