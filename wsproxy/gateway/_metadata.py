"""HTTP request headers -> gRPC metadata, and gRPC response metadata -> HTTP headers (grpc-gateway rules)."""

from __future__ import annotations

import base64
import binascii
import re

import grpc

from wsproxy.gateway._status import GatewayError

METADATA_PREFIX = "grpc-metadata-"
# runtime.isPermanentHTTPHeader: forwarded as "grpcgateway-<name>".
_PERMANENT = frozenset(
    [
        "accept",
        "accept-charset",
        "accept-language",
        "accept-ranges",
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
_TIMEOUT = re.compile(r"([0-9]{1,8})([HMSmun])")
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}

Metadata = list[tuple[str, str | bytes]]


def _printable(value: str) -> bool:
    return value.isascii() and value.isprintable()


def request_metadata(headers: list[tuple[bytes, bytes]], client: tuple[str, int] | None) -> Metadata:
    metadata: Metadata = []
    for raw_name, raw_value in headers:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name == "authorization":
            key = name
        elif name.startswith(METADATA_PREFIX):
            key = name[len(METADATA_PREFIX) :]
        elif name in _PERMANENT:
            key = "grpcgateway-" + name
        elif name == "host":
            key = "x-forwarded-host"
        else:
            continue
        if key.endswith("-bin"):
            try:
                metadata.append((key, base64.b64decode(value + "=" * (-len(value) % 4))))
            except (binascii.Error, ValueError):
                raise GatewayError(grpc.StatusCode.INVALID_ARGUMENT, f"header {name} is not base64") from None
        elif key and _printable(value):
            metadata.append((key, value))
    if client is not None:
        metadata.append(("x-forwarded-for", client[0]))
    return metadata


def request_timeout(headers: list[tuple[bytes, bytes]]) -> float | None:
    """The `Grpc-Timeout` header (e.g. "10S", "250m") in seconds."""
    for name, value in headers:
        if name.lower() == b"grpc-timeout":
            found = _TIMEOUT.fullmatch(value.decode("latin-1"))
            if found is None:
                raise GatewayError(grpc.StatusCode.INVALID_ARGUMENT, f"bad Grpc-Timeout {value!r}")
            return int(found.group(1)) * _TIMEOUT_UNITS[found.group(2)]
    return None


def response_headers(metadata: grpc.aio.Metadata | None) -> list[tuple[bytes, bytes]]:
    """Server header metadata as `Grpc-Metadata-<key>` response headers."""
    headers: list[tuple[bytes, bytes]] = []
    for key, value in metadata or ():
        raw = base64.b64encode(value) if isinstance(value, bytes) else value.encode("latin-1", "replace")
        headers.append(((METADATA_PREFIX + key).encode("latin-1"), raw))
    return headers
