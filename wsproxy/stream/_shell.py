"""The stream's I/O shell: one WebSocket connection driven as one streaming HTTP request to the app.

Theory of operation. Every decision (what a message means, when the body ends, which close code,
when the loop is owed a turn) is made by the stream's sans-I/O core (wsproxy/stream/_core.py), a
member of the stream: the shell hands it each event, sends what it returns, and when the core has
set `pending`, carries out its actions in order (`_act`). This module only moves messages and
schedules. The app runs in the server's task with our `receive` and `send`. Its `receive` reads the
WebSocket directly (no pump task, no queue), so a message is taken from the socket only when the app
asks for more body: that is the backpressure, and it keeps the hot path free of task switches.
Messages the server already holds behind the one read go to the app with it, as one body chunk
(the core's `join`, offered what wsproxy/stream/_nowait.py takes without waiting): a burst wakes the
app once. Its `send` splits the body into lines and sends each as a frame at once.

The servers' `receive` and `send` do not suspend while their buffers allow, so a stream whose data
flows both ways would never let the event loop run: a stream that has not suspended on its own for
a turn budget's worth of frames (wsproxy/stream/_budget.py, both directions together) is made to
give the loop a turn (`asyncio.sleep(0)`). That keeps other streams served, signals handled, and
lets the server notice a client that reset the connection. A turn that comes by itself (a receive
that waits for the client) starts the budget over too: a callback queued on the loop tells (`_arm`).

A client can also vanish while the app is not reading (it is busy, streaming a response, or done
with the body). So whenever the app has been away from `receive` for a tick (one second), as soon
as it has sent a budget's worth without reading, and for good once the body has ended, a reader task
reads the socket ahead into the core's small bounded inbox: the app then gets `http.disconnect`, a
raising `send`, and after a grace period a cancellation. When the app comes back to `receive` it
drains the inbox and then reads inline again. A message after the end of the body is a protocol
violation (1008). A call without a body (GET, HEAD) has it ended from the start: the reader watches
the socket at once, and the app's first receive is the empty body, ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from wsproxy import closecodes
from wsproxy._handshake import RequestPlan
from wsproxy._types import ASGIApp, Message, Receive, Send
from wsproxy.errors import ClientDisconnected, MessageTooBig
from wsproxy.stream._actions import BODY_ENDED, CLIENT_GONE, KEEP, TURN_AND_WATCH, Act, Close, message_size
from wsproxy.stream._apptask import AppTask
from wsproxy.stream._core import StreamCore
from wsproxy.stream._nowait import ServerReceive
from wsproxy.stream._records import StreamSettings, StreamStats, notify
from wsproxy.stream._ticker import Ticker

logger = logging.getLogger("wsproxy")


class Stream:
    """The I/O and scheduling of one proxied stream; every decision is made by its `core`."""

    # Slots: thousands of streams may be open at once, and a per-instance dict is about 1 KiB.
    __slots__ = (
        "app",
        "app_task",
        "armed",
        "closer",
        "core",
        "gone_handled",
        "gone_waiter",
        "in_receive",
        "loop",
        "plan",
        "reader",
        "rx",
        "settings",
        "ticker",
        "ws_send",
    )

    loop: asyncio.AbstractEventLoop  # set when the stream runs

    def __init__(
        self, app: ASGIApp, plan: RequestPlan, settings: StreamSettings, receive: Receive, send: Send
    ) -> None:
        scope = plan.scope
        client = scope.get("client")
        stats = StreamStats(
            method=scope.get("method", ""),
            path=scope.get("path", ""),
            client=f"{client[0]}:{client[1]}" if client else None,
        )
        self.core = StreamCore(
            settings,
            stats,
            single_message=plan.single_message,
            bodyless=plan.bodyless,
            report_status=plan.report_status,
        )
        self.app = app
        self.plan = plan
        self.settings = settings
        self.rx = ServerReceive(receive)
        self.ws_send = send
        self.in_receive = False
        self.reader: asyncio.Task[None] | None = None
        self.closer: asyncio.Future[None] | None = None
        # A future made only when the app waits for the client to go, rather than an asyncio.Event
        # (about 1 KiB per stream).
        self.gone_waiter: asyncio.Future[None] | None = None
        self.gone_handled = False
        self.app_task = AppTask()
        self.ticker: Ticker | None = None
        self.armed = False  # a `_turn_seen` is queued on the loop

    async def run(self) -> StreamStats:
        stats = self.core.stats
        try:
            await self.ws_send({"type": "websocket.accept", "subprotocol": self.plan.subprotocol})
        except OSError:
            return stats  # the client left during the handshake: no stream to report
        notify(self.settings.on_stream_start, stats)
        # Kept: on Python 3.11 every get_running_loop() is a getpid() system call.
        self.loop = asyncio.get_running_loop()
        self.ticker = Ticker.of(self.loop)
        self.ticker.add(self)
        self._arm()
        if self.core.pending:  # a call without a body: watch the socket from the start
            await self._act()
        try:
            # Awaited right here, not in a helper coroutine: one coroutine frame per open stream fewer.
            cancelled, failure = await self.app_task.run(self.app, self.plan.scope, self.receive, self.send)
            if not cancelled:  # (by us, after the client left: nothing to report)
                self._report(failure)
                await self._send_close()
        finally:
            self._stop_background()
            stats.duration = time.monotonic() - stats.started
            logger.debug(
                "%s %s closed %s: %d messages in, %d lines out, %.3fs",
                stats.method,
                stats.path,
                stats.close_code,
                stats.messages_in,
                stats.messages_out,
                stats.duration,
            )
            notify(self.settings.on_stream_end, stats)  # also when the server cancels the stream
        return stats

    def _report(self, failure: BaseException | None) -> None:
        """Log how the app ended, as the core judges it (the close frame it decided is sent next)."""
        level, what = self.core.outcome(failure)
        path = self.core.stats.path
        if level >= logging.ERROR and failure is not None:
            logger.error("%s on %s", what, path, exc_info=failure)
        elif level > logging.DEBUG:
            logger.log(level, "%s on %s", what, path)

    # The app's receive: the WebSocket read directly, one message per call.

    async def receive(self) -> Message:
        core = self.core
        if not core.body_open or core.gone:
            ended = core.ended_body()  # a call without a body: its end, once
            if ended is not None:
                return ended
            await self._wait_gone()
            return {"type": "http.disconnect"}
        if core.pending:
            # A turn owed since the last message, taken before reading the next one: no large
            # message is held over it (see the page faults in docs/performance.md).
            await self._act(reading=True)
        message = core.next_kept()
        if message is None:
            # In receive from here on, also while a reader ahead is stopped: a send in another task
            # of the app (a bidi app's response pump) must not start a new reader meanwhile, which
            # would read beside this receive and take the message it waits for.
            self.in_receive = True
            try:
                if self.reader is not None:
                    await self._stop_reader()
                message = await self.rx.next()
            finally:
                self.in_receive = False
            if not self.armed:  # the receive waited, and the loop turned meanwhile: watch for the next
                self._arm()
            # Messages that wait already behind this one go to the app with it, as one event.
            if core.join(message):
                rx = self.rx
                while (ready := rx.ready()) is not None and core.join(ready):
                    pass
            event = core.joined()
            if event is None:
                # The text moved out of the server's event, so that the core holds the only reference.
                event = core.client_message(message, message.pop("text", None))
        else:
            event = core.client_message(message, message.pop("text", None))
        if core.pending:
            await self._act()
        return event

    async def _wait_gone(self) -> None:
        if self.core.gone:
            await asyncio.sleep(0)  # an app that polls receive() after the end must still let the loop run
            return
        if self.gone_waiter is None:
            self.gone_waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(self.gone_waiter)

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
        """Read while the app is away: to the core's inbox while the body is open, a violation after it."""
        core = self.core
        try:
            while core.may_read_ahead():
                if core.read_ahead(await self.rx.next()) != KEEP:
                    await self._send_close()  # the violation's close; nothing if the client left
                    return
        except OSError:
            core.client_left(None)
            self._gone()
        finally:
            if self.reader is asyncio.current_task():
                self.reader = None

    # The app's send: lines out as frames, the close frame at the end.

    async def send(self, message: Message) -> None:
        core = self.core
        response = core.response
        frame = response.single_frame(message)
        if frame is not None:
            # The common case, one line: kept apart from the general path on purpose (and
            # not in a helper coroutine), it runs for every message.
            try:
                await self.ws_send(frame)
            except (OSError, RuntimeError) as exc:
                raise self._send_failed(exc) from exc
            if core.pending:
                frame = None  # not held over a turn of the loop (see below)
                await self._act()
            return
        if message["type"] != "http.response.body":
            control = response.metadata(message)  # the status or trailers frame, if the client asked
            if control is not None:
                try:
                    await self.ws_send(control)
                except (OSError, RuntimeError) as exc:
                    raise self._send_failed(exc) from exc
            if core.pending:
                await self._act()
            return
        # Frames sent one by one are charged one by one to the stream's budget, which the shell
        # shares with its core: a chunk of many lines still gives the loop its turns within it.
        budget = core.budget
        lines = response.several_lines(message)
        if lines is not None:
            for line in lines:
                try:
                    await self.ws_send({"type": "websocket.send", "text": line})
                except (OSError, RuntimeError) as exc:
                    raise self._send_failed(exc) from exc
                if budget.charge(len(line)):
                    await self._turn(core.turn())
            return
        try:
            frames = response.body(message)
        except MessageTooBig:
            logger.info("%s: response line over the limit", core.stats.path)
            await self._send_close()
            raise ClientDisconnected("response line too big: stream closed with 1009") from None
        except ClientDisconnected:
            await asyncio.sleep(0)  # an app that ignores this and sends on must still let the loop run
            raise
        several = len(frames) > 1  # one frame, or none, the core charged already
        for frame in frames:
            try:
                await self.ws_send(frame)
            except (OSError, RuntimeError) as exc:
                raise self._send_failed(exc) from exc
            if several and budget.charge(message_size(frame)):
                await self._turn(core.turn())
        # Drop the frames before a turn: a large line held over a turn of the loop makes glibc
        # give heap back and fault it in again on the next message (page faults, docs/performance.md).
        frames = ()
        frame = None
        if core.pending:
            await self._act()

    def _send_failed(self, exc: BaseException) -> ClientDisconnected:
        if isinstance(exc, RuntimeError):
            # The server sent its own close (keepalive timeout, shutdown, its frame limit) and
            # refuses further frames: for the app that is a client gone, not a crash of its own.
            self.core.server_closed()
            self._gone()
            return ClientDisconnected("the server closed the WebSocket")
        self.core.client_left(None)
        self._gone()
        return ClientDisconnected("the WebSocket client has gone away")

    # The core's actions.

    async def _act(self, *, reading: bool = False) -> None:
        """Carry out the core's pending actions, in its order (`reading`: before a read)."""
        core = self.core
        while (action := core.next_action()) is not None:
            if isinstance(action, Close):
                if action.code == closecodes.MESSAGE_TOO_BIG:
                    logger.info("%s: incoming message over the limit", core.stats.path)
                await self._send_close(action)
            elif action is CLIENT_GONE:
                self._gone()
            elif action is BODY_ENDED:
                if self.reader is None:  # watch the socket for good: a message now is a violation
                    self._start_reader()
            else:
                await self._turn(action, reading=reading)

    async def _turn(self, action: Act, *, reading: bool = False) -> None:
        """Give the loop the turn the core asked for; with TURN_AND_WATCH the app only sent since the
        last one, so unless a read comes next, make sure a client that vanished is noticed (the
        read-ahead watches the socket)."""
        if (
            action is TURN_AND_WATCH
            and not reading
            and self.reader is None
            and not self.in_receive
            and self.core.may_read_ahead()
        ):
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
        self.core.loop_turned()

    # Ending the stream.

    async def _send_close(self, closing: Close | None = None) -> None:
        """Send the close frame given, or else the one the core decided on, if any; either way the
        stream is gone now. A client already gone needs no close frame, and a server that closed on
        its own refuses it."""
        if closing is None:
            closing = self.core.take_close()
        self._gone()
        if closing is not None:
            with contextlib.suppress(OSError, RuntimeError):
                await self.ws_send(
                    {"type": "websocket.close", "code": closing.code, "reason": closing.reason}
                )

    def _gone(self) -> None:
        """No frame can go either way any more: wake the app's receive, and end the app if it hangs."""
        if self.gone_handled:
            return
        self.gone_handled = True
        if self.gone_waiter is not None and not self.gone_waiter.done():
            self.gone_waiter.set_result(None)
        if not self.core.response.complete:
            # The app hears of it through receive() and send(); if it does not finish, end it.
            # (After a complete response it may run on, as with Starlette's background tasks.)
            self.app_task.end_later()

    def _tick(self, *, first: bool = False) -> None:
        """Once a second (the shared `Ticker`). The first tick of a stream comes 0-1 s after it
        started, so it starts no idle count: idleness is counted from the second tick on."""
        core = self.core
        if core.gone:
            return
        if not first and core.tick():
            logger.debug("%s: idle, closing", core.stats.path)
            self.closer = asyncio.ensure_future(self._send_close())
            return
        if core.body_open and not self.in_receive and self.reader is None and core.may_read_ahead():
            self._start_reader()

    def _stop_background(self) -> None:
        if self.ticker is not None:
            self.ticker.discard(self)
        self.rx.close()
        self.app_task.stop()
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
