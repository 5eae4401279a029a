"""wsproxy: serve streaming HTTP/JSON APIs (grpc-gateway style) over WebSocket, as ASGI middleware."""

from wsproxy import closecodes
from wsproxy.errors import (
    ClientDisconnected,
    HandshakeRejected,
    MessageTooBig,
    UpstreamError,
    WSProxyError,
)
from wsproxy.middleware import WebSocketProxyMiddleware

__version__ = "0.1.0"

__all__ = [
    "ClientDisconnected",
    "HandshakeRejected",
    "MessageTooBig",
    "UpstreamError",
    "WSProxyError",
    "WebSocketProxyMiddleware",
    "__version__",
    "closecodes",
]
