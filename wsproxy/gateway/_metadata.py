"""HTTP request headers -> gRPC metadata, and gRPC response metadata -> HTTP headers (grpc-gateway rules).

Follows grpc-gateway v2's runtime/context.go (annotateContext) and runtime/mux.go
(DefaultHeaderMatcher, the outgoing header and trailer matchers): `Authorization` goes on as
`authorization` and, being a permanent header, also as `grpcgateway-authorization`; other permanent
headers get the `grpcgateway-` prefix; `Grpc-Metadata-<key>` becomes `<key>` (`-bin` values are
base64-decoded, and one that does not decode is INVALID_ARGUMENT); `x-forwarded-host` is the
incoming `X-Forwarded-Host`, else `Host`; `x-forwarded-for` is the incoming `X-Forwarded-For`
values plus the client address, joined with ", ". Response header metadata comes back as
`Grpc-Metadata-<key>`, trailer metadata as `Grpc-Trailer-<key>` when the request says `TE: trailers`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from typing import Any

import grpc

from wsproxy.gateway._status import GatewayError

METADATA_PREFIX = "grpc-metadata-"
TRAILER_PREFIX = "grpc-trailer-"
# runtime.isPermanentHTTPHeader: forwarded as "grpcgateway-<name>".
_PERMANENT = frozenset(
    [
        "accept",
        "accept-charset",
        "accept-language",
        "accept-ranges",
        "authorization",
        "cache-control",
        "content-type",
        "cookie",
        "date",
        "expect",
        "from",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-schedule-tag-match",
        "if-unmodified-since",
        "max-forwards",
        "origin",
        "pragma",
        "referer",
        "user-agent",
        "via",
        "warning",
    ]
)
_METADATA_KEY = re.compile(r"[0-9a-z_.-]+")
# grpc-go's isReservedHeader: the transport's own headers, which its client leaves out of a call's
# metadata (grpcio would instead send them, and a forged grpc-status breaks the call).
_RESERVED = frozenset(
    [
        "content-type",
        "user-agent",
        "grpc-message-type",
        "grpc-encoding",
        "grpc-message",
        "grpc-status",
        "grpc-timeout",
        "grpc-status-details-bin",
        "te",
    ]
)
_MAX_TIMEOUT_NANOS = 2**31 * 10**9  # 68 years: beyond, grpcio's deadline overflows into "already past"
_SIGNED = re.compile(r"[+-]?[0-9]+")  # strconv.ParseInt(s, 10, 64)
_TIMEOUT_UNITS = {"H": 3600 * 10**9, "M": 60 * 10**9, "S": 10**9, "m": 10**6, "u": 10**3, "n": 1}

Metadata = list[tuple[str, str | bytes]]


def _printable(value: str) -> bool:
    return value.isascii() and value.isprintable()


def _binary(name: str, value: str) -> bytes:
    """decodeBinHeader: padded standard base64 when the length is a multiple of 4, else unpadded
    (RawStdEncoding, where a `=` is an error: "AA=" is refused)."""
    if len(value) % 4 == 1 or (len(value) % 4 and "=" in value):
        raise GatewayError(grpc.StatusCode.INVALID_ARGUMENT, f"invalid binary header {name}: bad padding")
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise GatewayError(
            grpc.StatusCode.INVALID_ARGUMENT, f"invalid binary header {name}: not base64"
        ) from None


def request_metadata(headers: list[tuple[bytes, bytes]], client: tuple[str, int] | None) -> Metadata:
    metadata: Metadata = []
    forwarded_host: str | None = None
    host: str | None = None
    forwarded_for: list[str] = []
    for raw_name, raw_value in headers:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name == "x-forwarded-host":
            forwarded_host = forwarded_host or value
            continue
        if name == "x-forwarded-for":
            forwarded_for.append(value)
            continue
        if name == "host":
            host = value
            continue
        if name == "authorization":
            metadata.append((name, value))  # "for backwards-compatibility", besides grpcgateway-authorization
        if name.startswith(METADATA_PREFIX):
            key = name[len(METADATA_PREFIX) :]
        elif name in _PERMANENT:
            key = "grpcgateway-" + name
        else:
            continue
        if not _METADATA_KEY.fullmatch(key) or key in _RESERVED or key == "-bin":  # grpcio refuses "-bin"
            continue  # not a valid gRPC metadata key (grpc-gateway skips it) or one grpc-go drops
        if key.endswith("-bin"):
            metadata.append((key, _binary(raw_name.decode("latin-1"), value)))
        elif _printable(value):
            metadata.append((key, value))
    if forwarded_host or host:
        metadata.append(("x-forwarded-host", forwarded_host or host or ""))
    # The peer address, unless the ASGI server already took it from X-Forwarded-For (uvicorn's
    # proxy_headers does for trusted proxies): then it is that list's last entry already.
    last = forwarded_for[-1].rpartition(",")[2].strip() if forwarded_for else None
    if client is not None and client[0] != last:
        forwarded_for.append(client[0])
    if forwarded_for:
        metadata.append(("x-forwarded-for", ", ".join(forwarded_for)))
    return metadata


def accepts_trailers(headers: list[tuple[bytes, bytes]]) -> bool:
    """requestAcceptsTrailers: the request's TE header mentions "trailers"."""
    return any(name.lower() == b"te" and b"trailers" in value.lower() for name, value in headers)


def request_timeout(headers: list[tuple[bytes, bytes]]) -> float | None:
    """The first `Grpc-Timeout` header (e.g. "10S", "250m") in seconds: None for no deadline, and a
    negative number for one already past, which the call answers with DEADLINE_EXCEEDED."""
    for name, value in headers:
        if name.lower() == b"grpc-timeout":
            text = value.decode("latin-1")
            return None if not text else timeout_seconds(text)
    return None


def timeout_seconds(text: str) -> float | None:
    """runtime.timeoutDecode: strconv.ParseInt(digits, 10, 64) times the unit, in Go's wrapping
    int64 nanoseconds, so "-1S" and an overflowing "99999999H" are deadlines already past; 0 is
    none (DefaultContextTimeout), and so is one beyond grpcio's range (68 years)."""
    unit = _TIMEOUT_UNITS.get(text[-1:]) if len(text) >= 2 else None
    digits = text[:-1]
    if unit is None or not _SIGNED.fullmatch(digits) or not -(2**63) <= int(digits) < 2**63:
        raise GatewayError(grpc.StatusCode.INVALID_ARGUMENT, f"invalid grpc-timeout: {text}")
    nanos = (int(digits) * unit + 2**63) % 2**64 - 2**63
    if nanos == 0 or nanos >= _MAX_TIMEOUT_NANOS:
        return None
    return nanos / 1e9


def response_headers(
    metadata: Iterable[Any] | None, prefix: str = METADATA_PREFIX
) -> list[tuple[bytes, bytes]]:
    """Server metadata as `Grpc-Metadata-<key>` response headers (or `Grpc-Trailer-<key>` trailers)."""
    headers: list[tuple[bytes, bytes]] = []
    for key, value in metadata or ():
        if key == "grpc-status-details-bin":
            continue  # already the error body's details
        raw = base64.b64encode(value) if isinstance(value, bytes) else value.encode("latin-1", "replace")
        headers.append(((prefix + key).encode("latin-1"), raw))
    return headers
