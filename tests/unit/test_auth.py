"""The `authenticate` hook without a server: the check of the headers it sets, a hook that is not callable,
and a refusal on a server without the denial extension (driven in-process)."""

from __future__ import annotations

import pytest

from tests.support.auth_apps import Calls, app_for, authenticate
from wsproxy import WebSocketProxyMiddleware
from wsproxy._auth import header_problem
from wsproxy._types import Message


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
