"""The EchoService servicer and a grpc.aio server for it on a loopback port."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from example_service.proto.example.v1 import echo_pb2, echo_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]

MAX_TICKS = 1000
MAX_INTERVAL_MS = 60_000


class EchoServicer(echo_pb2_grpc.EchoServiceServicer):  # type: ignore[misc]  # generated, untyped
    """One RPC of each kind. `cancelled` records the RPCs whose caller went away (for tests)."""

    def __init__(self) -> None:
        self.cancelled: asyncio.Queue[str] = asyncio.Queue()

    async def Echo(self, request: echo_pb2.EchoRequest, context: Context) -> echo_pb2.EchoResponse:
        if not request.message:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "message must not be empty")
        return echo_pb2.EchoResponse(message=request.message)

    async def Ticker(self, request: echo_pb2.TickerRequest, context: Context) -> AsyncIterator[echo_pb2.Tick]:
        if not 1 <= request.count <= MAX_TICKS:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"count must be 1..{MAX_TICKS}")
        if not 0 <= request.interval_ms <= MAX_INTERVAL_MS:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"interval_ms must be 0..{MAX_INTERVAL_MS}")
        try:
            for seq in range(request.count):
                if seq:
                    await asyncio.sleep(request.interval_ms / 1000)
                now = timestamp_pb2.Timestamp()
                now.GetCurrentTime()
                yield echo_pb2.Tick(seq=seq, time=now)
        except asyncio.CancelledError:
            self.cancelled.put_nowait("Ticker")
            raise

    async def Sum(
        self, request_iterator: AsyncIterator[echo_pb2.SumRequest], context: Context
    ) -> echo_pb2.SumResponse:
        total = count = 0
        async for request in request_iterator:
            total += request.value
            count += 1
        return echo_pb2.SumResponse(total=total, count=count)

    async def Chat(
        self, request_iterator: AsyncIterator[echo_pb2.ChatMessage], context: Context
    ) -> AsyncIterator[echo_pb2.ChatReply]:
        seq = 0
        async for message in request_iterator:
            yield echo_pb2.ChatReply(text=message.text, seq=seq)
            seq += 1

    async def WhoAmI(self, request: echo_pb2.WhoAmIRequest, context: Context) -> echo_pb2.WhoAmIResponse:
        metadata = dict(context.invocation_metadata() or ())
        authorization = metadata.get("authorization", "")
        return echo_pb2.WhoAmIResponse(authorization=str(authorization))


@contextlib.asynccontextmanager
async def grpc_server(
    servicer: EchoServicer | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[tuple[grpc.aio.Server, int]]:
    """A running grpc.aio server with EchoService; yields it and its port (port 0 picks a free one)."""
    server = grpc.aio.server()
    echo_pb2_grpc.add_EchoServiceServicer_to_server(servicer or EchoServicer(), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot listen for gRPC on {host}:{port}")
    await server.start()
    try:
        yield server, bound
    finally:
        await server.stop(grace=None)
