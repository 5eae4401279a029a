"""The `authenticate` hook against real uvicorn (websockets-sansio and wsproto): it runs after the
origin check and before accept, refuses with a status and a JSON body before any app code runs,
attaches an identity the app sees, and a hook that fails gives 500 and a log line, never a traceback."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.integration.test_security import logged, refusal
from tests.support.servers import Running, drain, serve_on
from wsproxy import HandshakeRejected, WebSocketProxyMiddleware
from wsproxy._auth import header_problem
from wsproxy._types import Message, Receive, Scope, Send

TOKENS = {"alice-token": "alice", "bob-token": "bob"}
APP_ORIGIN = "https://app.example"


@dataclass
class Calls:
    app: list[Scope] = field(default_factory=list)
    hook: list[Scope] = field(default_factory=list)


async def authenticate(scope: Scope) -> None:
    """A token check the way a JWT one would look: Authorization in, identity out, or a refusal."""
    headers = dict(scope["headers"])
    auth = headers.get(b"authorization", b"").decode()
    path = scope["path"]
    if path == "/raise":
        raise ValueError("the key store is down: secret-detail")
    if path == "/bad-status":
        raise HandshakeRejected(200, "fine")
    if path == "/bad-header":
        scope["headers"].append((b"x-user-id", b"alice\r\nx-admin: 1"))
        return
    if not auth.startswith("Bearer "):
        raise HandshakeRejected(401, "missing token")
    user = TOKENS.get(auth.removeprefix("Bearer "))
    if user is None:
        raise HandshakeRejected(401, "invalid token")
    if path == "/admin" and user != "alice":
        raise HandshakeRejected(403, "forbidden")
    scope["state"]["user"] = user
    scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"x-user-id"]
    scope["headers"].append((b"x-user-id", user.encode()))


def app_for(calls: Calls) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # hypercorn's lifespan
        calls.app.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        seen = {"user": scope["state"].get("user"), "x-user-id": dict(scope["headers"]).get(b"x-user-id")}
        line = json.dumps({k: v.decode() if isinstance(v, bytes) else v for k, v in seen.items()})
        await send({"type": "http.response.body", "body": line.encode() + b"\n", "more_body": False})

    return app


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


async def test_without_the_denial_extension_a_refusal_still_happens_before_accept() -> None:
    """Legacy-style servers (no websocket.http.response): closing before accept, the server answers 403."""
    calls = Calls()
    proxy = WebSocketProxyMiddleware(app_for(calls), authenticate=authenticate)
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/call", "query_string": b"", "headers": [], "extensions": {}}
    await proxy(scope, receive, send)
    assert [message["type"] for message in sent] == ["websocket.close"]
    assert calls.app == []


def test_a_hook_that_is_not_callable_is_refused_at_construction() -> None:
    with pytest.raises(TypeError, match="authenticate"):
        WebSocketProxyMiddleware(app_for(Calls()), authenticate="module:attr")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ([(b"x-user-id", b"alice")], None),
        ([], None),
        ((), "must be a list"),
        ([(b"x-user-id", "alice")], "(bytes, bytes)"),
        ([(b"x user", b"alice")], "invalid header name"),
        ([(b"x-user\n", b"alice")], "invalid header name"),
        ([(b"x-user-id", b"a\r\nx-admin: 1")], "line break"),
        ([(b"x-user-id", b"a\x00")], "line break or NUL"),
    ],
)
def test_header_problem_table(headers: object, problem: str | None) -> None:
    found = header_problem(headers)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found
