"""Hostile input at the middleware, in-process: hypothesis builds ASGI scopes by hand, because header
bytes a real server would refuse to parse (NUL, CR/LF, non-token names) can only reach it that way
(tests/integration/test_hostile.py sends malformed handshakes to a real uvicorn). No unhandled
exception, no 500 with a traceback, no header reaching the app that the allowlist does not name, and
the Bearer token nowhere in what goes back.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import unquote_plus

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.hostile import SECRET, TOKEN68, Seen, echo_app, logged
from wsproxy import WebSocketProxyMiddleware
from wsproxy._options import TOKEN_RE
from wsproxy._types import Message, Scope

OPTION_SETS: list[dict[str, Any]] = [
    {},
    {"max_message_size": 64, "max_line_size": 64},
    {"half_close_message": None, "token_cookie_name": None},
    {"forwarded_headers": ("host", "x-trace"), "allowed_origins": ["https://app.example"]},
    {"forwarded_headers": lambda name: name.startswith("x-")},
    # An allowlist that names the headers that must never pass: they still must not.
    {"forwarded_headers": lambda name: True},
    {"forwarded_headers": ["content-length", "transfer-encoding", "connection", "upgrade", "te", "x-trace"]},
]


hostile_bytes = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"\r\n", b"\x00", b"\n", b" ", b",", b";", b"\xff\xfe", b"%0d%0a", b"\t", b"\x7f"]),
)


header_names = st.one_of(
    st.sampled_from(
        [
            b"host",
            b"Host",
            b"origin",
            b"referer",
            b"cookie",
            b"authorization",
            b"Authorization",
            b"sec-websocket-protocol",
            b"sec-websocket-key",
            b"connection",
            b"upgrade",
            b"content-length",
            b"transfer-encoding",
            b"keep-alive",
            b"te",
            b"trailer",
            b"proxy-connection",
            b"x-trace",
            b"traceparent",
            b"Baggage",
            b"x-forwarded-for",
            b"x-evil\r\ninjected",
            b"x-\x00",
            b"bad name",
            b"",
        ]
    ),
    st.binary(max_size=12),
)


header_values = st.one_of(
    st.binary(max_size=60),
    st.sampled_from([b"https://app.example", b"https://evil.example", b"null", SECRET.encode()]),
    st.lists(hostile_bytes, max_size=4).map(b"".join),
    st.integers(0, 20000).map(lambda n: b"A" * n),  # oversized
)


subprotocol_items = st.one_of(
    st.sampled_from(["Bearer", SECRET, "bearer", "", " ", "Bearer,", f"Bearer, {SECRET}"]),
    st.text(max_size=20),
    st.lists(st.sampled_from([SECRET, " ", "\r\n", "\x00", ";", '"', "é", ","]), max_size=4).map("".join),
)


cookie_headers = st.lists(
    st.tuples(
        st.sampled_from(["token", "TOKEN", " token", "other", ""]),
        st.one_of(st.just(SECRET), st.text(max_size=20), st.just(SECRET + "\r\nX-Injected: 1")),
    ),
    max_size=3,
).map(lambda pairs: ("; ".join(f"{k}={v}" for k, v in pairs)).encode("utf-8", "surrogatepass"))


query_strings = st.one_of(
    st.binary(max_size=60),
    st.lists(
        st.tuples(
            st.sampled_from([b"method", b"methodType", b"x", b"method%00", b""]),
            st.one_of(
                st.sampled_from(
                    [
                        b"POST",
                        b"GET%0D%0AX-Injected:%201",
                        b"P%20ST",
                        b"Unary",
                        b"ServerStreaming",
                        b"",
                        b"\xff",
                    ]
                ),
                st.binary(max_size=20),
            ),
        ),
        max_size=4,
    ).map(lambda pairs: b"&".join(k + b"=" + v for k, v in pairs)),
)


messages: st.SearchStrategy[list[str | bytes]] = st.lists(
    st.one_of(
        st.text(max_size=80),
        st.binary(max_size=80),
        st.sampled_from(["", b"", "\x00\x00", "a\r\nb", "\x1b[31m", b"\xc3\x28", "x" * 65, b"\xff" * 70]),
    ),
    max_size=8,
)


@st.composite
def handshakes(draw: st.DrawFn) -> tuple[Scope, list[str | bytes], int]:
    headers = draw(st.lists(st.tuples(header_names, header_values), max_size=8))
    if draw(st.booleans()):
        headers.append((b"cookie", draw(cookie_headers)))
    subprotocols = draw(st.lists(subprotocol_items, max_size=4))
    if draw(st.booleans()):  # some servers leave the raw header instead of parsing it
        headers.append((b"sec-websocket-protocol", ", ".join(subprotocols).encode("utf-8", "surrogatepass")))
        subprotocols = []
    scope: Scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": draw(st.sampled_from(["1.1", "2", ""])),
        "scheme": draw(st.sampled_from(["ws", "wss", "http", "\x00"])),
        "path": draw(st.text(max_size=30)),
        "raw_path": draw(st.binary(max_size=30)),
        "query_string": draw(query_strings),
        "root_path": "",
        "headers": headers,
        "subprotocols": subprotocols,
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
        "extensions": {"websocket.http.response": {}} if draw(st.booleans()) else {},
    }
    return scope, draw(messages), draw(st.integers(0, len(OPTION_SETS) - 1))


def run_handshake(
    scope: Scope, script: list[str | bytes], options: dict[str, Any]
) -> tuple[list[Message], Seen]:
    seen = Seen()
    sent: list[Message] = []
    proxy = WebSocketProxyMiddleware(echo_app(seen), **options)
    incoming: list[Message] = [{"type": "websocket.connect"}]
    for item in script:
        incoming.append(
            {"type": "websocket.receive", "text": item}
            if isinstance(item, str)
            else {"type": "websocket.receive", "bytes": item}
        )

    async def receive() -> Message:
        if incoming:
            return incoming.pop(0)
        return {"type": "websocket.disconnect", "code": 1005}  # the client has gone

    async def send(message: Message) -> None:
        # What uvicorn enforces: nothing may follow the close or the HTTP denial.
        if sent and sent[-1]["type"] in ("websocket.close", "websocket.http.response.body"):
            raise RuntimeError(f"{message['type']} sent after {sent[-1]['type']}")
        sent.append(message)

    asyncio.run(proxy(scope, receive, send))
    return sent, seen


def expected_bodies(
    script: list[str | bytes], options: dict[str, Any], single: bool, bodyless: bool
) -> tuple[list[bytes], str]:
    """The body chunks the app must see, in order, and how the body ends.

    `bodyless` (GET, HEAD; docs/protocol.md): no body at all; the half-close changes nothing and any
    other message is a violation."""
    half_close = options.get("half_close_message", "")
    limit = options.get("max_message_size", 1 << 20)
    bodies: list[bytes] = []
    for item in script:
        data = item.encode() if isinstance(item, str) else item
        if half_close is not None and data == half_close.encode():
            if bodyless:
                continue
            return bodies, "half-close"
        if bodyless:
            return bodies, "violation"
        if len(data) > limit:
            return bodies, "too big"
        bodies.append(data.replace(b"\r", b" ").replace(b"\n", b" ") + b"\n")
        if single:
            return bodies, "single"
    return bodies, "no body" if bodyless else "client gone"


def is_single_message(query: bytes) -> bool:
    """The contract: the first methodType parameter, Unary or ServerStreaming in any case."""
    for item in query.split(b"&"):
        name, _, value = item.partition(b"=")
        if unquote_plus(name.decode("latin-1")) == "methodType":
            return unquote_plus(value.decode("latin-1")).lower() in ("unary", "serverstreaming")
    return False


# docs/security.md: never forwarded, whatever the allowlist says (written out here, not imported).
NEVER_FORWARDED = frozenset(
    {
        "connection",
        "upgrade",
        "transfer-encoding",
        "content-length",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
    }
)


def allowed_header(name: bytes, options: dict[str, Any]) -> bool:
    lowered = name.decode("latin-1").lower()
    if lowered in NEVER_FORWARDED or lowered.startswith("sec-websocket-"):
        return False
    default = ("host", "origin", "referer", "traceparent", "tracestate", "baggage")
    forwarded = options.get("forwarded_headers", default)
    return bool(forwarded(lowered)) if callable(forwarded) else lowered in forwarded


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(handshakes())
def test_hostile_handshakes_and_messages_never_break_the_middleware(
    case: tuple[Scope, list[str | bytes], int],
) -> None:
    scope, script, which = case
    options = OPTION_SETS[which]
    with logged("wsproxy") as log:
        sent, seen = run_handshake(scope, script, options)  # raises if anything escaped
    assert log.tracebacks == 0, log.lines
    assert SECRET not in "\n".join(log.lines)
    assert SECRET.encode() not in repr(sent).encode()

    if sent[0]["type"] != "websocket.accept":
        # Refused before accept: a 4xx, never a 500, and no app code ran.
        assert seen.scopes == []
        if sent[0]["type"] == "websocket.close":
            assert sent == [{"type": "websocket.close", "code": 1008}]
        else:
            start, body = sent
            assert start["type"] == "websocket.http.response.start"
            assert start["status"] in (400, 403)
            denial = json.loads(body["body"])
            assert set(denial) == {"error", "status"}
            assert denial["status"] == start["status"]
        return

    [http_scope] = seen.scopes
    assert TOKEN_RE.match(http_scope["method"])
    for name, value in http_scope["headers"]:
        if name == b"authorization" and TOKEN68.match(value):
            continue  # the token, from the subprotocol or the cookie
        assert allowed_header(name, options), f"{name!r} reached the app"
    assert sent[0].get("subprotocol") in (None, "Bearer")

    bodyless = http_scope["method"] in ("GET", "HEAD")
    want, ending = expected_bodies(script, options, is_single_message(scope["query_string"]), bodyless)
    # Messages that wait together may reach the app as one event (docs/protocol.md): the body's
    # bytes are the promise, not where its events split.
    assert b"".join(seen.bodies) == b"".join(want)
    frames = [
        m.get("text", "").encode() if "text" in m else m["bytes"]
        for m in sent
        if m["type"] == "websocket.send"
    ]
    echoed = [body[:-1] for body in want if body != b"\n"]
    if ending == "client gone":
        # A disconnect taken together with the last messages ends the stream before their echoes.
        assert frames == echoed[: len(frames)]
    else:
        assert frames == echoed
    closes = [m for m in sent if m["type"] == "websocket.close"]
    if ending == "violation":
        # The app may finish its (empty) answer before the message is read.
        assert closes in (
            [{"type": "websocket.close", "code": 1000, "reason": ""}],
            [{"type": "websocket.close", "code": 1008, "reason": "message after end of request body"}],
        )
    elif ending == "no body":
        assert [m["code"] for m in closes] in ([1000], [])  # unless the client left first
    elif ending == "too big":
        assert closes == [{"type": "websocket.close", "code": 1009, "reason": "message too big"}]
    elif ending in ("half-close", "single"):
        assert [m["code"] for m in closes] in ([1000], [1008])
    else:
        assert closes == []  # the client left: no close frame to send
