"""A generic HTTP/JSON -> gRPC gateway (grpc-gateway v2 compatible) as an ASGI app.

Needs the `grpc` extra (grpcio, protobuf, googleapis-common-protos): `pip install wsproxy[grpc]`.
Put `wsproxy.WebSocketProxyMiddleware` in front of it to serve the same API over WebSocket.
"""

from wsproxy.gateway._binding import Binding, ChannelBinding
from wsproxy.gateway._gateway import Gateway
from wsproxy.gateway._inprocess import HandlerCallDetails, InProcessBinding, InProcessCall
from wsproxy.gateway._openapi import openapi_document
from wsproxy.gateway._routes import Kind, PathTemplate, Route, TemplateError, compile_template
from wsproxy.gateway._servicer_context import InProcessServicerContext
from wsproxy.gateway._status import http_status

__all__ = [
    "Binding",
    "ChannelBinding",
    "Gateway",
    "HandlerCallDetails",
    "InProcessBinding",
    "InProcessCall",
    "InProcessServicerContext",
    "Kind",
    "PathTemplate",
    "Route",
    "TemplateError",
    "compile_template",
    "http_status",
    "openapi_document",
]
