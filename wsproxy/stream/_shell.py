"""The stream's I/O shell: one WebSocket connection driven as one streaming HTTP request to the app.

Theory of operation. Every decision (what a message means, when the body ends, which close code,
when to yield) is made by the stream's sans-I/O core, wsproxy/stream/_core.py; this module only moves
messages and schedules. The app runs in the server's task with our `receive` and `send`. Its
`receive` reads the WebSocket directly (no pump task, no queue), so a message is taken from the
socket only when the app asks for more body: that is the backpressure, and it keeps the hot path
free of task switches. Messages the server already holds behind the one read go to the app with it,
as one body chunk (`gather` in the core): a burst wakes the app once. Its `send` splits the body into
lines and sends each as a frame at once.

The servers' `receive` and `send` do not suspend while their buffers allow, so a stream whose data
flows both ways would never let the event loop run: a stream that has not suspended on its own for
`YIELD_EVERY_FRAMES` frames or `YIELD_EVERY_BYTES` bytes (both directions together) is made to give
the loop a turn (`asyncio.sleep(0)`). That keeps other streams served, signals handled, and lets the
server notice a client that reset the connection. A turn that comes by itself (a receive that waits
for the client) starts the budget over too: a callback queued on the loop tells (`_arm`).

A client can also vanish while the app is not reading (it is busy, streaming a response, or done
with the body). So whenever the app has been away from `receive` for a tick (one second), as soon
as it has sent a yield budget's worth without reading, and for good once the body has ended, a
reader task reads the socket ahead into a small bounded inbox: the app then gets `http.disconnect`,
a raising `send`, and after a grace period a cancellation. When the app comes back to `receive` it
drains the inbox and then reads inline again. A message after the end of the body is a protocol
violation (1008).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable

from wsproxy import closecodes
from wsproxy._handshake import RequestPlan
from wsproxy._types import ASGIApp, Message, Receive, Send
from wsproxy.errors import ClientDisconnected, MessageTooBig
from wsproxy.stream._core import KEEP, StreamCore, StreamObserver, StreamSettings, StreamStats
from wsproxy.stream._nowait import resume
from wsproxy.stream._ticker import Ticker

logger = logging.getLogger("wsproxy")

DISCONNECT_GRACE_SECONDS = 1.0  # how long the app may run on after its client is gone


class Stream(StreamCore):
    """The I/O and scheduling of one proxied stream; every decision is made by StreamCore, its base.

    A subclass rather than a StreamCore attribute: one object per stream instead of two, and no
    indirection on the per-message path (memory per stream and 64 B throughput are both targets).
    """

    # Slots: thousands of streams may be open at once, and a per-instance dict is about 1 KiB.
    __slots__ = (
        "app",
        "armed",
        "cancel_handle",
        "cancelled_by_us",
        "closer",
        "gone_handled",
        "gone_waiter",
        "in_receive",
        "inbox",
        "loop",
        "plan",
        "reader",
        "running",
        "settings",
        "task",
        "ticker",
        "ws_receive",
        "ws_send",
    )

    loop: asyncio.AbstractEventLoop  # set when the stream runs

    def __init__(
        self, app: ASGIApp, plan: RequestPlan, settings: StreamSettings, receive: Receive, send: Send
    ) -> None:
        scope = plan.scope
        client = scope.get("client")
        super().__init__(
            settings,
            single_message=plan.single_message,
            method=scope.get("method", ""),
            path=scope.get("path", ""),
            client=f"{client[0]}:{client[1]}" if client else None,
        )
        self.app = app
        self.plan = plan
        self.settings = settings
        self.ws_receive = receive
        self.ws_send = send
        self.in_receive = False
        # Read ahead while the app was away; made on first use (an empty deque is 760 bytes, and
        # most streams never need one: memory per open stream counts with thousands of them).
        self.inbox: deque[Message] | None = None
        self.reader: asyncio.Task[None] | None = None
        self.closer: asyncio.Future[None] | None = None
        # A future made only when the app waits for the client to go, rather than an asyncio.Event
        # (about 1 KiB per stream).
        self.gone_waiter: asyncio.Future[None] | None = None
        self.gone_handled = False
        self.task: asyncio.Task[object] | None = None  # the server's task, which runs the app
        self.running = False
        self.cancelled_by_us = False
        self.ticker: Ticker | None = None
        self.cancel_handle: asyncio.TimerHandle | None = None
        self.armed = False  # a `_turn_seen` is queued on the loop

    async def run(self) -> StreamStats:
        try:
            await self.ws_send({"type": "websocket.accept", "subprotocol": self.plan.subprotocol})
        except OSError:
            return self  # the client left during the handshake: no stream to report
        self._notify(self.settings.on_stream_start)
        # The app runs right here in the server's task (no task of its own: memory per stream).
        self.task = asyncio.current_task()
        # Kept: on Python 3.11 every get_running_loop() is a getpid() system call.
        self.loop = asyncio.get_running_loop()
        self.ticker = Ticker.of(self.loop)
        self.ticker.add(self)
        self._arm()
        self.running = True
        try:
            await self._run_app()
        finally:
            self.running = False
            self._stop_background()
            self.duration = time.monotonic() - self.started
            logger.debug(
                "%s %s closed %s: %d messages in, %d lines out, %.3fs",
                self.method,
                self.path,
                self.close_code,
                self.messages_in,
                self.messages_out,
                self.duration,
            )
            self._notify(self.settings.on_stream_end)  # also when the server cancels the stream
        return self

    def _notify(self, observer: StreamObserver | None) -> None:
        if observer is None:
            return
        try:
            observer(self)
        except Exception:
            logger.exception("stream observer %r raised for %s", observer, self.path)

    async def _run_app(self) -> None:
        failure: BaseException | None = None
        try:
            await self.app(self.plan.scope, self.receive, self.send)
        except asyncio.CancelledError:
            if not self._cancelled_only_by_us():
                raise  # the server is cancelling this connection
            return  # cancelled by us after the client left
        except BaseException as exc:  # one app's failure ends only its own stream
            failure = exc
        finally:
            self.running = False
            if self.cancel_handle is not None:
                self.cancel_handle.cancel()
        if self.cancelled_by_us and self.task is not None and hasattr(self.task, "uncancel"):
            # The app swallowed our cancellation and returned: leave the server's task as it was.
            self.task.uncancel()
        level, what = self.outcome(failure)
        if level >= logging.ERROR and failure is not None:
            logger.error("%s on %s", what, self.path, exc_info=failure)
        elif level > logging.DEBUG:
            logger.log(level, "%s on %s", what, self.path)
        await self._send_close()

    def _cancelled_only_by_us(self) -> bool:
        if not self.cancelled_by_us:
            return False
        task = self.task
        if task is not None and hasattr(task, "uncancel"):  # Python 3.11+ counts cancellations
            return task.uncancel() == 0
        return True

    def _cancel_app(self) -> None:
        if self.running and self.task is not None:
            self.cancelled_by_us = True
            self.task.cancel()

    # The app's receive: the WebSocket read directly, one message per call.

    async def receive(self) -> Message:
        if not self.body_open or self.gone:
            await self._wait_gone()
            return {"type": "http.disconnect"}
        if self.yield_due:
            # The turn owed since the last message, taken before reading the next one: no large
            # message is held over it (see the page faults in docs/performance.md).
            self.yielded()
            await self._take_turn()
        if self.inbox:
            message = self.inbox.popleft()
            self.took_from_inbox(message)
        else:
            # In receive from here on, also while a reader ahead is stopped: a send in another task
            # of the app (a bidi app's response pump) must not start a new reader meanwhile, which
            # would read beside this receive and take the message it waits for.
            self.in_receive = True
            try:
                if self.reader is not None:
                    await self._stop_reader()
                message = await self._next_message()
            finally:
                self.in_receive = False
            if not self.armed:  # the receive waited, and the loop turned meanwhile: watch for the next
                self._arm()
            # Messages that wait already behind this one go to the app with it, as one chunk.
            event = self.gather(message, self.ws_receive)
            if event is None:
                event = self.client_message(message)
            if self.pending:
                await self._after_receive()
            return event
        event = self.client_message(message)
        if self.pending:
            await self._after_receive()
        return event

    def _next_message(self) -> Awaitable[Message]:
        """The server's next message: the receive `gather` started, if it did, else a new one."""
        started = self.receiving
        if started is None:
            return self.ws_receive()
        self.receiving = None
        return resume(started)

    async def _after_receive(self) -> None:
        self.pending = False
        if self.leftover is not None:  # taken by `gather`, not joined: the app's next message
            if self.inbox is None:
                self.inbox = deque()
            self.inbox.append(self.leftover)
            self.leftover = None
        if self.gone:
            if self.closing is not None and self.closing.code == closecodes.MESSAGE_TOO_BIG:
                logger.info("%s: incoming message over the limit", self.path)
            await self._send_close()
        elif not self.body_open:
            self._end_body()
        if self.yield_due and (self.gone or not self.body_open):
            self.yielded()
            await self._take_turn()

    async def _wait_gone(self) -> None:
        if self.gone:
            await asyncio.sleep(0)  # an app that polls receive() after the end must still let the loop run
            return
        if self.gone_waiter is None:
            self.gone_waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(self.gone_waiter)

    def _end_body(self) -> None:
        if self.body_ended(unread=bool(self.inbox)):
            self.closer = asyncio.ensure_future(self._send_close())
        elif self.reader is None and not self.gone:
            self._start_reader()

    async def _stop_reader(self) -> None:
        """Back in receive: stop reading ahead. The servers' receive is cancel-safe, but legacy
        websockets' refuses a second reader until the cancelled one has unwound: wait for it."""
        reader = self.reader
        self.reader = None
        if reader is not None and not reader.done():
            reader.cancel()
            await asyncio.wait((reader,))

    def _start_reader(self) -> None:
        self.reader = asyncio.get_running_loop().create_task(self._read_ahead())

    async def _read_ahead(self) -> None:
        """Read while the app is away: to the inbox while the body is open, a violation after it."""
        try:
            while self.may_read_ahead():
                message = await self._next_message()
                verdict = self.read_ahead(message)
                if verdict != KEEP:
                    await self._send_close()  # the violation's close; nothing if the client left
                    return
                if self.inbox is None:
                    self.inbox = deque()
                self.inbox.append(message)
        except OSError:
            self.client_left(None)
            self._gone()
        finally:
            if self.reader is asyncio.current_task():
                self.reader = None

    # The app's send: lines out as frames, the close frame at the end.

    async def send(self, message: Message) -> None:
        frame = self.single_frame(message)
        if frame is not None:
            # The common case, one line: kept apart from the general path on purpose (and
            # not in a helper coroutine), it runs for every message.
            try:
                await self.ws_send(frame)
            except (OSError, RuntimeError) as exc:
                raise self._send_failed(exc) from exc
            if self.pending:
                frame = None  # not held over a turn of the loop (see below)
                await self._after_send()
            return
        if message["type"] != "http.response.body":
            self.response_start(message)
            return
        lines = self.several_lines(message)
        if lines is not None:
            frame_cost = self.frame_cost
            for line in lines:
                try:
                    await self.ws_send({"type": "websocket.send", "text": line})
                except (OSError, RuntimeError) as exc:
                    raise self._send_failed(exc) from exc
                self.spent += len(line) + frame_cost
                if self.spent >= self.yield_budget:
                    self.yield_due = True
                    await self._yield_sending()
            return
        try:
            frames = self.response_body(message)
        except MessageTooBig:
            logger.info("%s: response line over the limit", self.path)
            await self._send_close()
            raise ClientDisconnected("response line too big: stream closed with 1009") from None
        except ClientDisconnected:
            await asyncio.sleep(0)  # an app that ignores this and sends on must still let the loop run
            raise
        if len(frames) == 1:
            try:
                await self.ws_send(frames[0])
            except (OSError, RuntimeError) as exc:
                raise self._send_failed(exc) from exc
        else:
            for frame in frames:
                try:
                    await self.ws_send(frame)
                except (OSError, RuntimeError) as exc:
                    raise self._send_failed(exc) from exc
                if self.charge_frame(frame):
                    await self._yield_sending()
        # Drop the frames before a yield: a large line held over a turn of the loop makes glibc
        # give heap back and fault it in again on the next message (page faults, docs/performance.md).
        frames = ()
        frame = None
        if self.pending:
            await self._after_send()

    async def _after_send(self) -> None:
        self.pending = False
        if self.closing is not None:
            await self._send_close()
        if self.yield_due:
            await self._yield_sending()

    def _send_failed(self, exc: BaseException) -> ClientDisconnected:
        if isinstance(exc, RuntimeError):
            # The server sent its own close (keepalive timeout, shutdown, its frame limit) and
            # refuses further frames: for the app that is a client gone, not a crash of its own.
            self.server_closed()
            self._gone()
            return ClientDisconnected("the server closed the WebSocket")
        self.client_left(None)
        self._gone()
        return ClientDisconnected("the WebSocket client has gone away")

    async def _yield_sending(self) -> None:
        """The app has sent its budget's worth: give the loop a turn, and make sure a client that
        vanished is noticed even if the app never reads (the read-ahead watches the socket)."""
        if self.yielded() and self.reader is None and not self.in_receive and self.may_read_ahead():
            self._start_reader()
        await self._take_turn()

    # The budget counts the work since the loop last had a turn, however it came: a stream whose
    # receive waits for its client every few messages (the usual case) gives the loop its turns by
    # itself and is never made to take another. A callback queued on the loop (`_arm`) runs only
    # once the loop has come round, which it does only after the task that queued it suspended:
    # when it runs, the budget starts over. Forced turns remain for a stream that never suspends.

    async def _take_turn(self) -> None:
        await asyncio.sleep(0)
        if not self.armed:
            self._arm()

    def _arm(self) -> None:
        self.armed = True
        self.loop.call_soon(self._turn_seen)

    def _turn_seen(self) -> None:
        self.armed = False
        self.loop_turned()

    # Ending the stream.

    async def _send_close(self) -> None:
        """Send the close frame the core decided on, once; either way the stream is gone now."""
        closing = self.take_close()
        self._gone()
        if closing is None:
            return
        # A client already gone needs no close frame, and a server that closed on its own refuses it.
        with contextlib.suppress(OSError, RuntimeError):
            await self.ws_send({"type": "websocket.close", "code": closing.code, "reason": closing.reason})

    def _gone(self) -> None:
        """No frame can go either way any more: wake the app's receive, and end the app if it hangs."""
        if self.gone_handled:
            return
        self.gone_handled = True
        if self.gone_waiter is not None and not self.gone_waiter.done():
            self.gone_waiter.set_result(None)
        if self.running and not self.response_complete:
            # The app hears of it through receive() and send(); if it does not finish, end it.
            # (After a complete response it may run on, as with Starlette's background tasks.)
            self.cancel_handle = asyncio.get_running_loop().call_later(
                DISCONNECT_GRACE_SECONDS, self._cancel_app
            )

    def _tick(self, *, first: bool = False) -> None:
        """Once a second (the shared `Ticker`). The first tick of a stream comes 0-1 s after it
        started, so it starts no idle count: idleness is counted from the second tick on."""
        if self.gone:
            return
        if not first and self.tick():
            logger.debug("%s: idle, closing", self.path)
            self.closer = asyncio.ensure_future(self._send_close())
            return
        if self.body_open and not self.in_receive and self.reader is None and self.may_read_ahead():
            self._start_reader()

    def _stop_background(self) -> None:
        if self.ticker is not None:
            self.ticker.discard(self)
        if self.receiving is not None:
            self.receiving.coro.close()
            self.receiving = None
        if self.cancel_handle is not None:
            self.cancel_handle.cancel()
        for task in (self.reader, self.closer):
            if task is not None and not task.done():
                task.cancel()


async def run_stream(
    app: ASGIApp, plan: RequestPlan, settings: StreamSettings, receive: Receive, send: Send
) -> StreamStats:
    """Run one WebSocket connection, already past `websocket.connect`, as one HTTP request to `app`.

    `receive`/`send` are an ASGI WebSocket pair (a server's, or a virtual one that feeds
    `websocket.receive`/`websocket.disconnect` and collects `websocket.accept`/`send`/`close`).
    Returns the stream's record once the app has ended and the close is sent.
    """
    return await Stream(app, plan, settings, receive, send).run()
