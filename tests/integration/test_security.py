"""Security guarantees against real uvicorn: header injection refused, the Bearer token kept out of
logs, close reasons and response headers, and cross-site WebSocket hijacking refused by Origin."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.support.logs import TextLog, logged
from tests.support.servers import Running, drain, eventually, refusal, serve
from wsproxy import WebSocketProxyMiddleware
from wsproxy._types import Receive, Scope, Send

SECRET = "s3cr3t-T0KEN.for_tests~"
APP_ORIGIN = "https://app.example"


@dataclass
class Seen:
    scopes: list[Scope] = field(default_factory=list)
    mutated: list[Scope] = field(default_factory=list)


def app_for(seen: Seen) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.scopes.append(scope)
        path = scope["path"]
        if path == "/raise":
            raise RuntimeError("the app failed")
        if path == "/hang":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await asyncio.Event().wait()
        status = 404 if path == "/missing" else 200
        await send({"type": "http.response.start", "status": status, "headers": [(b"x-app", b"1")]})
        line = b"x" * 2000 if path == "/big" else b'{"ok": true}'
        while True:
            message = await receive()
            if message["type"] == "http.disconnect" or not message.get("more_body", False):
                break
        await send({"type": "http.response.body", "body": line + b"\n", "more_body": False})

    return app


# wsproxy's own log at every level; the server's at the level a deployment runs (uvicorn's debug
# and trace levels print handshake headers, token included: docs/security.md).
LOG_LEVELS = {
    "wsproxy": logging.DEBUG,
    "uvicorn": logging.INFO,
    "uvicorn.error": logging.INFO,
    "uvicorn.access": logging.INFO,
}


@dataclass
class Guarded:
    running: Running
    seen: Seen
    log: TextLog
    proxy: WebSocketProxyMiddleware


@pytest.fixture
async def guarded(ws_impl: str) -> AsyncIterator[Guarded]:
    seen = Seen()

    def mutator(ws_scope: Scope, http_scope: Scope) -> Scope:
        seen.mutated.append(http_scope)
        return http_scope

    proxy = WebSocketProxyMiddleware(
        app_for(seen),
        allowed_origins=[APP_ORIGIN],
        request_mutator=mutator,
        max_message_size=1000,
        max_line_size=1000,
        idle_timeout=2.0,
    )
    async with serve(proxy, ws=ws_impl, log_level="info") as running:
        # uvicorn configures its loggers when it starts: listen after that.
        with logged(LOG_LEVELS) as log:
            yield Guarded(running, seen, log, proxy)


def authorization_of(scope: Scope) -> bytes | None:
    return dict(scope["headers"]).get(b"authorization")


# Header injection through the method override and the token.


@pytest.mark.parametrize(
    "query",
    [
        "method=GET%0D%0AX-Injected:%201",
        "method=GET%0AX-Injected:%201",
        "method=GET%20HTTP/1.1",
        "method=G%00T",
        "method=G%3BT",
        "method=G%22T",
        "method=",
        "method=P%C3%93ST",
    ],
)
async def test_method_override_with_non_token_characters_is_refused_before_app_code(
    guarded: Guarded, query: str
) -> None:
    status, body, _ = await refusal(f"{guarded.running.ws}/echo?{query}")
    assert (status, body) == (400, {"error": "invalid method override", "status": 400})
    assert guarded.seen.mutated == guarded.seen.scopes == []


@pytest.mark.parametrize(
    "header",
    [
        ("Sec-WebSocket-Protocol", f"Bearer, {SECRET} X-Injected"),
        ("Sec-WebSocket-Protocol", f'Bearer, "{SECRET}"'),
        ("Sec-WebSocket-Protocol", f"Bearer, {SECRET}=x"),
        ("Sec-WebSocket-Protocol", f"Bearer, {SECRET};x"),
        ("Sec-WebSocket-Protocol", f"Bearer, {SECRET}%0D%0AX-Injected:%201"),
        ("Cookie", f"token={SECRET}%0d%0aX-Injected: 1"),
        ("Cookie", f"token={SECRET} X-Injected"),
        ("Cookie", f"token={SECRET}\tx"),
        ("Cookie", f"token={SECRET}:x"),
    ],
    ids=lambda header: header[1].replace(SECRET, "TOKEN"),
)
async def test_a_token_that_could_split_a_header_is_refused_and_not_echoed(
    guarded: Guarded, header: tuple[str, str]
) -> None:
    status, body, headers = await refusal(
        f"{guarded.running.ws}/echo", additional_headers=[header], origin=APP_ORIGIN
    )
    assert status == 400
    if isinstance(body, dict):
        assert body == {"error": "malformed bearer token", "status": 400}
    else:
        # websockets-sansio refuses an invalid Sec-WebSocket-Protocol itself, before any ASGI code,
        # and quotes the header in its text body (docs/security.md).
        assert header[0] == "Sec-WebSocket-Protocol"
    assert SECRET not in headers
    assert guarded.seen.scopes == []
    assert SECRET not in "\n".join(guarded.log.lines)


# The token never comes back out.


async def test_the_bearer_token_never_appears_in_logs_close_reasons_or_response_headers(
    guarded: Guarded,
) -> None:
    url = guarded.running.ws
    by_subprotocol: dict[str, Any] = {"subprotocols": ["Bearer", SECRET], "origin": APP_ORIGIN}
    by_cookie: dict[str, Any] = {"additional_headers": [("Cookie", f"token={SECRET}")]}
    exposed: list[str] = []

    async def call(path: str, messages: list[str], **kwargs: Any) -> tuple[int | None, str | None]:
        async with connect(url + path, **kwargs) as ws:
            assert ws.response is not None
            exposed.append(str(ws.response.headers))
            for message in messages:
                await ws.send(message)
            frames, code, reason = await drain(ws)
        exposed.append(reason or "")
        exposed.extend(str(frame) for frame in frames)
        return code, reason

    outcomes = [
        await call("/echo?method=POST", ["{}", ""], **by_subprotocol),
        await call("/echo?method=POST", ["{}", ""], **by_cookie),
        await call("/missing?method=POST", [""], **by_subprotocol),
        await call("/raise", [], **by_cookie),
        await call("/big?method=POST", [""], **by_subprotocol),
        await call("/echo?method=POST", ["x" * 1001], **by_subprotocol),
        await call("/hang?method=POST", ["", "after the end"], **by_cookie),
        await call("/hang", [], **by_subprotocol),
    ]
    assert [code for code, _ in outcomes] == [1000, 1000, 4404, 1011, 1009, 1009, 1008, 1001]
    # The token did reach the app, so it was there to leak.
    assert {authorization_of(scope) for scope in guarded.seen.scopes} == {b"Bearer " + SECRET.encode()}

    for query, kwargs in [
        ("?method=G%0AT", by_subprotocol),
        ("", {**by_cookie, "origin": "https://evil.example"}),
    ]:
        status, body, headers = await refusal(url + "/echo" + query, **kwargs)
        exposed.extend([str(status), str(body), headers])
    # Each stream logs its last line before it stops counting as active.
    await eventually(lambda: guarded.proxy.active_streams == 0, "every stream ended")
    assert guarded.log.lines, "the logs were not captured"
    assert SECRET not in "\n".join(exposed + guarded.log.lines)


# Cross-site WebSocket hijacking.


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "https://app.example.evil.example",
        "https://evil.example/https://app.example",
        "http://app.example",
        "https://app.example:8443",
        "https://app.exampl",
        "null",
    ],
)
async def test_a_foreign_origin_is_refused_before_any_app_code_and_its_cookie_is_never_used(
    guarded: Guarded, origin: str
) -> None:
    status, body, headers = await refusal(
        f"{guarded.running.ws}/echo?method=POST",
        origin=origin,
        additional_headers=[("Cookie", f"token={SECRET}")],
    )
    assert (status, body) == (403, {"error": "origin not allowed", "status": 403})
    assert SECRET not in headers
    # Neither the mutator nor the app ran: the cookie was never turned into Authorization.
    assert guarded.seen.mutated == guarded.seen.scopes == []


@pytest.mark.parametrize("origin", [APP_ORIGIN, "https://APP.example", "https://app.example/"])
async def test_the_allowed_origin_gets_its_cookie_as_authorization(guarded: Guarded, origin: str) -> None:
    async with connect(
        f"{guarded.running.ws}/echo?method=POST",
        origin=origin,  # type: ignore[arg-type]
        additional_headers=[("Cookie", f"token={SECRET}")],
    ) as ws:
        await ws.send("")
        assert (await drain(ws))[1] == 1000
    [scope] = guarded.seen.scopes
    assert authorization_of(scope) == b"Bearer " + SECRET.encode()
