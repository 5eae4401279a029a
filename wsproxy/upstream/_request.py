"""What goes upstream for one ASGI request: the headers, and how the body is framed. Pure, no I/O.

Framing decides whether a server answers before the request body ends:

- `BODYLESS`: GET and HEAD without a body of their own (no Content-Length, no Transfer-Encoding:
  a WebSocket call, or a plain HTTP GET) go out as HTTP clients send them, with no body at all (HTTP/1.1: no Content-Length, no chunking; HTTP/2: END_STREAM on HEADERS). Every
  server answers at once. A client message on such a call is refused (`RequestBodyNotAllowed`).
- `FIXED`: the client declared Content-Length; it is forwarded, and the connection may be reused.
- `STREAMING`: the body's end is unknown (a WebSocket stream). HTTP/1.1 sends it chunked with
  `Connection: close`: Go's net/http server (server.go, `(*chunkWriter).writeHeader`) reads and
  discards the unread request body before it writes the response head (Go issue 15527) unless the
  request asked for the connection to close (`wantsClose` sets `closeAfterReply`, which skips the
  drain). Without it a Go gateway answers only when the client half-closes. Such a connection is
  not reusable anyway: its body rarely ends before the response. HTTP/2 needs nothing: its streams
  are full duplex on every server.
"""

from __future__ import annotations

import enum

from wsproxy._types import Scope

# RFC 9110 section 7.6.1: meaningful for one connection only, never forwarded.
HOP_BY_HOP_HEADERS = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Our own server already answered these for its client; forwarding them would repeat them.
REQUEST_ONLY_DROPPED = frozenset({b"host", b"expect", b"x-forwarded-proto", b"x-forwarded-host"})
BODYLESS_METHODS = frozenset({"GET", "HEAD"})


class Framing(enum.Enum):
    BODYLESS = "bodyless"
    FIXED = "fixed"
    STREAMING = "streaming"


def framing_of(method: str, headers: list[tuple[bytes, bytes]]) -> Framing:
    """How the request body goes upstream (see the module docstring)."""
    names = {name.lower() for name, _ in headers}
    if b"content-length" in names:
        return Framing.FIXED
    if b"transfer-encoding" in names:
        return Framing.STREAMING  # the client's own chunked body, whatever the method
    if method.upper() in BODYLESS_METHODS:
        return Framing.BODYLESS
    return Framing.STREAMING


def http1_framing_headers(framing: Framing) -> list[tuple[bytes, bytes]]:
    """The headers an HTTP/1.1 request adds for `framing` (HTTP/2 frames bodies itself)."""
    if framing is Framing.STREAMING:
        return [(b"transfer-encoding", b"chunked"), (b"connection", b"close")]
    return []


def forwarded_request_headers(scope: Scope, upstream_netloc: str) -> list[tuple[bytes, bytes]]:
    """The client's headers minus hop-by-hop ones, with Host and X-Forwarded-* for the upstream.

    Lower-case names, `host` first; no framing headers (see `http1_framing_headers`).
    """
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    named_in_connection = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == b"connection"
        for token in value.split(b",")
    }
    dropped = HOP_BY_HOP_HEADERS | REQUEST_ONLY_DROPPED | named_in_connection
    out = [(b"host", upstream_netloc.encode())]
    forwarded_for: list[bytes] = []
    original_host = b""
    for name, value in headers:
        lower = name.lower()
        if lower == b"host":
            original_host = value
        elif lower == b"x-forwarded-for":
            forwarded_for.append(value)
        elif lower not in dropped:
            out.append((lower, value))
    client = scope.get("client")
    if client:
        chain = b", ".join(forwarded_for)
        last = chain.rsplit(b",", 1)[-1].strip()
        # uvicorn's proxy-headers support may already have made the last hop our client.
        if last != client[0].encode():
            chain = chain + b", " + client[0].encode() if chain else client[0].encode()
        out.append((b"x-forwarded-for", chain))
    elif forwarded_for:
        out.append((b"x-forwarded-for", b", ".join(forwarded_for)))
    scheme = str(scope.get("scheme", "http"))
    out.append((b"x-forwarded-proto", b"https" if scheme in ("https", "wss") else b"http"))
    if original_host:
        out.append((b"x-forwarded-host", original_host))
    return out


def response_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The upstream's response headers minus the hop-by-hop ones (lower-case names expected)."""
    named_in_connection = {
        token.strip().lower()
        for name, value in headers
        if name == b"connection"
        for token in value.split(b",")
    }
    dropped = HOP_BY_HOP_HEADERS | named_in_connection
    return [(name, value) for name, value in headers if name not in dropped]
