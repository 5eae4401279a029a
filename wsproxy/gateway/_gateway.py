"""The ASGI HTTP/JSON -> gRPC gateway (grpc-gateway v2 compatible on the wire).

Theory of operation: a request is routed by its method and raw path (below `root_path` when the
gateway is mounted under a prefix: _mount) to a gRPC method; unary and
server-streaming calls get one request message built from the first JSON value of the body (if
the route takes a body), the path variables and the query; client-streaming and bidi calls get one
request message per JSON value of the body, written as the values arrive. Two tasks then run side
by side: one answers from the call (bare message, `{"result": ...}` lines, or a status error), the
other feeds the body to the call and afterwards watches for the client leaving, which cancels the
call. Whichever ends first decides the other's fate; the one exception is a bad value in a bidi
body, which half-closes the call and leaves an error for the answer to end the stream with.

What is parsed how lives beside this shell: _fields (path and query, Go's rules), _fieldmask (the
PATCH mask), _json_output (protojson's output, response_body), _metadata, _status, _io; _openapi
describes the same routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import grpc
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import FieldDescriptor, ServiceDescriptor
from google.protobuf.message import Message

from wsproxy.gateway._binding import Binding, as_binding
from wsproxy.gateway._fastjson import FastJSON
from wsproxy.gateway._fieldmask import fill_patch_mask, patch_mask_field
from wsproxy.gateway._fields import FieldError, merge_json, parse_query, populate_query, set_path_value
from wsproxy.gateway._io import JSON_HEADERS, ClientGone, RequestReader, ResponseWriter
from wsproxy.gateway._json_output import MessageEncoder
from wsproxy.gateway._metadata import (
    TRAILER_PREFIX,
    accepts_trailers,
    request_metadata,
    request_timeout,
    response_headers,
)
from wsproxy.gateway._mount import route_path
from wsproxy.gateway._openapi import openapi_document
from wsproxy.gateway._routes import NoRoute, Route, find_route, service_routes
from wsproxy.gateway._status import GatewayError, http_status, rpc_error_body
from wsproxy.gateway._types import Receive, Scope, Send


@dataclass(frozen=True)
class _Endpoint:
    route: Route
    request_class: type[Message]
    call: Any  # a grpc.aio multicallable of the route's kind
    patch_mask: FieldDescriptor | None = None  # the update mask a PATCH body fills when the query does not


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
        openapi_path: serve the OpenAPI 3.1 document of the routes at this path (GET); None: not served.
        openapi_info: the document's Info object (title, version, description...).
    """

    def __init__(
        self,
        channel: grpc.aio.Channel | Binding,
        services: Iterable[ServiceDescriptor | str],
        *,
        max_message_size: int = 4 * 1024 * 1024,
        emit_unpopulated: bool = True,
        use_proto_names: bool = False,
        openapi_path: str | None = None,
        openapi_info: Mapping[str, Any] | None = None,
    ) -> None:
        self._max_message_size = max_message_size
        self._use_proto_names = use_proto_names
        self._openapi_path = openapi_path
        self._openapi_info = openapi_info
        self._openapi_json: dict[str, bytes] = {}  # root_path -> the document served under it
        self._encoder = MessageEncoder(emit_unpopulated=emit_unpopulated, use_proto_names=use_proto_names)
        self._fast = FastJSON(use_proto_names=use_proto_names)  # request values, faster, same result
        self._endpoints: list[_Endpoint] = []
        binding = as_binding(channel)
        pool = descriptor_pool.Default()
        for service in services:
            descriptor = pool.FindServiceByName(service) if isinstance(service, str) else service
            for route in service_routes(descriptor):
                self._endpoints.append(self._endpoint(binding, route))
        self._routes = [endpoint.route for endpoint in self._endpoints]

    @property
    def routes(self) -> list[Route]:
        return [endpoint.route for endpoint in self._endpoints]

    def openapi(self, *, servers: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The OpenAPI 3.1 document of the routes (see wsproxy.gateway.openapi_document)."""
        return openapi_document(
            self.routes, info=self._openapi_info, servers=servers, use_proto_names=self._use_proto_names
        )

    @staticmethod
    def _endpoint(binding: Binding, route: Route) -> _Endpoint:
        request_class = message_factory.GetMessageClass(route.method.input_type)
        response_class = message_factory.GetMessageClass(route.method.output_type)
        call = binding.multicallable(route, request_class, response_class)
        patch_mask = None
        if route.http_method == "PATCH" and route.body not in ("", "*"):
            patch_mask = patch_mask_field(route.method.input_type)
        return _Endpoint(route, request_class, call, patch_mask)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008, "reason": "HTTP/JSON endpoint"})
            return
        path = route_path(scope)
        if (
            self._openapi_path is not None
            and unquote(path) == self._openapi_path
            and scope["method"] == "GET"
        ):
            await send({"type": "http.response.start", "status": 200, "headers": JSON_HEADERS})
            await send({"type": "http.response.body", "body": self._openapi_body(scope.get("root_path", ""))})
            return
        writer = ResponseWriter(send, self._encoder.encode)
        reader = RequestReader(receive, max_value_size=self._max_message_size)
        try:
            endpoint, path_params, form = await self._route(scope, path, reader)
            writer.encode = functools.partial(
                self._encoder.encode, response_body=endpoint.route.response_body
            )
            writer.trailers = accepts_trailers(scope.get("headers", [])) and "http.response.trailers" in (
                scope.get("extensions") or {}
            )
            await self._handle(endpoint, path_params, form, scope, reader, writer)
        except GatewayError as error:
            await writer.error(error.body(), error.http_status, [])
        except ClientGone:
            pass

    def _openapi_body(self, root_path: str) -> bytes:
        """The document as JSON; under a prefix, its server URL is the prefix (kept per prefix seen)."""
        body = self._openapi_json.get(root_path)
        if body is None:
            servers = [{"url": root_path.rstrip("/")}] if root_path.strip("/") else None
            body = json.dumps(self.openapi(servers=servers), ensure_ascii=False).encode()
            if len(self._openapi_json) < _OPENAPI_PREFIXES:
                self._openapi_json[root_path] = body
        return body

    async def _route(
        self, scope: Scope, path: str, reader: RequestReader
    ) -> tuple[_Endpoint, dict[str, str], list[tuple[str, str]] | None]:
        """The endpoint, its path values, and the form values of a form POST served by another method.

        As ServeMux.ServeHTTP: a POST of an `application/x-www-form-urlencoded` body
        (isPathLengthFallback) takes its method from `X-HTTP-Method-Override`, or else may be
        served by a GET route; its body is then read as a form, whose values come before the
        query's (http.Request.ParseForm), and the route sees no body.
        """
        headers = scope.get("headers", [])
        method = scope["method"]
        form_post = method == "POST" and _first_header(headers, b"content-type") == _FORM
        form = None
        override = _first_header(headers, b"x-http-method-override")
        if form_post and override:
            form = await self._read_form(scope, reader)
            method = override.decode("latin-1").upper()
            form_post = method == "POST"
        try:
            index, params = find_route(self._routes, method, path, form_fallback=form_post)
        except NoRoute as missing:
            # A fresh exception each time: a module-level instance would keep the last request's frames
            # (and its whole stream) alive through its __traceback__. grpc-gateway's routing error
            # handler turns a known path with the wrong method into UNIMPLEMENTED, hence HTTP 501.
            code = grpc.StatusCode.UNIMPLEMENTED if missing.method_not_allowed else grpc.StatusCode.NOT_FOUND
            raise GatewayError(code, str(missing)) from None
        endpoint = self._endpoints[index]
        if form is None and endpoint.route.http_method != method:  # the GET route a form POST fell back to
            form = await self._read_form(scope, reader)
        return endpoint, params, form

    async def _read_form(self, scope: Scope, reader: RequestReader) -> list[tuple[str, str]]:
        body = await reader.read_form(self._max_message_size)
        try:
            return parse_query(body) + parse_query(scope.get("query_string", b""))
        except FieldError as exc:
            raise GatewayError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None

    async def _handle(
        self,
        endpoint: _Endpoint,
        path_params: dict[str, str],
        form: list[tuple[str, str]] | None,
        scope: Scope,
        reader: RequestReader,
        writer: ResponseWriter,
    ) -> None:
        headers = list(scope.get("headers", []))
        timeout = request_timeout(headers)
        options = {"metadata": request_metadata(headers, scope.get("client")), "timeout": timeout}
        route = endpoint.route
        if route.kind.streams_requests:
            _check_deadline(timeout)
            call = endpoint.call(**options)
            feed: Coroutine[Any, Any, None] = self._feed(endpoint, reader, call, writer)
        else:
            request = await self._unary_request(endpoint, path_params, form, scope, reader)
            _check_deadline(timeout)
            call = endpoint.call(request, **options)
            feed = reader.wait_disconnect()
        answer = (
            self._answer_stream(call, writer) if route.kind.streams_responses else self._answer(call, writer)
        )
        await _supervise(call, feed, answer, writer)

    async def _unary_request(
        self,
        endpoint: _Endpoint,
        path_params: dict[str, str],
        form: list[tuple[str, str]] | None,
        scope: Scope,
        reader: RequestReader,
    ) -> Message:
        route = endpoint.route
        request = endpoint.request_class()
        try:
            value = await reader.next_value() if route.body else None
            if value is not None:
                merge_json(request, route.body, value)
            for field_path, text in path_params.items():
                set_path_value(request, field_path, text)
            if route.body != "*":
                query = form if form is not None else parse_query(scope.get("query_string", b""))
                populate_query(request, query, [*path_params, route.body])
            if endpoint.patch_mask is not None:
                fill_patch_mask(request, endpoint.patch_mask, route.body, value)
        except FieldError as exc:
            raise GatewayError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        return request

    async def _feed(
        self, endpoint: _Endpoint, reader: RequestReader, call: Any, writer: ResponseWriter
    ) -> None:
        """Write each JSON value of the body to the call, then wait for the client to leave.

        A bad value in a bidi call half-closes the call instead of cancelling it: the replies the
        server still sends go out, and the error is the stream's last line (grpc-gateway also
        half-closes, but drops the error silently).
        """
        while True:
            try:
                value = await reader.next_value()
                if value is None:
                    break
                request = endpoint.request_class()
                if not self._fast.decode_into(request, value):
                    merge_json(request, "*", value)
            except FieldError as exc:
                problem = GatewayError(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            except GatewayError as exc:
                problem = exc
            else:
                try:
                    await call.write(request)
                    continue
                except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError):
                    return await reader.wait_disconnect()  # the call already ended; its answer says how
            if not endpoint.route.kind.streams_responses:
                raise problem
            writer.pending_error = problem
            break
        with contextlib.suppress(grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError):
            await call.done_writing()
        await reader.wait_disconnect()

    async def _answer(self, call: Any, writer: ResponseWriter) -> None:
        try:
            response = await call
            headers = response_headers(await call.initial_metadata())
            trailers = response_headers(await call.trailing_metadata(), TRAILER_PREFIX)
        except grpc.aio.AioRpcError as error:
            await self._error(error, writer)
            return
        await writer.message(response, headers, trailers)

    async def _answer_stream(self, call: Any, writer: ResponseWriter) -> None:
        writer.streaming = True
        headers: list[tuple[bytes, bytes]] = []
        try:
            headers = response_headers(await call.initial_metadata())
            async for response in call:
                await writer.stream_item(response, headers)
        except grpc.aio.AioRpcError as error:
            if writer.pending_error is None:
                await self._error(error, writer)
                return
        if writer.pending_error is not None:
            problem = writer.pending_error
            await writer.error(problem.body(), problem.http_status, headers)
            return
        await writer.end_stream(headers)

    @staticmethod
    async def _error(error: grpc.aio.AioRpcError, writer: ResponseWriter) -> None:
        headers = response_headers(error.initial_metadata())
        trailers = response_headers(error.trailing_metadata(), TRAILER_PREFIX)
        await writer.error(rpc_error_body(error), http_status(error.code()), headers, trailers)


_FORM = b"application/x-www-form-urlencoded"
_OPENAPI_PREFIXES = 16  # root_path comes from the server or a proxy's header: bound the cache, not the answer


def _first_header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes:
    """http.Header.Get: the first value of `name` (lowercase), or empty."""
    return next((value for key, value in headers if key.lower() == name), b"")


def _check_deadline(timeout: float | None) -> None:
    """A Grpc-Timeout already past fails the call before it starts, as grpc-go's clientStream
    newAttemptLocked does (cs.ctx.Err()), whatever the call's kind: DEADLINE_EXCEEDED, 504."""
    if timeout is not None and timeout < 0:
        raise GatewayError(grpc.StatusCode.DEADLINE_EXCEEDED, "context deadline exceeded")


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


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
