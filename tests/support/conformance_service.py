"""The test-only ConformanceService (tests/support/protos/conformance) served by a real grpcio server behind
the gateway on a real uvicorn, in a background thread with its own event loop, so table-driven tests
can call it synchronously. The .proto is compiled at import time by grpcio-tools.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import uvicorn
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]

from tests.support.servers import Running, bind_loopback
from wsproxy.gateway import Gateway, InProcessBinding

sys.path.insert(0, str(Path(__file__).parent / "protos"))
_protos_and_services: Any = grpc.protos_and_services
conformance_pb2, conformance_pb2_grpc = _protos_and_services("conformance/v1/conformance.proto")
SERVICE = conformance_pb2.DESCRIPTOR.services_by_name["ConformanceService"]
Context = grpc.aio.ServicerContext[Any, Any]
_CODES = {code.value[0]: code for code in grpc.StatusCode}


def _pairs(items: Any) -> tuple[tuple[str, str | bytes], ...]:
    pairs: list[tuple[str, str | bytes]] = []
    for item in items:
        key, _, value = item.partition("=")
        pairs.append((key, base64.b64decode(value) if key.endswith("-bin") else value))
    return tuple(pairs)


class Conformance(conformance_pb2_grpc.ConformanceServiceServicer):  # type: ignore[name-defined,misc]
    async def Echo(self, request: Any, context: Context) -> Any:
        return request

    async def Me(self, request: Any, context: Context) -> Any:
        return conformance_pb2.Everything(string_value="Me")

    async def Update(self, request: Any, context: Context) -> Any:
        # The mask's paths exactly as the gateway passed them (JSON would camelCase them).
        request.thing.display_name = ",".join(request.update_mask.paths)
        request.ClearField("update_mask")
        return request

    async def Stream(self, request: Any, context: Context) -> AsyncIterator[Any]:
        for index in range(request.count):
            reply = conformance_pb2.Everything()
            reply.CopyFrom(request.template)
            reply.int32_value = index
            yield reply
        if request.fail_code:
            await context.abort(_CODES[request.fail_code], f"failed after {request.count}")

    async def Chat(self, request_iterator: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
        index = 0
        async for request in request_iterator:
            request.int64_value = index
            index += 1
            yield request

    async def Collect(self, request_iterator: AsyncIterator[Any], context: Context) -> Any:
        texts = [request.string_value async for request in request_iterator]
        return conformance_pb2.Everything(string_value=",".join(texts), int64_value=len(texts))

    async def Metadata(self, request: Any, context: Context) -> Any:
        received = []
        for key, value in context.invocation_metadata() or ():
            shown = base64.b64encode(value).decode() if isinstance(value, bytes) else value
            received.append(f"{key}={shown}")
        if request.reply_headers:
            await context.send_initial_metadata(_pairs(request.reply_headers))
        if request.reply_trailers:
            context.set_trailing_metadata(_pairs(request.reply_trailers))
        if request.fail_code:
            await context.abort(_CODES[request.fail_code], "metadata failure")
        return conformance_pb2.MetadataReply(received=received)

    async def Fail(self, request: Any, context: Context) -> Any:
        trailers: tuple[tuple[str, bytes], ...] = ()
        if request.with_details:
            detail = any_pb2.Any()
            detail.Pack(error_details_pb2.ErrorInfo(reason="TEST_REASON", domain="conformance.test"))
            status = status_pb2.Status(code=request.code, message=request.message, details=[detail])
            trailers = (("grpc-status-details-bin", status.SerializeToString()),)
        await context.abort(_CODES[request.code], request.message, trailing_metadata=trailers)


@contextlib.asynccontextmanager
async def grpc_backend() -> AsyncIterator[grpc.aio.Channel]:
    """The servicer on a loopback port, and a channel to it."""
    server = grpc.aio.server()
    conformance_pb2_grpc.add_ConformanceServiceServicer_to_server(Conformance(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        await server.stop(grace=None)


@contextlib.asynccontextmanager
async def in_process_backend() -> AsyncIterator[InProcessBinding]:
    """The servicer registered on an in-process binding (no gRPC server, no channel)."""
    binding = InProcessBinding()
    conformance_pb2_grpc.add_ConformanceServiceServicer_to_server(Conformance(), binding)
    yield binding


@contextlib.contextmanager
def serve_gateway_in_thread(*, binding: str = "channel", **gateway_options: Any) -> Iterator[Running]:
    """grpcio server + Gateway on uvicorn (or the servicer in-process), all in one background thread and loop.

    uvicorn's proxy_headers is off, so the client address the gateway sees is the TCP peer's, and
    its HTTP parser is h11, since httptools refuses custom methods (PURGE) before the app sees them.
    """
    sock = bind_loopback()
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        backend = in_process_backend() if binding == "inprocess" else grpc_backend()
        async with backend as target:
            gateway = Gateway(target, [SERVICE], **gateway_options)
            server = uvicorn.Server(
                uvicorn.Config(gateway, log_level="warning", lifespan="off", proxy_headers=False, http="h11")
            )
            state["server"] = server
            task = asyncio.create_task(server.serve(sockets=[sock]))
            while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn has no started event
                await asyncio.sleep(0.01)
            ready.set()
            await task

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # reported to the waiting test below
            state["error"] = exc
        finally:
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        if not ready.wait(timeout=30) or "error" in state:
            raise RuntimeError(f"the conformance server did not start: {state.get('error')!r}")
        yield Running("127.0.0.1", sock.getsockname()[1])
    finally:
        if "server" in state:
            state["server"].should_exit = True
        thread.join(timeout=10)
        sock.close()
        if thread.is_alive():
            raise RuntimeError("the conformance server did not stop within 10 s")


# protojson with EmitUnpopulated (runtime/marshaler_registry.go defaultMarshaler): every field in
# declaration order (double before float here, as declared), unset message fields null, int64 as
# strings, the unset oneof and the unset proto3 `optional` left out.
EMPTY: dict[str, Any] = {
    "stringValue": "",
    "doubleValue": 0,
    "floatValue": 0,
    "int32Value": 0,
    "int64Value": "0",
    "uint32Value": 0,
    "uint64Value": "0",
    "sint32Value": 0,
    "sint64Value": "0",
    "fixed32Value": 0,
    "fixed64Value": "0",
    "sfixed32Value": 0,
    "sfixed64Value": "0",
    "boolValue": False,
    "bytesValue": "",
    "color": "COLOR_UNSPECIFIED",
    "nested": None,
    "repeatedString": [],
    "repeatedInt32": [],
    "repeatedColor": [],
    "repeatedNested": [],
    "labels": {},
    "numbers": {},
    "timestamp": None,
    "duration": None,
    "fieldMask": None,
    "int32Wrapper": None,
    "int64Wrapper": None,
    "stringWrapper": None,
    "boolWrapper": None,
    "doubleWrapper": None,
    "bytesWrapper": None,
    "structValue": None,
    "value": None,
}
UNPRINTABLE = {"code": 2, "message": "the response has no JSON form", "details": []}
