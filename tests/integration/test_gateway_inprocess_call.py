"""The in-process call object against a real grpc.aio call, through the API the gateway uses.

Each scenario runs once on a multicallable from `ChannelBinding` (a real grpcio server and channel)
and once on one from `InProcessBinding`, and the outcomes — values, codes, details, metadata,
the exception types raised — must be equal.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory

from example_service.proto.example.v1 import echo_pb2, echo_pb2_grpc
from tests.support.echo_servicers import SERVICE, GeneratorStyle
from wsproxy.gateway import ChannelBinding, InProcessBinding
from wsproxy.gateway._routes import service_routes

Calls = dict[str, Any]  # method name -> multicallable
Scenario = Callable[[Calls], Awaitable[Any]]


def _multicallables(binding: Any) -> Calls:
    calls = {}
    for route in service_routes(SERVICE):
        request = message_factory.GetMessageClass(route.method.input_type)
        response = message_factory.GetMessageClass(route.method.output_type)
        calls[route.method.name] = binding.multicallable(route, request, response)
    return calls


@contextlib.asynccontextmanager
async def calls_for(kind: str) -> AsyncIterator[Calls]:
    servicer = GeneratorStyle()
    if kind == "inprocess":
        binding = InProcessBinding()
        echo_pb2_grpc.add_EchoServiceServicer_to_server(servicer, binding)
        yield _multicallables(binding)
        return
    server = grpc.aio.server()
    echo_pb2_grpc.add_EchoServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield _multicallables(ChannelBinding(channel))
    finally:
        await server.stop(grace=None)


def outcome_of(error: BaseException) -> Any:
    if isinstance(error, grpc.aio.AioRpcError):
        return ("AioRpcError", error.code(), error.details(), tuple(error.initial_metadata() or ()))
    return type(error).__name__


async def unary_ok(calls: Calls) -> Any:
    call = calls["Echo"](echo_pb2.EchoRequest(message="hi"), metadata=(("k", "v"),), timeout=10)
    response = await call
    return (
        response,
        tuple(await call.initial_metadata()),
        await call.code(),
        await call.details(),
        call.done(),
        call.cancelled(),
    )


async def unary_metadata(calls: Calls) -> Any:
    call = calls["Echo"](echo_pb2.EchoRequest(message="headers"), metadata=())
    await call
    trailing = [pair for pair in await call.trailing_metadata() if pair[0] == "x-trailer"]
    return tuple(await call.initial_metadata()), trailing


async def unary_abort(calls: Calls) -> Any:
    try:
        await calls["Echo"](echo_pb2.EchoRequest(message="abort after headers"), metadata=())
    except grpc.aio.AioRpcError as error:
        return outcome_of(error)
    raise AssertionError("no error")


async def unary_exception(calls: Calls) -> Any:
    try:
        await calls["Echo"](echo_pb2.EchoRequest(message="boom"), metadata=())
    except grpc.aio.AioRpcError as error:
        return outcome_of(error)
    raise AssertionError("no error")


async def unary_deadline(calls: Calls) -> Any:
    call = calls["Echo"](echo_pb2.EchoRequest(message="slow"), metadata=(), timeout=0.1)
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return outcome_of(error), call.done(), call.cancelled()
    raise AssertionError("no error")


async def unary_cancel(calls: Calls) -> Any:
    call = calls["Echo"](echo_pb2.EchoRequest(message="slow"), metadata=())
    await asyncio.sleep(0.05)
    first, second = call.cancel(), call.cancel()
    try:
        await call
    except BaseException as error:  # CancelledError
        return first, second, call.cancelled(), call.done(), outcome_of(error), await call.code()
    raise AssertionError("no error")


async def server_stream_abort(calls: Calls) -> Any:
    call = calls["Ticker"](echo_pb2.TickerRequest(count=2, interval_ms=1), metadata=())
    seen = []
    try:
        async for tick in call:
            seen.append(tick.seq)
    except grpc.aio.AioRpcError as error:
        return seen, outcome_of(error)
    raise AssertionError("no error")


async def bidi(calls: Calls) -> Any:
    call = calls["Chat"](metadata=())
    replies = []
    for text in ("a", "b"):
        await call.write(echo_pb2.ChatMessage(text=text))
        reply = await anext(aiter(call))
        replies.append((reply.text, reply.seq))
    await call.done_writing()
    rest = [reply async for reply in call]
    try:
        await call.write(echo_pb2.ChatMessage(text="late"))
    except BaseException as error:
        late = outcome_of(error)
    return replies, rest, late, await call.code()


async def client_stream(calls: Calls) -> Any:
    call = calls["Sum"](metadata=())
    for value in (1, 2, 3):
        await call.write(echo_pb2.SumRequest(value=value))
    await call.done_writing()
    return await call


async def write_after_done_writing(calls: Calls) -> Any:
    call = calls["Sum"](metadata=())
    await call.done_writing()
    try:
        await call.write(echo_pb2.SumRequest(value=1))
    except BaseException as error:
        late = outcome_of(error)
    return late, await call


SCENARIOS = [
    write_after_done_writing,
    unary_ok,
    unary_metadata,
    unary_abort,
    unary_exception,
    unary_deadline,
    unary_cancel,
    server_stream_abort,
    bidi,
    client_stream,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[scenario.__name__ for scenario in SCENARIOS])
async def test_in_process_call_behaves_like_a_grpc_aio_call(scenario: Scenario) -> None:
    outcomes = {}
    for kind in ("channel", "inprocess"):
        async with calls_for(kind) as calls:
            outcomes[kind] = await asyncio.wait_for(scenario(calls), 10)
    assert outcomes["inprocess"] == outcomes["channel"]


class NeverReads(GeneratorStyle):
    async def Chat(self, request_iterator: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        await asyncio.sleep(30)
        yield echo_pb2.ChatReply()  # pragma: no cover


async def test_sixteen_requests_wait_for_a_servicer_that_does_not_read() -> None:
    binding = InProcessBinding()
    echo_pb2_grpc.add_EchoServiceServicer_to_server(NeverReads(), binding)
    call = _multicallables(binding)["Chat"](metadata=())
    for _ in range(16):  # docs/gateway.md: each direction holds at most 16 messages
        await asyncio.wait_for(call.write(echo_pb2.ChatMessage(text="x")), 1)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(call.write(echo_pb2.ChatMessage(text="one too many")), 0.2)
    assert call.cancel()


async def test_no_servicer_registered_is_unimplemented_in_both_bindings() -> None:
    outcomes = []
    binding = InProcessBinding()
    try:
        await _multicallables(binding)["Echo"](echo_pb2.EchoRequest(message="x"), metadata=())
    except grpc.aio.AioRpcError as error:
        outcomes.append(outcome_of(error))
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            try:
                await _multicallables(ChannelBinding(channel))["Echo"](
                    echo_pb2.EchoRequest(message="x"), metadata=()
                )
            except grpc.aio.AioRpcError as error:
                outcomes.append(outcome_of(error))
    finally:
        await server.stop(grace=None)
    assert outcomes == [("AioRpcError", grpc.StatusCode.UNIMPLEMENTED, "Method not found!", ())] * 2


async def test_servicer_raising_cancelled_error_itself_ends_the_call_cancelled() -> None:
    # Not compared with grpcio: its 1.85 server then sends no status at all (the call hangs until
    # its deadline). In-process the gateway gets a CANCELLED status (HTTP 499), not a CancelledError
    # that would cancel the gateway's own task.
    async with calls_for("inprocess") as calls:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await calls["Echo"](echo_pb2.EchoRequest(message="raise cancelled"), metadata=())
    assert caught.value.code() is grpc.StatusCode.CANCELLED


class Probe(GeneratorStyle):
    """Echo records what the context's edge cases do, then aborts with a grpc.Status."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Any] = []

    async def Echo(self, request: Any, context: Any) -> Any:
        seen = self.seen
        seen += [
            context.code(),
            context.details(),
            context.time_remaining(),
            context.done(),
            context.cancelled(),
        ]
        await context.send_initial_metadata((("a", "1"),))
        for probe in (lambda: context.send_initial_metadata((("b", "2"),)), context.read):
            try:
                await probe()
            except grpc.aio.UsageError as error:
                seen.append(f"UsageError: {error}")
        seen += [
            context.auth_context(),
            context.peer_identities(),
            context.peer_identity_key(),
            context.peer(),
        ]
        context.set_compression(grpc.Compression.Gzip)
        context.disable_next_message_compression()
        status = _Status(grpc.StatusCode.FAILED_PRECONDITION, "not now", (("t", "v"),))
        try:
            await context.abort_with_status(status)
        except grpc.aio.AbortError:
            seen.append(context.done())
        try:
            await context.abort(grpc.StatusCode.INTERNAL, "again")
        except grpc.aio.UsageError as error:
            seen.append(f"UsageError: {error}")
        return echo_pb2.EchoResponse(message="ignored after abort")


class _Status(grpc.Status):
    def __init__(self, code: grpc.StatusCode, details: str, trailing_metadata: Any) -> None:
        self.code, self.details, self.trailing_metadata = code, details, trailing_metadata


async def test_context_edge_cases_in_process() -> None:
    servicer = Probe()
    binding = InProcessBinding()
    echo_pb2_grpc.add_EchoServiceServicer_to_server(servicer, binding)
    call = _multicallables(binding)["Echo"](echo_pb2.EchoRequest(), metadata=(("x-forwarded-for", "::1"),))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert (caught.value.code(), caught.value.details()) == (grpc.StatusCode.FAILED_PRECONDITION, "not now")
    assert tuple(caught.value.initial_metadata()) == (("a", "1"),)
    trailing: Any = caught.value.trailing_metadata()
    assert [tuple(pair) for pair in trailing] == [("t", "v")]
    assert servicer.seen == [
        None,
        "",
        None,
        False,
        False,
        "UsageError: Send initial metadata failed: already sent",
        "UsageError: read() is for calls that stream requests",
        {},
        None,
        None,
        "ipv6:[::1]",
        True,
        "UsageError: Abort already called!",
    ]


def test_interceptors_must_be_server_interceptors() -> None:
    with pytest.raises(TypeError, match=r"expected a grpc\.aio\.ServerInterceptor, got object"):
        InProcessBinding(interceptors=[object()])  # type: ignore[list-item]


async def test_add_servicer_serves_what_the_object_has_and_unimplemented_otherwise() -> None:
    class OnlyEcho:
        async def Echo(self, request: Any, context: Any) -> Any:
            return echo_pb2.EchoResponse(message=request.message * 2)

    binding = InProcessBinding()
    binding.add_servicer("example.v1.EchoService", OnlyEcho())
    calls = _multicallables(binding)
    assert (await calls["Echo"](echo_pb2.EchoRequest(message="ab"), metadata=())).message == "abab"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await calls["WhoAmI"](echo_pb2.WhoAmIRequest(), metadata=())
    assert (caught.value.code(), caught.value.details()) == (
        grpc.StatusCode.UNIMPLEMENTED,
        "Method not found!",
    )


def test_every_scenario_alike_on_uvloop_too() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def compare() -> list[str]:
        assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
        differing = []
        for scenario in SCENARIOS:
            outcomes = {}
            for kind in ("channel", "inprocess"):
                async with calls_for(kind) as calls:
                    outcomes[kind] = await asyncio.wait_for(scenario(calls), 10)
            if outcomes["inprocess"] != outcomes["channel"]:
                differing.append(f"{scenario.__name__}: {outcomes}")
        return differing

    assert uvloop.run(compare()) == []
