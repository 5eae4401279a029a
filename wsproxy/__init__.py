"""wsproxy: serve streaming HTTP/JSON APIs (grpc-gateway style) over WebSocket, as ASGI middleware.

The clients live in `wsproxy.client`; the gRPC gateway, which needs the `grpc` extra, in `wsproxy.gateway`;
the browser module, served by `static_files()`, in `wsproxy/static/`.
"""

from wsproxy import closecodes
from wsproxy.errors import (
    ClientDisconnected,
    HandshakeRejected,
    MessageTooBig,
    RequestBodyNotAllowed,
    UpstreamError,
    WSProxyError,
)
from wsproxy.middleware import WebSocketProxyMiddleware, run_stream
from wsproxy.operations import QueryValuesHidden
from wsproxy.static import static_dir, static_files
from wsproxy.stream import StreamSettings, StreamStats
from wsproxy.upstream import UpstreamApp

__version__ = "0.1.0"

__all__ = [
    "ClientDisconnected",
    "HandshakeRejected",
    "MessageTooBig",
    "QueryValuesHidden",
    "RequestBodyNotAllowed",
    "StreamSettings",
    "StreamStats",
    "UpstreamApp",
    "UpstreamError",
    "WSProxyError",
    "WebSocketProxyMiddleware",
    "__version__",
    "closecodes",
    "run_stream",
    "static_dir",
    "static_files",
]
