"""The one interface `UpstreamApp` drives, whatever the transport: a call in flight.

A call is one request/response exchange on an HTTP/1.1 connection or an HTTP/2 stream. The app
writes the body with `send_body`/`end_body` in one task while it reads response events with
`next_event` in another, so both directions flow at once. `release` ends the call: a transport
reuses its connection only when both messages ended cleanly, and otherwise closes it (HTTP/1.1)
or resets the stream (HTTP/2 RST_STREAM CANCEL).

Transport failures are raised as the exceptions in `wsproxy.upstream._errors` or OSError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ResponseHead:
    status: int
    headers: list[tuple[bytes, bytes]]


class UpstreamCall(Protocol):
    async def send_body(self, data: bytes) -> None:
        """Send a piece of the request body, waiting while the upstream (or its window) is full."""

    async def end_body(self) -> None:
        """End the request body."""

    async def finish_body(self, data: bytes) -> None:
        """Send the last piece of the request body and end it, at once where the protocol allows."""

    async def next_event(self, timeout: float | None) -> ResponseHead | bytes | None:
        """The response head, then body chunks, then None at the end of the response."""

    def release(self) -> None:
        """The call is over: keep the connection for reuse if it ended cleanly, else close/reset."""

    @property
    def reused(self) -> bool:
        """The call went out on a connection an earlier call had used (which the server may have closed)."""
