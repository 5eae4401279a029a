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
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol
from urllib.parse import unquote

from wsproxy import _status, closecodes
from wsproxy._handshake import RequestPlan, offered_subprotocols
from wsproxy._types import Message, Receive, Scope, Send
from wsproxy.errors import ClientDisconnected, HandshakeRejected
from wsproxy.mux import _frames as _mux
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
_DISCONNECT: Message = {"type": "websocket.disconnect", "code": closecodes.GOING_AWAY}


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


class MuxCall:
    """One call on a mux socket: the virtual WebSocket its proxied stream runs on."""

    __slots__ = (
        "call_id",
        "ended",
        "gone",
        "inbox",
        "inbox_waiter",
        "plan",
        "receive_credit",
        "send_credit",
        "send_waiter",
        "session",
    )

    def __init__(self, session: MuxSession, call_id: int, plan: RequestPlan) -> None:
        self.session = session
        self.call_id = call_id
        self.plan = plan
        self.inbox: deque[tuple[bytes, int]] = deque()  # (what the stream receives, its size in credit)
        self.inbox_waiter: asyncio.Future[None] | None = None
        self.send_waiter: asyncio.Future[None] | None = None
        self.receive_credit = _mux.ReceiveCredit()
        self.send_credit = _mux.SendCredit()
        self.gone = False  # cancelled by the client or the socket dropped: the app sees a disconnect
        self.ended = False  # END sent (or no longer possible): frames for it are ignored

    async def run(self) -> None:
        try:
            authenticate = self.session.authenticate_call
            if authenticate is not None:
                try:
                    await authenticate(self.plan.scope)
                except HandshakeRejected as rejected:
                    # Refused as a handshake would be; frames that came meanwhile are dropped.
                    code = closecodes.HTTP_STATUS_BASE + rejected.status
                    self._leave()
                    if not self.ended:
                        self.ended = True
                        with contextlib.suppress(OSError):
                            await self.session.write(
                                _mux.encode_end(
                                    self.call_id, code, closecodes.truncate_reason(rejected.message)
                                )
                            )
                    return
            await self.session.run_stream(self.plan, self.receive, self.send)
        except Exception:  # the stream handles the app's failures; this is a bug of ours
            logger.exception("mux call %d on %s failed", self.call_id, self.plan.scope.get("path"))
        finally:
            self.gone = True
            self.session.forget(self)

    # Frames from the client (called by the session's read loop, never awaiting).

    def message(self, payload: bytes) -> None:
        if len(payload) > self.session.max_message_size:  # refused on arrival, never buffered
            raise CallRefused(closecodes.MESSAGE_TOO_BIG, "message too big")
        self.receive_credit.received(len(payload))  # raises FlowControlError without credit
        self.inbox.append((payload, len(payload)))
        self._wake_receiver()

    def half_close(self) -> None:
        half_close = self.session.half_close
        if half_close is None:
            raise CallRefused(closecodes.POLICY_VIOLATION, "half-close is disabled on this proxy")
        # Costs credit like an empty message (whatever the configured half-close message is): a
        # client cannot queue half-closes without bound.
        self.receive_credit.received(0)
        self.inbox.append((half_close, 0))
        self._wake_receiver()

    def grant(self, increment: int) -> None:
        self.send_credit.grant(increment)
        self._wake_sender()

    def cancel(self) -> None:
        self.ended = True  # the client is gone from this call: no END for it
        self._leave()

    def socket_gone(self) -> None:
        self.ended = True
        self._leave()

    def refuse(self, code: int, reason: str) -> None:
        """End the call for a rule the client broke: END to the client, a disconnect to the app."""
        logger.info("mux call %d refused: %d %s", self.call_id, code, reason)
        self._leave()
        if not self.ended:
            self.ended = True
            self.session._end_soon(self.call_id, code, reason)

    def _leave(self) -> None:
        self.gone = True
        self.inbox.clear()
        self.session.forget(self)
        self._wake_receiver()
        self._wake_sender()

    def _wake_receiver(self) -> None:
        waiter = self.inbox_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_sender(self) -> None:
        waiter = self.send_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # The virtual WebSocket the stream runs on.

    async def receive(self) -> Message:
        while not self.inbox:
            if self.gone:
                return _DISCONNECT
            self.inbox_waiter = asyncio.get_running_loop().create_future()
            try:
                await self.inbox_waiter
            finally:
                self.inbox_waiter = None
        payload, size = self.inbox.popleft()
        increment = self.receive_credit.consumed(size)
        if increment and not self.ended:
            with contextlib.suppress(OSError):  # a dropped socket shows up on the next receive
                await self.session.write(_mux.encode_window(self.call_id, increment))
        return {"type": "websocket.receive", "bytes": payload}

    async def _send_control(self, kind: str, payload: bytes) -> None:
        if self.gone:
            raise ClientDisconnected("the mux call was cancelled or its socket dropped")
        frame_type = FrameType.STATUS if kind == "status" else FrameType.TRAILERS
        await self.session.write(_mux.encode(frame_type, self.call_id, payload))

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "websocket.send":
            text = message.get("text")
            line: str | bytes = text if text is not None else message.get("bytes", b"")
            if text is None and self.plan.report_status:
                control = _status.encoded_kind(message.get("bytes", b""))
                if control is not None:  # not a line: STATUS or TRAILERS, free of credit like END
                    await self._send_control(control, message["bytes"])
                    return
            while not self.send_credit.available:
                if self.gone:
                    break
                self.send_waiter = asyncio.get_running_loop().create_future()
                try:
                    await self.send_waiter
                finally:
                    self.send_waiter = None
            if self.gone:
                raise ClientDisconnected("the mux call was cancelled or its socket dropped")
            frame = _mux.encode_line(self.call_id, line)
            self.send_credit.spend(len(frame) - _mux.HEADER_SIZE)
            await self.session.write(frame)
        elif kind == "websocket.close":
            if self.ended:
                return
            self.ended = True
            self.session.forget(self)
            code = message.get("code", closecodes.NORMAL)
            await self.session.write(_mux.encode_end(self.call_id, code, message.get("reason") or ""))
        elif kind != "websocket.accept":
            raise RuntimeError(f'Unexpected ASGI message "{kind}" on a mux call')
