"""One multiplexed WebSocket (`wsproxy.mux.v1`): many calls, each a proxied stream of its own.

Theory of operation. The session reads the socket in one loop and never waits on a call: each
frame is decoded (wsproxy.mux._frames) and routed to its call at once. Every call is an ordinary proxied
stream (the same code that serves a single-socket call), run in its own task over a *virtual*
WebSocket: its receive yields websocket.receive messages from the call's inbox and
websocket.disconnect when the client cancels or the socket drops; its send turns websocket.send
into LINE frames and websocket.close into an END frame. A call whose OPEN asked for the status runs
as a wsproxy.status.v1 socket would: its control frames become STATUS and TRAILERS frames. So method override, Authorization and
Origin policy, half-close, CR/LF handling, limits and the status-to-code table are the single-socket
ones, by construction.

No head-of-line blocking: a call's inbox is bounded by its flow-control window (a client that sends
beyond it has that call refused), and a call waits for the client's WINDOW credit before each
LINE, so a call whose app or whose client stops reading holds only itself. Frames go out one at a
time under a FIFO lock (fair across calls), and the read loop and the writers give the event loop
a turn every few frames, since the server's send and receive may never yield on their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol
from urllib.parse import unquote

from wsproxy import closecodes
from wsproxy._handshake import RequestPlan, offered_subprotocols
from wsproxy._types import Receive, Scope, Send
from wsproxy.errors import ClientDisconnected, HandshakeRejected
from wsproxy.mux import _frames as _mux
from wsproxy.mux._call import MuxCall
from wsproxy.mux._frames import CallRefused, FrameType, MuxProtocolError
from wsproxy.stream._budget import PUMP_MESSAGES, TurnBudget
from wsproxy.stream._core import TICK_SECONDS

logger = logging.getLogger("wsproxy")


class PlanCall(Protocol):
    """The middleware's planning of one call's request (`report_status`: OPEN asked for STATUS)."""

    def __call__(self, scope: Scope, *, report_status: bool) -> RequestPlan: ...


AuthenticateCall = Callable[[Scope], Awaitable[None]]
RunStream = Callable[[RequestPlan, Receive, Send], Awaitable[object]]

# END frames of refused calls waiting to be written before the read loop stops reading: a client that
# floods bad OPENs and does not read gets TCP backpressure, not an ever-growing set of writers.
MAX_PENDING_REFUSALS = 16


def offers_mux(scope: Scope) -> bool:
    """Whether the client offered the mux subprotocol (alongside the Bearer pair, if any)."""
    return _mux.SUBPROTOCOL in offered_subprotocols(scope)


class MuxSession:
    """The calls of one multiplexed WebSocket."""

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        plan_call: PlanCall,
        run_stream: RunStream,
        half_close: bytes | None,
        max_calls: int,
        max_message_size: int,
        idle_timeout: float | None = None,
        authenticate_call: AuthenticateCall | None = None,
    ) -> None:
        self.scope = scope
        self.ws_receive = receive
        self.ws_send = send
        self.plan_call = plan_call
        self.authenticate_call = authenticate_call  # the middleware's `authenticate`, run per call
        self.run_stream = run_stream
        self.half_close = half_close
        self.max_calls = max_calls
        self.max_message_size = max_message_size
        self.idle_timeout = idle_timeout  # for the socket while it has no call: calls have their own
        self.frames_in = 0
        self.idle_ticks = 0
        self.idle_seen = -1  # frames_in at the last tick
        self.tick_handle: asyncio.TimerHandle | None = None
        self.closer: asyncio.Task[None] | None = None
        self.calls: dict[int, MuxCall] = {}  # open calls that still take frames
        self.tasks: set[asyncio.Task[None]] = set()  # calls whose stream still runs
        self.refusals: set[asyncio.Task[None]] = set()  # END frames of calls refused at OPEN
        self.ids = _mux.CallIds()
        self.write_lock = asyncio.Lock()
        self.write_budget = TurnBudget(PUMP_MESSAGES)  # frames written before the loop gets a turn
        self.dropped = False  # the socket is gone (or we closed it): nothing more goes out

    async def run(self) -> None:
        try:
            await self.ws_send({"type": "websocket.accept", "subprotocol": _mux.SUBPROTOCOL})
        except OSError:
            return
        if self.idle_timeout is not None:
            self.tick_handle = asyncio.get_running_loop().call_later(TICK_SECONDS, self._tick)
        try:
            await self._read_loop()
        except BaseException:
            # The server is cancelling this connection (or we failed): end every call now.
            self._drop_calls()
            if self.closer is not None:
                self.closer.cancel()
            pending = self.tasks | self.refusals
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            raise
        # The socket dropped or closed: every call's app sees the disconnect; wait for their streams
        # to end (they cancel apps that do not).
        self._drop_calls()
        while self.tasks or self.refusals:
            await asyncio.wait(self.tasks | self.refusals)

    def _tick(self) -> None:
        """Once a second: close a socket that had no call and no frame for `idle_timeout` seconds."""
        if self.dropped or self.idle_timeout is None:
            return
        idle = not self.tasks and self.frames_in == self.idle_seen
        self.idle_ticks = self.idle_ticks + 1 if idle else 0
        self.idle_seen = self.frames_in
        if self.idle_ticks * TICK_SECONDS >= self.idle_timeout:
            self.closer = asyncio.get_running_loop().create_task(
                self._close_socket(closecodes.GOING_AWAY, "idle timeout")
            )
            return
        self.tick_handle = asyncio.get_running_loop().call_later(TICK_SECONDS, self._tick)

    def _drop_calls(self) -> None:
        if self.tick_handle is not None:
            self.tick_handle.cancel()
        self.dropped = True
        for call in list(self.calls.values()):
            call.socket_gone()
        self.calls.clear()

    async def _read_loop(self) -> None:
        budget = TurnBudget(PUMP_MESSAGES)  # frames read before the calls get a turn
        while True:
            try:
                message = await self.ws_receive()
            except OSError:
                return
            self.frames_in += 1
            if message["type"] != "websocket.receive":
                return  # websocket.disconnect: the socket dropped or the client closed it
            data = message.get("bytes")
            try:
                if data is None:
                    raise MuxProtocolError("text frame on a wsproxy.mux.v1 socket: frames are binary")
                self._dispatch(_mux.decode(data, _mux.CLIENT_FRAMES))
            except MuxProtocolError as exc:
                logger.info("%s: mux protocol error: %s", self.scope.get("path"), exc.reason)
                await self._close_socket(_mux.PROTOCOL_ERROR, exc.reason)
                return
            if len(self.refusals) >= MAX_PENDING_REFUSALS:
                await asyncio.wait(self.refusals, return_when=asyncio.FIRST_COMPLETED)
            if budget.take(len(data)):
                await asyncio.sleep(0)  # let the calls run while a client floods frames

    def _dispatch(self, frame: _mux.Frame) -> None:
        if frame.type is FrameType.OPEN:
            self._open(frame)
            return
        call = self.calls.get(frame.call_id)
        if call is None:
            self.ids.check_unknown(frame.call_id)
            return  # the call already ended: frames in flight are dropped
        try:
            if frame.type is FrameType.MESSAGE:
                call.message(frame.payload)
            elif frame.type is FrameType.HALF_CLOSE:
                call.half_close()
            elif frame.type is FrameType.LAST_MESSAGE:
                call.message(frame.payload)
                call.half_close()
            elif frame.type is FrameType.WINDOW:
                call.grant(_mux.parse_window(frame.payload))
            else:  # CANCEL
                call.cancel()
        except CallRefused as refused:
            call.refuse(refused.code, refused.reason)

    def _open(self, frame: _mux.Frame) -> None:
        self.ids.open(frame.call_id)
        if len(self.tasks) >= self.max_calls:
            self._end_soon(frame.call_id, closecodes.TRY_AGAIN_LATER, "too many calls on this socket")
            return
        try:
            request = _mux.parse_open(frame.payload)
            plan = self.plan_call(self._call_scope(request), report_status=request.status)
        except CallRefused as refused:
            self._end_soon(frame.call_id, refused.code, refused.reason)
            return
        except HandshakeRejected as rejected:
            code = closecodes.HTTP_STATUS_BASE + rejected.status
            self._end_soon(frame.call_id, code, closecodes.truncate_reason(rejected.message))
            return
        call = MuxCall(self, frame.call_id, plan)
        self.calls[frame.call_id] = call
        task = asyncio.get_running_loop().create_task(call.run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _call_scope(self, request: _mux.OpenRequest) -> Scope:
        scope = dict(self.scope)
        scope["path"] = unquote(request.path)
        scope["raw_path"] = request.path.encode()
        scope["query_string"] = request.query.encode()
        scope["headers"] = _mux.call_headers(self.scope.get("headers", ()), request.headers)
        return scope

    def _end_soon(self, call_id: int, code: int, reason: str) -> None:
        """END a call that never started (refused at OPEN), without holding up the read loop."""
        task = asyncio.get_running_loop().create_task(self._end(call_id, code, reason))
        self.refusals.add(task)
        task.add_done_callback(self.refusals.discard)

    async def _end(self, call_id: int, code: int, reason: str) -> None:
        with contextlib.suppress(OSError):
            await self.write(_mux.encode_end(call_id, code, reason))

    async def write(self, frame: bytes) -> None:
        """Send one frame; raises ClientDisconnected once the socket is gone."""
        if self.dropped:
            raise ClientDisconnected("the multiplexed WebSocket has gone away")
        async with self.write_lock:  # FIFO: calls take turns
            if self.dropped:
                raise ClientDisconnected("the multiplexed WebSocket has gone away")
            try:
                await self.ws_send({"type": "websocket.send", "bytes": frame})
            except (OSError, RuntimeError) as exc:  # RuntimeError: the server already closed it
                self.dropped = True
                raise ClientDisconnected("the multiplexed WebSocket has gone away") from exc
        if self.write_budget.take(len(frame)):
            await asyncio.sleep(0)  # a call streaming lines must not starve the others

    async def _close_socket(self, code: int, reason: str) -> None:
        if self.dropped:
            return
        self.dropped = True
        with contextlib.suppress(OSError, RuntimeError):
            await self.ws_send({"type": "websocket.close", "code": code, "reason": reason})

    def forget(self, call: MuxCall) -> None:
        if self.calls.get(call.call_id) is call:
            del self.calls[call.call_id]
