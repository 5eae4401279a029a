"""The state of one in-process RPC, seen by the servicer as a `grpc.aio.ServicerContext`.

Theory of operation: the context is the server half of the call (grpcio's RpcState plus its
ServicerContext). It holds the invocation metadata, the deadline, the code, details and metadata
the servicer sets, and the two pipes that carry request and response messages. `finish()` fixes
the final status exactly once — when the servicer returns, raises or aborts, when the gateway
cancels the call, or when the deadline passes — and then closes both pipes and resolves the
futures the client half (`_inprocess.InProcessCall`) waits on. Everything a grpc.aio servicer may
call behaves as grpcio documents it; what cannot exist without a transport (compression,
peer identities, auth context) is accepted and ignored or reported empty.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import Message

from wsproxy.gateway._pipe import END, Pipe, PipeClosed

logger = logging.getLogger("wsproxy.gateway")
_EOF: Any = grpc.aio.EOF  # type: ignore[attr-defined]  # missing from the stubs

MetadataPairs = tuple[tuple[str, str | bytes], ...]
DEADLINE_DETAILS = "Deadline Exceeded"
CANCELLED_DETAILS = "Locally cancelled by application!"


@dataclass(frozen=True)
class Status:
    code: grpc.StatusCode
    details: str
    trailing_metadata: MetadataPairs


def _pairs(metadata: Any) -> MetadataPairs:
    return tuple((str(key), value) for key, value in metadata or ())


def peer_of(metadata: Sequence[tuple[str, str | bytes]]) -> str:
    """grpcio's peer() form (`ipv4:1.2.3.4`, `ipv6:[::1]`) for the HTTP client the gateway forwards for."""
    forwarded = [value for key, value in metadata if key == "x-forwarded-for" and isinstance(value, str)]
    if not forwarded:
        return "unknown"
    address = forwarded[-1].rsplit(",", 1)[-1].strip()
    return f"ipv6:[{address}]" if ":" in address else f"ipv4:{address}"


class InProcessServicerContext(grpc.aio.ServicerContext[Any, Any]):
    """A grpc.aio ServicerContext for a servicer called by the gateway in this process."""

    def __init__(
        self,
        method: str,
        metadata: MetadataPairs,
        *,
        deadline: float | None,
        requests: Pipe[Any] | None,
        responses: Pipe[Any] | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.method = method
        self._loop = loop
        self._metadata = metadata
        self._deadline = deadline
        self.requests = requests
        self.responses = responses
        self._code: grpc.StatusCode | None = None  # grpcio: None until the servicer sets one
        self._details: str | None = None
        self._trailing: MetadataPairs = ()
        self.initial: asyncio.Future[MetadataPairs] = loop.create_future()
        self.finished: asyncio.Future[Status] = loop.create_future()
        self.status: Status | None = None
        self.response: Any = None  # a unary call's one response message
        self._aborted = False
        self._callbacks: list[Callable[[Any], None]] = []

    # -- the servicer's side (grpc.aio.ServicerContext) --

    async def read(self) -> Any:
        if self.requests is None:
            raise grpc.aio.UsageError("read() is for calls that stream requests")
        item = await self.requests.get()
        return _EOF if item is END else item

    async def write(self, message: Any) -> None:
        if self.status is not None:
            raise grpc.aio.AbortError("the RPC has already ended")
        self.send_headers()
        snapshot = _snapshot(message)  # grpcio serializes here: later changes to `message` must not show
        if self.responses is None:
            self.response = snapshot
            return
        try:
            await self.responses.put(snapshot)
        except PipeClosed:
            raise grpc.aio.AbortError("the RPC has already ended") from None

    async def send_initial_metadata(self, initial_metadata: Any) -> None:
        if self.initial.done():
            raise grpc.aio.UsageError("Send initial metadata failed: already sent")
        self.initial.set_result(_pairs(initial_metadata))

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()
    ) -> Any:  # NoReturn in grpcio; typed Any to match the stubs' override
        if self._aborted:
            raise grpc.aio.UsageError("Abort already called!")
        self._aborted = True
        trailers = _pairs(trailing_metadata) or self._trailing
        self.finish(Status(code, details, trailers))
        raise grpc.aio.AbortError("Locally aborted.")

    async def abort_with_status(self, status: grpc.Status) -> Any:
        await self.abort(status.code, status.details, status.trailing_metadata)

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def code(self) -> grpc.StatusCode | None:  # type: ignore[override]  # grpcio returns None when unset
        return self._code

    def details(self) -> str:
        return self._details or ""

    def set_trailing_metadata(self, trailing_metadata: Any) -> None:
        self._trailing = _pairs(trailing_metadata)

    def trailing_metadata(self) -> MetadataPairs:  # type: ignore[override]  # grpcio returns tuples
        return self._trailing

    def invocation_metadata(self) -> MetadataPairs:  # type: ignore[override]  # grpcio returns tuples
        return self._metadata

    def peer(self) -> str:
        return peer_of(self._metadata)

    def peer_identities(self) -> None:
        return None

    def peer_identity_key(self) -> None:
        return None

    def auth_context(self) -> dict[str, Any]:
        return {}

    def set_compression(self, compression: grpc.Compression) -> None:
        pass  # nothing is put on a wire

    def disable_next_message_compression(self) -> None:
        pass

    def time_remaining(self) -> float | None:  # type: ignore[override]  # None: no deadline
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - self._loop.time())

    def cancelled(self) -> bool:
        """True once the gateway cancelled the call (its client went away), as grpcio documents it
        (grpcio 1.85's own server answers False there); a passed deadline does not count."""
        status = self.status
        return status is not None and status.code is grpc.StatusCode.CANCELLED and not self._aborted

    def done(self) -> bool:
        return self.status is not None

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        self._callbacks.append(callback)

    # -- the runner's side --

    def request_iterator(self) -> AsyncIterator[Any]:
        return _Requests(self)

    def send_headers(self) -> None:
        """Headers go out with the first message or the status, as on a real server."""
        if not self.initial.done():
            self.initial.set_result(())

    def outcome(self) -> Status:
        """The status of a servicer that returned normally: OK unless it set a code."""
        return Status(self._code or grpc.StatusCode.OK, self._details or "", self._trailing)

    def finish(self, status: Status) -> None:
        if self.status is not None:
            return
        self.status = status
        self.send_headers()
        for pipe in (self.requests, self.responses):
            if pipe is not None:
                pipe.close()
        self.finished.set_result(status)

    def run_callbacks(self) -> None:
        for callback in self._callbacks:
            try:
                callback(self)
            except Exception:
                logger.exception("done callback of %s failed", self.method)


class _Requests:
    """The request iterator a servicer's stream-request method gets (shares the pipe with read())."""

    __slots__ = ("_context",)

    def __init__(self, context: InProcessServicerContext) -> None:
        self._context = context

    def __aiter__(self) -> _Requests:
        return self

    async def __anext__(self) -> Any:
        item = await self._context.read()
        if item is _EOF:
            raise StopAsyncIteration
        return item


def _snapshot(message: Any) -> Any:
    if isinstance(message, Message):
        copy = type(message)()
        copy.CopyFrom(message)
        return copy
    return message
