"""Clients for services behind wsproxy, asyncio, built on `websockets`.

One call per WebSocket (`connect`, `unary`, `server_stream`, `client_stream`, `bidi`):

    async with connect("ws://host/v1/chat", method="POST", token=jwt) as call:
        await call.send({"text": "hi"})
        await call.close_send()          # the half-close: the request body ends
        async for reply in call:         # {"result": x} lines arrive as x
            ...

Many calls on one WebSocket (the `wsproxy.mux.v1` subprotocol), with the same call API:

    async with connect_mux("ws://host", token=jwt) as conn:
        echoed = await conn.unary("/v1/echo", {"message": "hi"}, method="POST")
        async with conn.connect("/v1/chat", method="POST") as call:
            ...

A call ends normally (close 1000) or raises a CallError subclass: HTTPStatusError for the app's
HTTP error status (close 4000 + status, with the error body), StreamError for an {"error": ...}
line, and one class per transport outcome (1008, 1009, 1011, 1013, 1014, dropped).

Both clients ask for the `wsproxy.status.v1` contract by default (`status=False` turns it off): a
proxy that speaks it sends the status and headers first (`call.status`, `call.headers`,
`await call.initial_metadata()`) and the trailers last (`call.trailers`), and an error body is
never yielded as a message.
"""

from wsproxy.client._errors import (
    BadGatewayError,
    CallError,
    ConnectError,
    ConnectionLostError,
    DeadlineExceededError,
    HTTPStatusError,
    MessageTooBigError,
    PolicyViolationError,
    ProxyInternalError,
    StreamError,
    TryAgainLaterError,
    UnexpectedCloseError,
)
from wsproxy.client._multiplexed import MuxCall, MuxCallOptions, MuxConnection, connect_mux
from wsproxy.client._single import (
    Call,
    ConnectOptions,
    bidi,
    client_stream,
    close_of,
    connect,
    encode_message,
    server_stream,
    unary,
    with_method,
)

__all__ = [
    "BadGatewayError",
    "Call",
    "CallError",
    "ConnectError",
    "ConnectOptions",
    "ConnectionLostError",
    "DeadlineExceededError",
    "HTTPStatusError",
    "MessageTooBigError",
    "MuxCall",
    "MuxCallOptions",
    "MuxConnection",
    "PolicyViolationError",
    "ProxyInternalError",
    "StreamError",
    "TryAgainLaterError",
    "UnexpectedCloseError",
    "bidi",
    "client_stream",
    "close_of",
    "connect",
    "connect_mux",
    "encode_message",
    "server_stream",
    "unary",
    "with_method",
]
