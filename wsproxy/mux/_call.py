"""One call on a mux socket: the virtual WebSocket its proxied stream runs on.

Theory of operation. The session (wsproxy/mux/_session.py) routes each frame of the call here
without waiting: MESSAGE and HALF_CLOSE go to the call's inbox (bounded by the credit the client
was granted), WINDOW grants send credit, CANCEL and a dropped socket end it. The stream reads the
inbox as `websocket.receive` events and gets `websocket.disconnect` once the call is gone; its
`websocket.send` becomes a LINE (after waiting for credit), its control frames (wsproxy/_status.py,
when OPEN asked for the status) STATUS and TRAILERS, and its `websocket.close` the END.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import TYPE_CHECKING

from wsproxy import _status, closecodes
from wsproxy._handshake import RequestPlan
from wsproxy._types import Message
from wsproxy.errors import ClientDisconnected, HandshakeRejected
from wsproxy.mux import _frames as _mux
from wsproxy.mux._frames import CallRefused, FrameType

if TYPE_CHECKING:
    from wsproxy.mux._session import MuxSession

logger = logging.getLogger("wsproxy")

_DISCONNECT: Message = {"type": "websocket.disconnect", "code": closecodes.GOING_AWAY}


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
