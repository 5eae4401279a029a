"""Exceptions raised by wsproxy, each tied to the close code the client sees."""

from __future__ import annotations


class WSProxyError(Exception):
    """Base class of wsproxy's own errors."""


class ClientDisconnected(OSError):
    """Raised into the wrapped app by `send()` once the WebSocket client has gone away.

    An OSError subclass, as the ASGI spec asks of servers, so frameworks that already handle a
    vanished HTTP client (Starlette's StreamingResponse) handle this one too.
    """


class MessageTooBig(WSProxyError):
    """An incoming message or an outgoing line exceeded its size limit (close 1009)."""


class UpstreamError(WSProxyError):
    """The remote upstream failed after its response had started (close 1014 bad gateway)."""


class HandshakeRejected(WSProxyError):
    """The WebSocket handshake cannot become an HTTP request; answered with `status` before accept."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RequestBodyNotAllowed(WSProxyError):
    """A GET or HEAD call (no request body upstream) was given body data (close 1008)."""
