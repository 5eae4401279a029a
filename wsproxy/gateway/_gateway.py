"""The ASGI HTTP/JSON -> gRPC gateway (grpc-gateway v2 compatible on the wire).

Theory of operation: a request is routed by its method and raw path to a gRPC method; unary and
server-streaming calls get one request message built from the first JSON value of the body (if
the route takes a body), the path variables and the query; client-streaming and bidi calls get one
request message per JSON value of the body, written as the values arrive. Two tasks then run side
by side: one answers from the call (bare message, `{"result": ...}` lines, or a status error), the
other feeds the body to the call and afterwards watches for the client leaving, which cancels the
call. Whichever ends first decides the other's fate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message

from wsproxy.gateway._binding import Binding, as_binding
from wsproxy.gateway._fastjson import FastJSON
from wsproxy.gateway._fields import FieldError, is_shadowed, merge_json, set_from_strings
from wsproxy.gateway._io import ClientGone, RequestReader, ResponseWriter
from wsproxy.gateway._metadata import request_metadata, request_timeout, response_headers
from wsproxy.gateway._routes import Route, service_routes
from wsproxy.gateway._status import GatewayError, http_status, rpc_error_body
from wsproxy.gateway._types import Receive, Scope, Send

# Built once: json.dumps with options builds a new encoder per call (1.6 µs of a 4 µs dumps).
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class _Endpoint:
    route: Route
    request_class: type[Message]
    call: Any  # a grpc.aio multicallable of the route's kind


class Gateway:
    """ASGI app translating HTTP/JSON requests into gRPC calls.

    Args:
        channel: where the gRPC services run: a grpc.aio channel (create it inside the running
            event loop), or a binding such as `InProcessBinding` that calls servicers in this process.
        services: service descriptors (`my_pb2.DESCRIPTOR.services_by_name["MyService"]`) or full
            names ("my.v1.MyService") found in the default descriptor pool; every method with a
            `google.api.http` option becomes a route.
        max_message_size: the longest accepted JSON value in a request body, in bytes.
        emit_unpopulated: print fields holding default values (grpc-gateway v2's default).
        use_proto_names: print proto field names instead of lowerCamelCase JSON names.
    """

    def __init__(
        self,
        channel: grpc.aio.Channel | Binding,
        services: Iterable[ServiceDescriptor | str],
        *,
        max_message_size: int = 4 * 1024 * 1024,
        emit_unpopulated: bool = True,
        use_proto_names: bool = False,
    ) -> None:
        self._max_message_size = max_message_size
        self._emit_unpopulated = emit_unpopulated
        self._use_proto_names = use_proto_names
        self._fast = FastJSON(use_proto_names=use_proto_names)  # json_format's output, faster, for flat types
        self._endpoints: list[_Endpoint] = []
        binding = as_binding(channel)
        pool = descriptor_pool.Default()
        for service in services:
            descriptor = pool.FindServiceByName(service) if isinstance(service, str) else service
            for route in service_routes(descriptor):
                self._endpoints.append(self._endpoint(binding, route))

    @property
    def routes(self) -> list[Route]:
        return [endpoint.route for endpoint in self._endpoints]

    @staticmethod
    def _endpoint(binding: Binding, route: Route) -> _Endpoint:
        request_class = message_factory.GetMessageClass(route.method.input_type)
        response_class = message_factory.GetMessageClass(route.method.output_type)
        call = binding.multicallable(route, request_class, response_class)
        return _Endpoint(route, request_class, call)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008, "reason": "HTTP/JSON endpoint"})
            return
        writer = ResponseWriter(send, self._encode)
        try:
            endpoint, path_params = self._match(scope)
            await self._handle(endpoint, path_params, scope, receive, writer)
        except GatewayError as error:
            await writer.error(error.body(), error.http_status, [])
        except ClientGone:
            pass

    def _match(self, scope: Scope) -> tuple[_Endpoint, dict[str, str]]:
        raw = scope.get("raw_path")
        path = raw.decode("latin-1").partition("?")[0] if raw else quote(scope["path"])
        path_known = False
        for endpoint in self._endpoints:
            params = endpoint.route.path.match(path)
            if params is not None:
                if endpoint.route.http_method == scope["method"]:
                    return endpoint, params
                path_known = True
        # A fresh exception each time: a module-level instance would keep the last request's frames
        # (and its whole stream) alive through its __traceback__. grpc-gateway answers a known path
        # with the wrong method with code UNIMPLEMENTED but HTTP 405.
        if path_known:
            raise GatewayError(grpc.StatusCode.UNIMPLEMENTED, "Method Not Allowed", http_status=405)
        raise GatewayError(grpc.StatusCode.NOT_FOUND, "Not Found")

    async def _handle(
        self,
        endpoint: _Endpoint,
        path_params: dict[str, str],
        scope: Scope,
        receive: Receive,
        writer: ResponseWriter,
    ) -> None:
        headers = list(scope.get("headers", []))
        options = {
            "metadata": request_metadata(headers, scope.get("client")),
            "timeout": request_timeout(headers),
        }
        reader = RequestReader(receive, max_value_size=self._max_message_size)
        route = endpoint.route
        if route.kind.streams_requests:
            call = endpoint.call(**options)
            feed: Coroutine[Any, Any, None] = self._feed(endpoint, reader, call)
        else:
            request = await self._unary_request(endpoint, path_params, scope, reader)
            call = endpoint.call(request, **options)
            feed = reader.wait_disconnect()
        answer = (
            self._answer_stream(call, writer) if route.kind.streams_responses else self._answer(call, writer)
        )
        await _supervise(call, feed, answer, writer)

    async def _unary_request(
        self, endpoint: _Endpoint, path_params: dict[str, str], scope: Scope, reader: RequestReader
    ) -> Message:
        route = endpoint.route
        request = endpoint.request_class()
        try:
            if route.body:
                value = await reader.next_value()
                if value is not None:
                    merge_json(request, route.body, value)
            for field_path, text in path_params.items():
                set_from_strings(request, field_path, [text], strict=True)
            if route.body != "*":
                taken = [*path_params, route.body] if route.body else list(path_params)
                for name, values in _query(scope).items():
                    if not is_shadowed(name, taken):
                        set_from_strings(request, name, values, strict=False)
        except FieldError as exc:
            raise GatewayError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        return request

    async def _feed(self, endpoint: _Endpoint, reader: RequestReader, call: Any) -> None:
        """Write each JSON value of the body to the call, then wait for the client to leave."""
        while (value := await reader.next_value()) is not None:
            request = endpoint.request_class()
            try:
                if not self._fast.decode_into(request, value):
                    merge_json(request, "*", value)
            except FieldError as exc:
                raise GatewayError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
            try:
                await call.write(request)
            except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError):
                break  # the server already ended the call; its answer says how
        else:
            with contextlib.suppress(grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError):
                await call.done_writing()
        await reader.wait_disconnect()

    async def _answer(self, call: Any, writer: ResponseWriter) -> None:
        try:
            response = await call
            headers = response_headers(await call.initial_metadata())
        except grpc.aio.AioRpcError as error:
            await self._error(error, writer)
            return
        await writer.message(response, headers)

    async def _answer_stream(self, call: Any, writer: ResponseWriter) -> None:
        headers: list[tuple[bytes, bytes]] = []
        try:
            headers = response_headers(await call.initial_metadata())
            async for response in call:
                await writer.stream_item(response, headers)
        except grpc.aio.AioRpcError as error:
            await self._error(error, writer)
            return
        await writer.end_stream(headers)

    @staticmethod
    async def _error(error: grpc.aio.AioRpcError, writer: ResponseWriter) -> None:
        headers = response_headers(error.initial_metadata())
        await writer.error(rpc_error_body(error), http_status(error.code()), headers)

    def _encode(self, message: Message) -> bytes:
        as_dict = self._fast.to_json(message) if self._emit_unpopulated else None
        if as_dict is None:
            as_dict = json_format.MessageToDict(
                message,
                always_print_fields_with_no_presence=self._emit_unpopulated,
                preserving_proto_field_name=self._use_proto_names,
            )
        return _JSON.encode(as_dict).encode()


async def _supervise(
    call: Any,
    feed: Coroutine[Any, Any, None],
    answer: Coroutine[Any, Any, None],
    writer: ResponseWriter,
) -> None:
    """Run the body feed and the answer together; a client that leaves cancels the call."""
    feeding = asyncio.create_task(feed)
    answering = asyncio.create_task(answer)
    try:
        done, _ = await asyncio.wait({feeding, answering}, return_when=asyncio.FIRST_COMPLETED)
        if answering in done:
            answering.result()
            return
        problem = feeding.exception()
        if isinstance(problem, GatewayError):
            # A bad request value mid-stream: stop the call, then say why.
            call.cancel()
            answering.cancel()
            await asyncio.gather(answering, return_exceptions=True)
            await writer.error(problem.body(), problem.http_status, [])
        elif problem is not None and not isinstance(problem, ClientGone):
            raise problem
        # Otherwise the client went away: the finally block cancels the call.
    finally:
        call.cancel()  # no effect on a finished call
        for task in (feeding, answering):
            task.cancel()
        await asyncio.gather(feeding, answering, return_exceptions=True)


def _query(scope: Scope) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True):
        grouped.setdefault(name, []).append(value)
    return grouped


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
