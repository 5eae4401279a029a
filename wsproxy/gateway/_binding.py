"""Where the gateway's calls go: a binding makes one grpc.aio-style multicallable per route.

Theory of operation: the gateway never talks to a channel directly. For each route it asks its
binding for a multicallable of the route's kind (unary_unary, unary_stream, stream_unary,
stream_stream) and later invokes it exactly as it would invoke a grpc.aio one:
`call = multicallable([request], metadata=..., timeout=...)`, then `await call` or
`async for response in call`, `await call.write(request)`, `await call.done_writing()`,
`await call.initial_metadata()`, `await call.trailing_metadata()`, `call.cancel()`; failures are
raised as `grpc.aio.AioRpcError`. `ChannelBinding` hands out a grpc.aio channel's own
multicallables; `InProcessBinding` (in `_inprocess.py`) calls a servicer in this process.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import grpc
from google.protobuf.message import Message

from wsproxy.gateway._routes import Kind, Route


@runtime_checkable
class Binding(Protocol):
    def multicallable(self, route: Route, request_class: type[Message], response_class: type[Message]) -> Any:
        """A grpc.aio multicallable of `route.kind` for `route.grpc_path`."""


class ChannelBinding:
    """Calls over a grpc.aio channel: protobuf on the wire, the servicer anywhere."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel

    def multicallable(self, route: Route, request_class: type[Message], response_class: type[Message]) -> Any:
        factory = {
            Kind.UNARY: self.channel.unary_unary,
            Kind.SERVER_STREAMING: self.channel.unary_stream,
            Kind.CLIENT_STREAMING: self.channel.stream_unary,
            Kind.BIDI_STREAMING: self.channel.stream_stream,
        }[route.kind]
        return factory(
            route.grpc_path,
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )


def as_binding(target: grpc.aio.Channel | Binding) -> Binding:
    """A binding as is; a grpc.aio channel wrapped in a ChannelBinding."""
    return target if isinstance(target, Binding) else ChannelBinding(target)
