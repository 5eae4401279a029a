"""An `authenticate` hook shaped like a JWT check, and an app that shows what it attached: shared by the auth
tests of both tiers and the ops server's."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from wsproxy import HandshakeRejected
from wsproxy._types import Receive, Scope, Send

TOKENS = {"alice-token": "alice", "bob-token": "bob"}


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
