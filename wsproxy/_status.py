"""The `wsproxy.status.v1` control frames: the response's status and headers, and its trailers; no I/O.

A client that offers the `wsproxy.status.v1` subprotocol (or, on a mux call, OPEN's `"status": true`)
learns the HTTP status and headers before the first line, and the trailers after the last one:

    {"type": "status", "status": 200, "headers": [["content-type", "application/x-ndjson"], ...]}
    {"type": "trailers", "headers": [["grpc-trailer-x", "v"], ...]}

On a socket of its own a control frame is a binary WebSocket frame whose payload is that UTF-8 JSON.
Lines go as text frames when they are UTF-8 and as binary frames only when they are not, so a binary
frame that decodes as UTF-8 is never a line: that is the whole rule a client needs. A client skips a
control frame of a type it does not know, so later versions may add some. On a mux call the same
JSON goes in a STATUS or TRAILERS frame (wsproxy/mux/_frames.py). Shared by the stream, the mux
session and the clients; docs/protocol.md has worked examples.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

SUBPROTOCOL = "wsproxy.status.v1"

# Never shown to the client: these (and every `proxy-*` header) describe the HTTP connection or the
# body's framing, which the frames replace; and a cookie the app sets HttpOnly must not reach a
# page's scripts.
HIDDEN_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "content-length",
        "set-cookie",
        "set-cookie2",
    }
)
HIDDEN_PREFIX = "proxy-"


@dataclass(frozen=True, slots=True)
class Control:
    """One control frame, decoded: `kind` is "status", "trailers", or a type a later version added
    (skip it); `status` is None but for a status frame."""

    kind: str
    status: int | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)


def exposed_headers(raw: Iterable[tuple[bytes, bytes]]) -> list[list[str]]:
    """The app's response headers as the client sees them: in order, names lower-case, values as
    latin-1 (HTTP's own reading of header bytes), the hidden ones left out."""
    exposed = []
    for name, value in raw:
        lowered = name.decode("latin-1").lower()
        if lowered not in HIDDEN_HEADERS and not lowered.startswith(HIDDEN_PREFIX):
            exposed.append([lowered, value.decode("latin-1")])
    return exposed


def encode_status(status: int, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    return _encode({"type": "status", "status": status, "headers": exposed_headers(headers)})


def encode_trailers(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    return _encode({"type": "trailers", "headers": exposed_headers(headers)})


def _encode(body: dict[str, object]) -> bytes:
    return _ENCODER.encode(body).encode()


_ENCODER = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False
)  # made once: json.dumps makes one a call
# What every frame `encode_status` and `encode_trailers` make begins with (the key order is theirs).
_STATUS_PREFIX = b'{"type":"status",'
_TRAILERS_PREFIX = b'{"type":"trailers",'


def encoded_kind(payload: bytes) -> str | None:
    """ "status" or "trailers" for a frame this module encoded, None for a binary line; without
    parsing the JSON (the mux session sorts each of its calls' binary frames this way).

    A line goes in a binary frame only when it is not UTF-8, so a payload that starts like one of
    ours and is UTF-8 is ours.
    """
    if payload.startswith(_STATUS_PREFIX):
        kind = "status"
    elif payload.startswith(_TRAILERS_PREFIX):
        kind = "trailers"
    else:
        return None
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return kind


def parse_control(payload: bytes) -> Control | None:
    """The control frame in a binary payload, or None when it is not one (a binary line: not UTF-8).

    Raises ValueError for a payload that is UTF-8 but not a well-formed control frame (not a JSON
    object with a string "type", or a status or trailers frame with bad fields): on a socket that
    speaks wsproxy.status.v1 that can only be a broken server.
    """
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return None
    body = json.loads(text)  # ValueError when not JSON
    if not isinstance(body, dict):
        raise ValueError("control frame is not a JSON object")
    kind = body.get("type")
    if kind == "status":
        status = body.get("status")
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 999:
            raise ValueError(f"status frame with an invalid status: {status!r}")
        return Control("status", status, _headers(body.get("headers", [])))
    if kind == "trailers":
        return Control("trailers", None, _headers(body.get("headers", [])))
    if not isinstance(kind, str):
        raise ValueError(f"control frame without a type: {kind!r}")
    return Control(kind)  # a later version's: the caller skips it


def _headers(raw: object) -> list[tuple[str, str]]:
    if not isinstance(raw, list):
        raise ValueError('control frame "headers" is not a list')
    headers = []
    for pair in raw:
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(item, str) for item in pair)):
            raise ValueError('control frame "headers" items must be [name, value] strings')
        headers.append((pair[0], pair[1]))
    return headers
