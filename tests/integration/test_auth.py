"""The `authenticate` hook against real uvicorn (websockets-sansio and wsproto): it runs after the
origin check and before accept, refuses with a status and a JSON body before any app code runs,
attaches an identity the app sees, and a hook that fails gives 500 and a log line, never a traceback."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from websockets.asyncio.client import connect

from tests.support.auth_apps import Calls, app_for, authenticate
from tests.support.logs import logged
from tests.support.servers import Running, drain, refusal, serve_on
from wsproxy import WebSocketProxyMiddleware
from wsproxy._types import Scope

APP_ORIGIN = "https://app.example"


@dataclass
class Server:
    running: Running
    calls: Calls


@pytest.fixture
async def server(server_impl: str) -> AsyncIterator[Server]:
    calls = Calls()

    async def hook(scope: Scope) -> None:
        calls.hook.append(scope)
        await authenticate(scope)

    proxy = WebSocketProxyMiddleware(
        app_for(calls),
        authenticate=hook,
        allowed_origins=[APP_ORIGIN],
        forwarded_headers=["x-user-id"],
    )
    async with serve_on(server_impl, proxy) as running:
        yield Server(running, calls)


@pytest.mark.parametrize(
    ("path", "subprotocols", "status", "message"),
    [
        ("/call", None, 401, "missing token"),
        ("/call", ["Bearer", "mallory-token"], 401, "invalid token"),
        ("/admin", ["Bearer", "bob-token"], 403, "forbidden"),
    ],
)
async def test_a_refusal_answers_its_status_and_json_before_any_app_code(
    server: Server, path: str, subprotocols: list[str] | None, status: int, message: str
) -> None:
    answer = await refusal(server.running.ws + path, subprotocols=subprotocols)
    assert answer[:2] == (status, {"error": message, "status": status})
    assert len(server.calls.hook) == 1
    assert server.calls.app == []


async def test_an_accepted_call_sees_the_identity_in_state_and_headers(server: Server) -> None:
    # A client's own x-user-id (forwarded by the allowlist here) is replaced by the hook's.
    headers = {"x-user-id": "mallory"}
    url = server.running.ws + "/call"
    async with connect(url, subprotocols=["Bearer", "bob-token"], additional_headers=headers) as ws:  # type: ignore[list-item]
        frames, code, _ = await drain(ws)
    assert code == 1000
    assert json.loads(frames[0]) == {"user": "bob", "x-user-id": "bob"}
    assert len(server.calls.app) == 1


async def test_the_token_cookie_reaches_the_hook_as_authorization(server: Server) -> None:
    url = server.running.ws + "/admin"
    async with connect(url, additional_headers={"cookie": "token=alice-token"}) as ws:
        frames, code, _ = await drain(ws)
    assert (code, json.loads(frames[0])["user"]) == (1000, "alice")


async def test_the_origin_check_runs_before_the_hook(server: Server) -> None:
    answer = await refusal(
        server.running.ws + "/call", subprotocols=["Bearer", "alice-token"], origin="https://evil.example"
    )
    assert answer[0] == 403
    assert (server.calls.hook, server.calls.app) == ([], [])


@pytest.mark.parametrize(
    ("path", "logged_text"),
    [
        ("/raise", "authenticate hook raised on /raise"),
        ("/bad-status", "refused /bad-status with status 200"),
        ("/bad-header", "left an invalid header on /bad-header"),
    ],
)
async def test_a_failing_hook_gives_500_and_a_log_line_never_a_traceback_to_the_client(
    server: Server, path: str, logged_text: str
) -> None:
    with logged({"wsproxy": logging.INFO}) as log:
        status, body, headers = await refusal(
            server.running.ws + path, subprotocols=["Bearer", "alice-token"]
        )
    assert (status, body) == (500, {"error": "internal error", "status": 500})
    assert "secret-detail" not in headers
    assert "Traceback" not in headers
    assert [line for line in log.lines if logged_text in line] != [], log.lines
    assert server.calls.app == []
