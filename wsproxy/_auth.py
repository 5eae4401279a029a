"""Authentication before the upgrade: an async hook that may refuse a handshake or label the request.

Theory of operation. The hook runs once per WebSocket handshake, after the origin check and the
handshake mapping (so it sees the HTTP request the app would see, with the Bearer token already
turned into an `Authorization` header) and before `websocket.accept`: a refusal costs no app code
and answers with an HTTP status like every other refusal. The hook refuses by raising
`HandshakeRejected(status, message)`; it attaches what it learned by editing the request scope it
was given (`scope["state"]`, `scope["headers"]`). Anything else it raises is a bug in the hook:
the client gets a plain 500, the server log gets the traceback. Headers it added are checked, so a
value with a line break cannot reach an upstream.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from wsproxy._options import TOKEN_RE
from wsproxy._types import Scope
from wsproxy.errors import HandshakeRejected

logger = logging.getLogger("wsproxy")

Authenticate = Callable[[Scope], Awaitable[None]]

# What a refusal's message may be: it goes into the JSON body of the denial response.
MAX_MESSAGE_LENGTH = 200


async def authenticate_request(hook: Authenticate, request_scope: Scope) -> None:
    """Run `hook` on the request about to be made. Raises HandshakeRejected to refuse it."""
    if not isinstance(request_scope.get("state"), dict):
        request_scope["state"] = {}
    else:  # the server's copy of the lifespan state is per connection, but the hook must not share it
        request_scope["state"] = dict(request_scope["state"])
    path = request_scope.get("path", "")
    try:
        await hook(request_scope)
    except HandshakeRejected as exc:
        raise _checked_refusal(exc, path) from None
    except Exception as exc:
        logger.error("authenticate hook raised on %s", path, exc_info=exc)
        raise HandshakeRejected(500, "internal error") from exc
    problem = header_problem(request_scope.get("headers"))
    if problem is not None:
        logger.error("authenticate hook left an invalid header on %s: %s", path, problem)
        raise HandshakeRejected(500, "internal error")


def _checked_refusal(exc: HandshakeRejected, path: str) -> HandshakeRejected:
    status = exc.status if isinstance(exc.status, int) and 400 <= exc.status <= 599 else None
    if status is None:
        logger.error(
            "authenticate hook refused %s with status %r, not 4xx/5xx: answering 500", path, exc.status
        )
        return HandshakeRejected(500, "internal error")
    return HandshakeRejected(status, str(exc.message)[:MAX_MESSAGE_LENGTH])


def header_problem(headers: object) -> str | None:
    """Why `headers` is not a valid ASGI header list with safe values, or None if it is."""
    if not isinstance(headers, list):
        return f"scope['headers'] must be a list, got {type(headers).__name__}"
    for item in headers:
        if not (isinstance(item, tuple) and len(item) == 2 and all(isinstance(part, bytes) for part in item)):
            return f"each header must be a (bytes, bytes) tuple, got {item!r:.80}"
        name, value = item
        if not TOKEN_RE.fullmatch(name.decode("latin-1")):
            return f"invalid header name {name!r:.80}"
        if b"\r" in value or b"\n" in value or b"\0" in value:
            return f"header {name.decode('latin-1')} has a line break or NUL in its value"
    return None
