"""The EchoService servicers the gateway tests serve: generators, and read/write style (context.read/write).

Echo's message picks a context feature (metadata, abort, codes, deadlines, peer...); see `GeneratorStyle.Echo`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from example_service.proto.example.v1 import echo_pb2, echo_pb2_grpc

SERVICE = echo_pb2.DESCRIPTOR.services_by_name["EchoService"]
Context = grpc.aio.ServicerContext[Any, Any]
EOF: Any = grpc.aio.EOF  # type: ignore[attr-defined]


class GeneratorStyle(echo_pb2_grpc.EchoServiceServicer):  # type: ignore[misc]
    """Streams as async generators and request iterators; Echo's message picks a context feature."""

    def __init__(self) -> None:
        self.ended: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()

    def _watch(self, name: str, context: Context) -> None:
        context.add_done_callback(lambda ctx: self.ended.put_nowait((name, ctx.cancelled())))  # type: ignore[arg-type]

    async def Echo(self, request: Any, context: Context) -> Any:
        text = request.message
        if text == "headers":
            await context.send_initial_metadata((("x-initial", "one"), ("x-raw-bin", b"\x00\xff")))
            context.set_trailing_metadata((("x-trailer", "t"),))
        elif text == "abort after headers":
            await context.send_initial_metadata((("x-initial", "two"),))
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not yours")
        elif text == "boom":
            raise ValueError("boom")
        elif text == "boom with code":
            context.set_code(grpc.StatusCode.RESOURCE_EXHAUSTED)
            raise RuntimeError("quota")
        elif text == "set code":
            context.set_code(grpc.StatusCode.NOT_FOUND)
            context.set_details("no such echo")
            return None
        elif text == "slow":
            self._watch("Echo", context)
            await asyncio.sleep(30)
        elif text == "time remaining":
            remaining = context.time_remaining()
            text = "none" if remaining is None or remaining > 1e6 else str(round(remaining))
        elif text == "peer":
            text = context.peer().rpartition(":")[0] if context.peer().count(":") > 1 else context.peer()
        elif text == "metadata":
            keys = sorted(key for key, _ in context.invocation_metadata() or () if key != "user-agent")
            text = ",".join(keys)
        elif text == "raise cancelled":
            raise asyncio.CancelledError
        elif text == "return wrong type":
            return "not a message"
        return echo_pb2.EchoResponse(message=text)

    async def Ticker(self, request: Any, context: Context) -> AsyncIterator[Any]:
        self._watch("Ticker", context)
        for seq in range(request.count):
            if seq:
                await asyncio.sleep(request.interval_ms / 1000)
            yield echo_pb2.Tick(seq=seq)
        if request.interval_ms == 1:
            await context.abort(grpc.StatusCode.OUT_OF_RANGE, "past the end")
        if request.interval_ms == 2:
            raise RuntimeError("ticker broke")

    async def Sum(self, request_iterator: AsyncIterator[Any], context: Context) -> Any:
        values = [request.value async for request in request_iterator]
        return echo_pb2.SumResponse(total=sum(values), count=len(values))

    async def Chat(self, request_iterator: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
        self._watch("Chat", context)
        reply = echo_pb2.ChatReply()  # reused on purpose: each reply is sent as it was when yielded
        async for message in request_iterator:
            reply.text = message.text
            yield reply
            reply.seq += 1


class ReadWriteStyle(GeneratorStyle):
    """The same streams written with context.read() and context.write()."""

    async def Ticker(self, request: Any, context: Context) -> None:  # type: ignore[override]
        self._watch("Ticker", context)
        for seq in range(request.count):
            if seq:
                await asyncio.sleep(request.interval_ms / 1000)
            await context.write(echo_pb2.Tick(seq=seq))
        if request.interval_ms == 1:
            await context.abort(grpc.StatusCode.OUT_OF_RANGE, "past the end")
        if request.interval_ms == 2:
            raise RuntimeError("ticker broke")

    async def Sum(self, request_iterator: AsyncIterator[Any], context: Context) -> Any:
        values = []
        while (request := await context.read()) is not EOF:
            values.append(request.value)
        return echo_pb2.SumResponse(total=sum(values), count=len(values))

    async def Chat(self, request_iterator: AsyncIterator[Any], context: Context) -> None:  # type: ignore[override]
        self._watch("Chat", context)
        reply = echo_pb2.ChatReply()
        while (message := await context.read()) is not EOF:
            reply.text = message.text
            await context.write(reply)
            reply.seq += 1


STYLES = {"generators": GeneratorStyle, "read/write": ReadWriteStyle}
