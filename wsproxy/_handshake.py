"""Mapping a WebSocket handshake onto the HTTP request the wrapped app sees, without I/O.

Everything here is a pure function of the WebSocket scope and the options, so the security-relevant
rules (which headers pass, how the Bearer token is taken, which Origin is refused) are tested
table-driven, apart from any server.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote_plus

from wsproxy import _status
from wsproxy._options import TOKEN_RE, HeaderPredicate, ProxyOptions, normalize_origin
from wsproxy._types import Scope
from wsproxy.errors import HandshakeRejected

BEARER = "Bearer"
METHOD_TYPE_PARAM = "methodType"
# The call's deadline, in gRPC's wire format: browsers cannot set handshake headers, so a client
# names it in the query and the app sees the `grpc-timeout` header (the gateway's deadline).
GRPC_TIMEOUT_PARAM = "grpc-timeout"
# gRPC over HTTP/2 spec: TimeoutValue is 1-8 ASCII digits, then the unit (Hours ... Nanoseconds).
GRPC_TIMEOUT_RE = re.compile(r"[0-9]{1,8}[HMSmun]")
# Call kinds whose request is one message: the body ends after it (the Go fork's PR #43 hint).
SINGLE_MESSAGE_KINDS = frozenset({"unary", "serverstreaming"})
STREAMING_KINDS = frozenset({"clientstreaming", "bidistreaming", "bidistream"})
# Methods whose request has no body: the app gets an empty body that has already ended, as an HTTP
# client sends them (and as wsproxy.upstream sends them: its BODYLESS_METHODS). A framework that reads
# the whole body before the view (Django) then answers at once; a client message is a violation.
BODYLESS_METHODS = frozenset({"GET", "HEAD"})

# Never forwarded, whatever the allowlist says: they describe the WebSocket connection, not the call.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "upgrade",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "content-length",
    }
)
# RFC 7235 token68: what a Bearer credential may be made of; nothing that could split a header.
TOKEN68_RE = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")
_SCHEMES = {"ws": "http", "wss": "https"}
# WebSocket-only keys that have no meaning on an HTTP scope.
_WEBSOCKET_KEYS = ("subprotocols",)


@dataclass(frozen=True)
class RequestPlan:
    """What the handshake turns into: the HTTP scope, the subprotocol to accept, the body shape, and
    whether the client is told the status, headers and trailers (`report_status`, wsproxy/_status.py).

    The body shape: `bodyless` (GET, HEAD: no body at all, whatever `single_message` says), else
    `single_message` (the body ends after the first message), else a stream of messages.
    """

    scope: Scope
    subprotocol: str | None
    single_message: bool
    report_status: bool = False

    @property
    def bodyless(self) -> bool:
        """The request has no body: read from the final scope, so a `request_mutator`'s method counts."""
        return is_bodyless(self.scope.get("method", ""))


def plan_request(
    ws_scope: Scope,
    options: ProxyOptions,
    *,
    forwards: HeaderPredicate,
    origins: frozenset[str] | None,
    report_status: bool = False,
) -> RequestPlan:
    """Build the HTTP request for `ws_scope`. Raises HandshakeRejected(status, message).

    `report_status`: the client is told the status and headers (it offered wsproxy.status.v1, or a mux
    call asked): the subprotocol accepted says so, and the app may send trailers, which reach it too.
    """
    headers: list[tuple[bytes, bytes]] = list(ws_scope.get("headers", ()))
    origin = header_value(headers, b"origin")
    if not origin_allowed(origin, origins):
        raise HandshakeRejected(403, "origin not allowed")

    query, params = split_query(
        ws_scope.get("query_string", b""),
        {name for name in (options.method_override_param, METHOD_TYPE_PARAM, GRPC_TIMEOUT_PARAM) if name},
    )
    method = options.default_method
    if options.method_override_param and options.method_override_param in params:
        method = parse_method(params[options.method_override_param])
    single_message = is_single_message(params.get(METHOD_TYPE_PARAM))

    token = bearer_from_subprotocols(offered_subprotocols(ws_scope))
    subprotocol = _status.SUBPROTOCOL if report_status else BEARER if token is not None else None
    if token is None and options.token_cookie_name:
        token = bearer_from_cookie(headers, options.token_cookie_name)

    forwarded = [(name, value) for name, value in headers if _forwardable(name, forwards)]
    if GRPC_TIMEOUT_PARAM in params:
        timeout = parse_grpc_timeout(params[GRPC_TIMEOUT_PARAM])
        forwarded = [(name, value) for name, value in forwarded if name.lower() != b"grpc-timeout"]
        forwarded.append((b"grpc-timeout", timeout))
    if token is not None:
        forwarded = [(name, value) for name, value in forwarded if name.lower() != b"authorization"]
        forwarded.append((b"authorization", b"Bearer " + token.encode("ascii")))
    extensions: dict[str, object] = {}
    if report_status:
        # The client can receive trailers: say so as an HTTP client would (TE, hop-by-hop, so never the
        # client's own), and as ASGI asks.
        forwarded.append((b"te", b"trailers"))
        extensions["http.response.trailers"] = {}

    scope = {key: value for key, value in ws_scope.items() if key not in _WEBSOCKET_KEYS}
    scheme = ws_scope.get("scheme", "ws")
    scope.update(
        type="http",
        asgi={"version": "3.0", "spec_version": "2.4"},
        http_version=ws_scope.get("http_version", "1.1"),
        method=method,
        scheme=_SCHEMES.get(scheme, scheme),
        query_string=query,
        headers=forwarded,
        extensions=extensions,
    )
    return RequestPlan(scope, subprotocol, single_message, report_status)


def header_value(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def origin_allowed(origin: str | None, allowed: frozenset[str] | None) -> bool:
    """None allows every Origin. A request with no Origin is not from a browser: CSWSH needs one."""
    if allowed is None or origin is None or "*" in allowed:
        return True
    return normalize_origin(origin) in allowed


def split_query(query: bytes, names: set[str]) -> tuple[bytes, dict[str, str]]:
    """Remove the parameters in `names` from a raw query string, returning the rest byte-exact."""
    if not names or not query:
        return query, {}
    kept: list[bytes] = []
    found: dict[str, str] = {}
    for item in query.split(b"&"):
        raw_name, _, raw_value = item.partition(b"=")
        name = unquote_plus(raw_name.decode("latin-1"))
        if name in names:
            found.setdefault(name, unquote_plus(raw_value.decode("latin-1")))
        elif item:
            kept.append(item)
    return b"&".join(kept), found


def parse_method(value: str) -> str:
    if not TOKEN_RE.match(value):
        raise HandshakeRejected(400, "invalid method override")
    return value.upper()


def parse_grpc_timeout(value: str) -> bytes:
    """The `grpc-timeout` query parameter as the header's value; the client's own call's deadline."""
    if not GRPC_TIMEOUT_RE.fullmatch(value):
        raise HandshakeRejected(400, "invalid grpc-timeout: 1-8 digits and a unit (H, M, S, m, u, n)")
    return value.encode("ascii")


def is_bodyless(method: str) -> bool:
    return method.upper() in BODYLESS_METHODS


def is_single_message(method_type: str | None) -> bool:
    if method_type is None:
        return False
    kind = method_type.lower()
    if kind in SINGLE_MESSAGE_KINDS:
        return True
    if kind in STREAMING_KINDS:
        return False
    raise HandshakeRejected(
        400, "invalid methodType: use Unary, ServerStreaming, ClientStreaming or BidiStreaming"
    )


def offered_subprotocols(ws_scope: Scope) -> list[str]:
    """The Sec-WebSocket-Protocol items, in order: the server's parse, else the raw headers'.

    Servers differ: some keep the header in scope["headers"], wsproto's drops it.
    """
    raw: list[str] = list(ws_scope.get("subprotocols") or ())
    if not raw:
        raw = [
            value.decode("latin-1")
            for key, value in ws_scope.get("headers", ())
            if key.lower() == b"sec-websocket-protocol"
        ]
    items = [part.strip() for value in raw for part in value.split(",")]
    return [item for item in items if item]


def offers_status(ws_scope: Scope) -> bool:
    """Whether the client offered wsproxy.status.v1 (alongside the Bearer pair, if any)."""
    return _status.SUBPROTOCOL in offered_subprotocols(ws_scope)


def bearer_from_subprotocols(items: list[str]) -> str | None:
    """`Sec-WebSocket-Protocol: Bearer, <token>` (or `Bearer,<token>`) -> the token."""
    if not items or items[0] != BEARER:
        return None
    if len(items) < 2:
        raise HandshakeRejected(400, "Bearer subprotocol without a token")
    return _checked_token(items[1])


def bearer_from_cookie(headers: Iterable[tuple[bytes, bytes]], cookie_name: str) -> str | None:
    for key, value in headers:
        if key.lower() != b"cookie":
            continue
        for pair in value.decode("latin-1").split(";"):
            name, sep, cookie = pair.partition("=")
            if sep and name.strip() == cookie_name:
                return _checked_token(cookie.strip().strip('"'))
    return None


def _checked_token(token: str) -> str:
    if not TOKEN68_RE.match(token):
        raise HandshakeRejected(400, "malformed bearer token")
    return token


def _forwardable(name: bytes, forwards: HeaderPredicate) -> bool:
    lowered = name.decode("latin-1").lower()
    if lowered in HOP_BY_HOP or lowered.startswith("sec-websocket-"):
        return False
    return forwards(lowered)
