"""The in-process binding: the gateway calls grpc.aio servicers in this process, no channel, no bytes.

Theory of operation: `InProcessBinding` collects method handlers the way a `grpc.aio.Server` does
(generated `add_XServicer_to_server(servicer, binding)` calls `add_generic_rpc_handlers` and
`add_registered_method_handlers`; `add_servicer` takes a servicer object and a service name).
For each gateway call it builds an `InProcessCall`, the client half, and starts one task, the
server half: that task runs the `grpc.aio.ServerInterceptor` chain with a `HandlerCallDetails`
(method, metadata) exactly as grpcio does, then the handler it returns with the request (or a
request iterator) and an `InProcessServicerContext`. Messages cross as objects through two
bounded pipes; the JSON decoded by the gateway becomes the servicer's request, and the servicer's
response (copied when written, as grpcio serializes it when written) is what the gateway prints.
Status, metadata, cancellation and deadlines follow grpcio's server and client semantics, so the
gateway code above this module cannot tell the two bindings apart.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message

from wsproxy.gateway._pipe import END, Pipe, PipeClosed
from wsproxy.gateway._routes import Route
from wsproxy.gateway._servicer_context import (
    CANCELLED_DETAILS,
    DEADLINE_DETAILS,
    InProcessServicerContext,
    MetadataPairs,
    Status,
    logger,
)

# How many messages may wait in each direction before the writer waits (gRPC's flow-control window).
PIPE_CAPACITY = 16
_NOT_FOUND = "Method not found!"

Handler = Any  # a grpc.RpcMethodHandler (grpc.unary_unary_rpc_method_handler(...) and friends)


class _Details(NamedTuple):
    method: str
    invocation_metadata: MetadataPairs


class HandlerCallDetails(_Details, grpc.HandlerCallDetails):
    """What interceptors and generic handlers see, shaped like grpcio's `_HandlerCallDetails`."""


class InProcessBinding:
    """Serves the gateway's routes from servicers in this process.

    Args:
        interceptors: `grpc.aio.ServerInterceptor`s, run for every call in order, as
            `grpc.aio.server(interceptors=...)` runs them.

    Register servicers with the generated function (`add_EchoServiceServicer_to_server(servicer,
    binding)`) or with `add_servicer`.
    """

    def __init__(self, *, interceptors: Sequence[grpc.aio.ServerInterceptor[Any, Any]] = ()) -> None:
        for interceptor in interceptors:
            if not isinstance(interceptor, grpc.aio.ServerInterceptor):
                raise TypeError(f"expected a grpc.aio.ServerInterceptor, got {type(interceptor).__name__}")
        self._interceptors = tuple(interceptors)
        self._generic: list[Any] = []
        self._registered: dict[str, Handler] = {}

    # -- the parts of grpc.aio.Server that generated code calls --

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Iterable[Any]) -> None:
        self._generic.extend(generic_rpc_handlers)

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: Mapping[str, Handler]
    ) -> None:
        for name, handler in method_handlers.items():
            self._registered[f"/{service_name}/{name}"] = handler

    def add_servicer(self, service: ServiceDescriptor | str, servicer: object) -> None:
        """Serve every method of `service` with the servicer's method of the same name."""
        descriptor = (
            descriptor_pool.Default().FindServiceByName(service) if isinstance(service, str) else service
        )
        handlers = {}
        for method in descriptor.methods:
            behaviour = getattr(servicer, method.name, None)
            if behaviour is None:
                continue  # like a generated base class method: the call answers UNIMPLEMENTED
            make = _HANDLER_FACTORIES[(method.client_streaming, method.server_streaming)]
            handlers[method.name] = make(behaviour)
        self.add_registered_method_handlers(descriptor.full_name, handlers)

    # -- Binding --

    def multicallable(self, route: Route, request_class: type[Message], response_class: type[Message]) -> Any:
        return _MultiCallable(self, route)

    async def find_handler(self, details: HandlerCallDetails) -> Handler | None:
        if not self._interceptors:
            return self._query(details)
        return await _intercept(iter(self._interceptors), self._query, details)

    def _query(self, details: HandlerCallDetails) -> Handler | None:
        handler = self._registered.get(details.method)
        if handler is not None:
            return handler
        for generic in self._generic:
            handler = generic.service(details)
            if handler is not None:
                return handler
        return None


_HANDLER_FACTORIES: dict[tuple[bool, bool], Callable[[Any], Handler]] = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


async def _intercept(
    interceptors: Any, query: Callable[[HandlerCallDetails], Handler | None], details: Any
) -> Handler | None:
    """grpcio's `_run_interceptor`: each interceptor gets the rest of the chain as its continuation."""
    interceptor = next(interceptors, None)
    if interceptor is None:
        return query(details)

    async def continuation(details: Any) -> Handler | None:
        return await _intercept(interceptors, query, details)

    return await interceptor.intercept_service(continuation, details)


class _MultiCallable:
    __slots__ = ("_binding", "_route")

    def __init__(self, binding: InProcessBinding, route: Route) -> None:
        self._binding = binding
        self._route = route

    def __call__(
        self,
        request: Message | None = None,
        *,
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str | bytes]] | None = None,
        **_: Any,
    ) -> InProcessCall:
        return InProcessCall(self._binding, self._route, request, tuple(metadata or ()), timeout)


class InProcessCall:
    """The client half of one in-process call, with grpc.aio's call API (all four kinds in one)."""

    def __init__(
        self,
        binding: InProcessBinding,
        route: Route,
        request: Message | None,
        metadata: MetadataPairs,
        timeout: float | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        self._route = route
        kind = route.kind
        self._context = context = InProcessServicerContext(
            route.grpc_path,
            metadata,
            deadline=None if timeout is None else loop.time() + timeout,
            requests=Pipe(PIPE_CAPACITY) if kind.streams_requests else None,
            responses=Pipe(PIPE_CAPACITY) if kind.streams_responses else None,
        )
        self._timer = None if timeout is None else loop.call_later(max(timeout, 0.0), self._expire)
        self._task = loop.create_task(_serve(binding, context, request))
        context.finished.add_done_callback(self._finished)
        self._callbacks: list[Callable[[Any], None]] = []
        self._cancelled_here = False

    # -- answers --

    def __await__(self) -> Generator[Any, None, Any]:
        status = yield from asyncio.shield(self._context.finished).__await__()
        if status.code is grpc.StatusCode.OK:
            return self._context.response
        raise self._error(status)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        responses = self._context.responses
        if responses is None:
            raise grpc.aio.UsageError("this call does not stream responses")
        item = await responses.get()
        if item is not END:
            return item
        status = await asyncio.shield(self._context.finished)
        if status.code is grpc.StatusCode.OK:
            raise StopAsyncIteration
        raise self._error(status)

    def _error(self, status: Status) -> BaseException:
        if self._cancelled_here:
            return asyncio.CancelledError()  # grpc.aio: a call cancelled by its caller raises this
        initial = self._context.initial.result() if self._context.initial.done() else ()
        return grpc.aio.AioRpcError(
            status.code,
            grpc.aio.Metadata(*initial),
            grpc.aio.Metadata(*status.trailing_metadata),
            status.details,
            None,
        )

    # -- requests --

    async def write(self, request: Message) -> None:
        requests = self._context.requests
        if requests is None:
            raise grpc.aio.UsageError("this call does not stream requests")
        if requests.closed:
            await self._raise_ended()
        try:
            await requests.put(request)
        except PipeClosed:
            await self._raise_ended()

    async def done_writing(self) -> None:
        if self._context.requests is not None:
            self._context.requests.close()

    async def _raise_ended(self) -> None:
        status = self._context.status
        if status is None:
            raise asyncio.InvalidStateError('RPC is half closed after calling "done_writing".')
        if status.code is grpc.StatusCode.OK:
            raise asyncio.InvalidStateError("RPC already finished.")
        raise self._error(status)

    # -- metadata and status --

    async def initial_metadata(self) -> grpc.aio.Metadata:
        return grpc.aio.Metadata(*await asyncio.shield(self._context.initial))

    async def trailing_metadata(self) -> grpc.aio.Metadata:
        status = await asyncio.shield(self._context.finished)
        return grpc.aio.Metadata(*status.trailing_metadata)

    async def code(self) -> grpc.StatusCode:
        return (await asyncio.shield(self._context.finished)).code

    async def details(self) -> str:
        return (await asyncio.shield(self._context.finished)).details

    async def wait_for_connection(self) -> None:
        return None

    # -- lifetime --

    def cancel(self) -> bool:
        if self._context.status is not None:
            return False
        self._cancelled_here = True
        self._end(Status(grpc.StatusCode.CANCELLED, CANCELLED_DETAILS, ()))
        return True

    def cancelled(self) -> bool:
        status = self._context.status
        return status is not None and status.code is grpc.StatusCode.CANCELLED

    def done(self) -> bool:
        return self._context.status is not None

    def time_remaining(self) -> float | None:
        return self._context.time_remaining()

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        if self.done():
            callback(self)
        else:
            self._callbacks.append(callback)

    def _expire(self) -> None:
        self._end(Status(grpc.StatusCode.DEADLINE_EXCEEDED, DEADLINE_DETAILS, ()))

    def _end(self, status: Status) -> None:
        """The caller's side ends the call: fix the status, then cancel the servicer as grpcio would."""
        self._context.finish(status)
        self._task.cancel()

    def _finished(self, _: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for callback in self._callbacks:
            callback(self)


async def _serve(
    binding: InProcessBinding, context: InProcessServicerContext, request: Message | None
) -> None:
    """The server half: interceptors, then the handler, then the status; never raises."""
    try:
        handler = await binding.find_handler(
            HandlerCallDetails(context.method, context.invocation_metadata())
        )
        if handler is None:
            context.finish(Status(grpc.StatusCode.UNIMPLEMENTED, _NOT_FOUND, ()))
            return
        await _run_handler(handler, context, request)
        context.finish(context.outcome())
    except grpc.aio.AbortError:
        context.finish(context.outcome())  # abort() already fixed the status; this is a no-op then
    except asyncio.CancelledError:
        context.finish(Status(grpc.StatusCode.CANCELLED, CANCELLED_DETAILS, ()))
    except Exception as exc:
        if context.status is None:
            logger.exception(
                "Unexpected [%s] raised by servicer method [%s]", type(exc).__name__, context.method
            )
        code = context.code()
        code = grpc.StatusCode.UNKNOWN if code in (None, grpc.StatusCode.OK) else code
        context.finish(Status(code, f"Unexpected {type(exc)}: {exc}", context.trailing_metadata()))
    finally:
        context.run_callbacks()


async def _run_handler(handler: Handler, context: InProcessServicerContext, request: Message | None) -> None:
    if handler.request_streaming:
        argument: Any = context.request_iterator()
    elif request is None:
        # A unary handler (say, an interceptor's rejecting one) on a streaming call: like grpcio, it
        # gets the first message of the stream.
        argument = await context.read()
    else:
        argument = request
    behaviour = {
        (False, False): handler.unary_unary,
        (False, True): handler.unary_stream,
        (True, False): handler.stream_unary,
        (True, True): handler.stream_stream,
    }[(bool(handler.request_streaming), bool(handler.response_streaming))]
    result = behaviour(argument, context)
    if not handler.response_streaming:
        response = await result if inspect.isawaitable(result) else result
        if context.code() in (None, grpc.StatusCode.OK) and not isinstance(response, Message):
            raise TypeError(f"the servicer returned {type(response).__name__}, not a protobuf message")
        await context.write(response)
    elif hasattr(result, "__aiter__"):  # an async generator
        async for response in result:
            await context.write(response)
    elif inspect.isawaitable(result):  # the context.write() style: the coroutine returns None
        await result
    else:  # a plain generator: runs on the event loop (grpcio would use its thread pool)
        for response in result:
            await context.write(response)
