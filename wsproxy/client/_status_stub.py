"""THROWAWAY stub of wsproxy/stream/_status.py (the lead's, per STATUS_SPEC.md); deleted at the merge."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

SUBPROTOCOL = "wsproxy.status.v1"
STATUS_FRAME = 0x14
TRAILERS_FRAME = 0x15


@dataclass(frozen=True, slots=True)
class Control:
    kind: Literal["status", "trailers"]
    status: int | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)


def encode_status(status: int, headers: list[tuple[str, str]]) -> bytes:
    return json.dumps({"type": "status", "status": status, "headers": [list(h) for h in headers]}).encode()


def encode_trailers(headers: list[tuple[str, str]]) -> bytes:
    return json.dumps({"type": "trailers", "headers": [list(h) for h in headers]}).encode()


def parse_control(payload: bytes) -> Control | None:
    try:
        body = json.loads(payload.decode())
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    headers = [(str(n), str(v)) for n, v in body.get("headers", [])]
    if body.get("type") == "status":
        return Control("status", int(body["status"]), headers)
    if body.get("type") == "trailers":
        return Control("trailers", None, headers)
    return None
