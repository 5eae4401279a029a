"""One proxied stream's decisions, without I/O: events in, actions out.

Theory of operation. The I/O shell (wsproxy/middleware.py) owns the sockets, tasks and timers; this
module owns every decision about what they carry, in the manner of python-websockets' protocol core:

- client -> app: `client_message()` turns one ASGI `websocket.*` event into the app's `http.*` event.
  It knows what a message means: the half-close marker ends the body, CR/LF become spaces (one message
  is one body line), a message over `max_message_size` ends the stream with 1009, a disconnect marks the
  client gone, and with `single_message` the first message also ends the body. `gather()` joins the
  short text messages that the server already holds behind one another into one event (one wake-up
  of the app for a burst instead of one per message), starting the server's receive by hand so that
  it never waits (wsproxy/stream/_nowait.py); the receive it leaves suspended is the shell's next read.
- app -> client: `single_frame()` (the common case: one short line), `response_start()` and
  `response_body()` turn the app's response into the text or binary frames to send (one per line),
  and on the last body event decide the close code from the status (1000, or 4000 + status). A line
  over `max_line_size` ends the stream with 1009.
- the end: `outcome()` maps how the app ended (returned, raised, returned early) to a log level and a
  close frame; `client_left()` and `server_closed()` record that no frame can go either way any more.
- scheduling: every frame charges the yield budget, one for both directions. When `yield_due` is set
  the shell must give the event loop a turn before the next event: no stream, whatever its app does,
  runs more than YIELD_EVERY_FRAMES frames or YIELD_EVERY_BYTES bytes (plus the frame that crossed
  it) in one turn of the loop. Without it an app that never awaits anything but `send` never lets
  the server run anything else (other clients, signals, the notice that its own client reset the
  connection), because the servers' `send` and `receive` do not suspend while their buffers allow.
  `yielded()` also tells the shell whether the app only sent since the last turn: then nothing reads
  the socket for it, and the shell starts the read-ahead to see a vanished client. `loop_turned()`
  starts the budget over when the loop had a turn without being made to (the stream suspended on
  its own): the limit is on work between two turns, however they came.
- read-ahead: while the app is away from `receive`, the shell may read the socket into an inbox;
  `read_ahead()` decides what each message read that way means (keep it, a violation after the end of
  the body, the client gone) and `may_read_ahead()` bounds the inbox.
- idleness: `tick()` is called once a second and answers whether the idle timeout has run out.

When the core decides to end the stream, it sets `closing` to the close frame the shell must send now
(once: `closing` is cleared by `take_close()`, and a stream that is gone never closes twice). Any
decision the shell must act on also sets `pending`, so the common case costs the shell one test.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import CoroutineType
from typing import NamedTuple

from wsproxy import closecodes
from wsproxy._options import ProxyOptions
from wsproxy._types import Message, Receive
from wsproxy.errors import ClientDisconnected, MessageTooBig
from wsproxy.stream._lines import LineSplitter
from wsproxy.stream._nowait import Started, as_coroutine, failed

# The yield budget: at most this many frames, or this many bytes, counting both directions, between
# two turns of the event loop (docs/reliability.md). Measured (docs/performance.md): a forced turn
# costs 3-8 us, and a stream that waits for its client takes none; at 16 frames a flooding client's
# turn lasts a fifth of a millisecond, so a new call beside it waits little more than that per step
# (at 64 frames its p50 was 3x the bare echo's on asyncio, the target 2x; 16 cost 3% at 64 B).
YIELD_EVERY_FRAMES = 16
YIELD_EVERY_BYTES = 256 * 1024
READ_AHEAD_BYTES = 64 * 1024  # what a stream may hold unread while its app is away (plus one message)
SINGLE_LINE_MAX = 4096  # the fast path takes lines shorter than this (longer ones are sent as views)
# Text messages shorter than this that already wait behind one another go to the app as one body
# chunk (`gather`); longer ones gain nothing from it and would be copied once more.
GATHER_MAX = 4096
TICK_SECONDS = 1.0  # how often an open stream checks for idleness and a vanished client

# What a message read ahead (while the app is away) means.
KEEP = 0
VIOLATION = 1
GONE = 2


class YieldBudget:
    """The same budget for other pumps (the gateway's): charge each message, yield when told.

    `charge()` returns True when the loop must get a turn (then the budget starts over).
    """

    __slots__ = ("frame_cost", "limit", "spent")

    def __init__(self, frames: int = YIELD_EVERY_FRAMES, nbytes: int = YIELD_EVERY_BYTES) -> None:
        self.limit = nbytes
        self.frame_cost = nbytes // frames
        self.spent = 0

    def charge(self, size: int) -> bool:
        self.spent += size + self.frame_cost
        if self.spent >= self.limit:
            self.spent = 0
            return True
        return False


class Close(NamedTuple):
    code: int
    reason: str = ""


@dataclass(slots=True, eq=False)
class StreamStats:
    """The record of one stream, for logs, metrics and access logs: live, counted in place.

    The same object is passed to `on_stream_start` (after the accept) and `on_stream_end` (when the
    stream has ended, cancelled or not); read it, never write it. Messages and bytes are counted as
    they pass (in: client -> app, the half-close not counted; out: app -> client, one per line;
    bytes are payload sizes). `close_code` is the code of the close frame we sent, the client's own
    close code, or None when the connection was lost without one. `duration` is set at the end;
    `started` is `time.monotonic()` at the start.
    """

    method: str = ""
    path: str = ""
    client: str | None = None
    close_code: int | None = None
    messages_in: int = 0
    bytes_in: int = 0
    messages_out: int = 0
    bytes_out: int = 0
    duration: float = 0.0
    started: float = field(default_factory=time.monotonic)


StreamObserver = Callable[[StreamStats], None]


@dataclass(frozen=True)
class StreamSettings:
    """What every stream of one middleware shares, computed once from its options."""

    half_close: bytes | None = b""
    max_message_size: int = 1 << 20
    max_line_size: int = 1 << 20
    idle_timeout: float | None = None
    yield_frames: int = YIELD_EVERY_FRAMES
    yield_bytes: int = YIELD_EVERY_BYTES
    on_stream_start: StreamObserver | None = None
    on_stream_end: StreamObserver | None = None

    def __post_init__(self) -> None:
        for name in ("on_stream_start", "on_stream_end"):
            hook = getattr(self, name)
            if hook is not None and not callable(hook):
                raise TypeError(f"{name} must be callable: (StreamStats) -> None")

    @classmethod
    def from_options(
        cls,
        options: ProxyOptions,
        *,
        on_stream_start: StreamObserver | None = None,
        on_stream_end: StreamObserver | None = None,
    ) -> StreamSettings:
        return cls(
            half_close=options.half_close_bytes(),
            max_message_size=options.max_message_size,
            max_line_size=options.max_line_size,
            idle_timeout=options.idle_timeout,
            on_stream_start=on_stream_start,
            on_stream_end=on_stream_end,
        )


class StreamCore(StreamStats):
    """The state and decisions of one stream; see the module docstring.

    It is its own StreamStats record: the counts live in the object the decisions already touch,
    so counting costs nothing extra per message.
    """

    # Slots: thousands of streams may be open at once.
    __slots__ = (
        "body_open",
        "closed",
        "closing",
        "end_read",
        "frame_cost",
        "gather_max",
        "gone",
        "half_close",
        "half_close_text",
        "idle_limit",
        "idle_ticks",
        "inbox_bytes",
        "last_counts",
        "leftover",
        "max_line_size",
        "max_message_size",
        "messages_at_yield",
        "pending",
        "receiving",
        "response_complete",
        "single_message",
        "spent",
        "splitter",
        "status",
        "yield_budget",
        "yield_due",
    )

    def __init__(
        self,
        settings: StreamSettings,
        *,
        single_message: bool = False,
        method: str = "",
        path: str = "",
        client: str | None = None,
    ) -> None:
        StreamStats.__init__(self, method=method, path=path, client=client)
        self.half_close = settings.half_close
        self.half_close_text = _text_of(settings.half_close)  # the same marker as a text message
        self.max_message_size = settings.max_message_size
        # A joined text is at most 4 bytes per character: never over the limit (else: never joined).
        self.gather_max = GATHER_MAX if settings.max_message_size >= 4 * GATHER_MAX else 0
        self.splitter = LineSplitter(settings.max_line_size)
        self.max_line_size = settings.max_line_size
        self.single_message = single_message
        # One counter for both limits: each frame costs its size plus an equal share of the byte
        # budget, so a turn ends after `yield_frames` frames or `yield_bytes` bytes, whichever first.
        self.yield_budget = settings.yield_bytes
        self.frame_cost = settings.yield_bytes // settings.yield_frames
        timeout = settings.idle_timeout
        # Idleness is counted in ticks without traffic: no clock read per message.
        self.idle_limit = None if timeout is None else max(1, math.ceil(timeout / TICK_SECONDS))
        self.idle_ticks = 0
        self.last_counts = (0, 0, True)

        self.body_open = True
        self.end_read = False  # a message read ahead ends the body
        self.inbox_bytes = 0
        self.leftover: Message | None = None  # taken by `gather` but not joined: the shell keeps it
        # The server's receive, started by `gather` and suspended: the shell's next read finishes it.
        self.receiving: Started[Message] | None = None
        self.status: int | None = None
        self.response_complete = False
        self.gone = False  # no frame can go either way any more
        self.closed = False  # a close frame was sent, or the client's arrived
        self.closing: Close | None = None  # a close frame the shell must send now
        self.spent = 0
        self.messages_at_yield = 0  # messages_in at the last yield: did the app read since?
        self.yield_due = False
        # Set with any decision the shell must act on after an event: a yield, a close, the end of
        # the body, the client gone. One flag, so the common case costs the shell one test.
        self.pending = False

    # client -> app

    def client_message(self, message: Message) -> Message:
        """The app's event for one event from the WebSocket (which the shell read for it)."""
        if message["type"] != "websocket.receive":
            self.client_left(message.get("code", closecodes.GOING_AWAY))
            return {"type": "http.disconnect"}
        data = message.get("bytes")
        if data is None:
            # A text message (the usual kind). Taken out of the event, so that this str is held
            # only here: then `text += "\n"` extends it in place (CPython resizes a str nobody else
            # holds) and one encode makes the body line. Encoding first and appending the newline
            # to the bytes would copy a large message twice and allocate twice (docs/performance.md).
            text: str = message.pop("text", "")
            if text == self.half_close_text:
                return self._half_closed(len(text))
            if "\n" in text or "\r" in text:
                # Raw line breaks would split one message into two requests; in JSON they are whitespace.
                text = text.replace("\r", " ").replace("\n", " ")
            text += "\n"
            body = text.encode()
            size = len(body) - 1
        else:
            size = len(data)
            if data == self.half_close:
                return self._half_closed(size)
            if 10 in data or 13 in data:  # b"\n", b"\r" (an int test skips the substring search setup)
                data = data.replace(b"\r", b" ").replace(b"\n", b" ")
            body = data + b"\n"
        # _charge(), inlined: this runs for every message, and a call costs more than the rest.
        self.spent += size + self.frame_cost
        if self.spent >= self.yield_budget:
            self.yield_due = self.pending = True
        if size > self.max_message_size:
            self.close(closecodes.MESSAGE_TOO_BIG, "message too big")
            return {"type": "http.disconnect"}
        self.messages_in += 1
        self.bytes_in += size
        if self.single_message:
            self.body_open = False
            self.pending = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.request", "body": body, "more_body": True}

    def gather(self, first: Message, receive: Receive) -> Message | None:
        """The app's event for `first` and the messages that already wait behind it, joined into
        one body chunk; None if `first` is not for joining (then `client_message` decides).

        Messages that arrived together reach the app together: one event, one wake-up of the app
        and one encode for all of them, where each would cost its own (docs/performance.md). Only
        short text messages with no line break are joined, none after the half-close marker, and
        at most what the yield budget allows.

        `receive` is the server's: each call is run by hand up to its first suspension
        (wsproxy.stream._nowait, inlined: this runs for every message of a burst). A message it has at
        once is taken; a receive that would wait is left in `receiving` for the shell's next read
        to finish, so nothing is waited for here and nothing is read twice. A message taken but
        not joined is read ahead (`read_ahead`): kept in `leftover` for the shell, or the client gone.
        """
        limit = self.gather_max
        half = self.half_close_text
        text = first.get("text")
        if (
            text is None
            or len(text) >= limit
            or text == half
            or "\n" in text
            or "\r" in text
            or not self.body_open
            or self.single_message
        ):
            return None
        texts = [text]
        cost = self.frame_cost
        budget = self.yield_budget
        spent = self.spent + len(text) + cost
        while spent < budget:
            coro = receive()
            if type(coro) is not CoroutineType:  # (as_coroutine(), inlined)
                coro = as_coroutine(coro)
            try:
                yielded = coro.send(None)
            except StopIteration as stop:
                message: Message = stop.value
            except Exception as exc:  # the receive failed at once: the next read raises it
                self.receiving = failed(exc)
                break
            else:
                self.receiving = Started(coro, yielded)
                break
            text = message.get("text")
            if text is None or len(text) >= limit or text == half or "\n" in text or "\r" in text:
                if self.read_ahead(message) == KEEP:
                    self.leftover = message
                self.pending = True
                break
            texts.append(text)
            spent += len(text) + cost
        self.spent = spent
        if spent >= budget:
            self.yield_due = self.pending = True
        texts.append("")  # the last newline
        body = "\n".join(texts).encode()
        count = len(texts) - 1
        self.messages_in += count
        self.bytes_in += len(body) - count
        return {"type": "http.request", "body": body, "more_body": True}

    def _half_closed(self, size: int) -> Message:
        self._charge(size)
        self.body_open = False
        self.pending = True
        return {"type": "http.request", "body": b"", "more_body": False}

    def read_ahead(self, message: Message) -> int:
        """What one event read while the app was away means: KEEP it for the app, a VIOLATION, or GONE."""
        if message["type"] != "websocket.receive":
            self.client_left(message.get("code", closecodes.GOING_AWAY))
            return GONE
        if self.end_read or not self.body_open:
            self.close(closecodes.POLICY_VIOLATION, "message after end of request body")
            return VIOLATION
        self.inbox_bytes += message_size(message)
        self.end_read = self.single_message or message_data(message) == self.half_close
        return KEEP

    def body_ended(self, *, unread: bool) -> bool:
        """The app got the end of the body; True if a message already waits after it (closing: 1008)."""
        if unread and not self.gone:
            self.close(closecodes.POLICY_VIOLATION, "message after end of request body")
            return True
        return False

    def took_from_inbox(self, message: Message) -> None:
        self.inbox_bytes -= message_size(message)

    def may_read_ahead(self) -> bool:
        """Whether the shell may read one more message ahead (the inbox is bounded while the body is open)."""
        return not self.gone and (self.inbox_bytes <= READ_AHEAD_BYTES or not self.body_open)

    # app -> client

    def response_start(self, message: Message) -> None:
        kind = message["type"]
        if kind != "http.response.start":
            raise RuntimeError(
                f'Expected ASGI message "http.response.start" or "http.response.body", but got {kind!r}'
            )
        if self.status is not None:
            raise RuntimeError('Unexpected ASGI message "http.response.start" sent twice')
        self.status = int(message["status"])

    def single_frame(self, message: Message) -> Message | None:
        """The one frame for a body event that is exactly one line with nothing buffered, charged to
        the budget; None for anything else (then `response_start` or `response_body` decides).

        The common case of a message-per-chunk stream, answered without building a list: it runs for
        every message, so its tests are the cheap ones (an index, `in`; a method call such as
        `bytes.find` costs several times more on short lines).
        """
        if (
            message["type"] != "http.response.body"
            or not message.get("more_body", False)
            or self.status is None
            or self.response_complete
            or self.gone
        ):
            return None
        chunk: bytes = message.get("body", b"")
        end = len(chunk) - 1
        if (
            end <= 0
            or chunk[end] != 10  # b"\n"
            or chunk[end - 1] == 13  # b"\r": the general path strips it
            or end > self.max_line_size
            or self.splitter._tail
        ):
            return None
        if end < SINGLE_LINE_MAX:
            line = chunk[:end]
            if 10 in line:
                return None
            # The counting and _charge(), inlined: a call would cost as much as they do.
            self.messages_out += 1
            self.bytes_out += end
            self.spent += end + self.frame_cost
            if self.spent >= self.yield_budget:
                self.yield_due = self.pending = True
            try:
                return {"type": "websocket.send", "text": line.decode()}  # (str(line, "utf-8") costs more)
            except UnicodeDecodeError:
                return {"type": "websocket.send", "bytes": line}
        if chunk.find(10, 0, end) >= 0:
            return None
        view = memoryview(chunk)[:end]  # decoded from the chunk itself: no copy of a long line
        self.messages_out += 1
        self.bytes_out += end
        self._charge(end)
        try:
            return {"type": "websocket.send", "text": str(view, "utf-8")}
        except UnicodeDecodeError:
            return {"type": "websocket.send", "bytes": bytes(view)}

    def several_lines(self, message: Message) -> list[str] | None:
        """The lines of a body event that is several short complete text lines with nothing
        buffered (what a gathered request echoes back), counted; None for anything else. The shell
        sends each as a text frame and charges it (`charge_line`)."""
        if (
            message["type"] != "http.response.body"
            or not message.get("more_body", False)
            or self.status is None
            or self.response_complete
            or self.gone
            or self.splitter._tail
        ):
            return None
        chunk: bytes = message.get("body", b"")
        size = len(chunk)
        if not size or chunk[size - 1] != 10 or size > self.max_line_size or 13 in chunk:
            return None
        try:
            lines = chunk.decode().split("\n")
        except UnicodeDecodeError:
            return None
        lines.pop()  # the empty string after the last newline
        if "" in lines:
            return None  # empty lines are skipped: the general path knows how
        self.messages_out += len(lines)
        self.bytes_out += size - len(lines)
        return lines

    def response_body(self, message: Message) -> Sequence[Message]:
        """The frames for one `http.response.body` event; the close on the last one is left in `closing`.

        One frame (or none) is charged to the yield budget here; when there are several, the shell
        charges each as it sends it (`charge_frame`). Raises MessageTooBig for a line over the
        limit, after setting `closing` to 1009.
        """
        status = self.status
        if status is None or self.response_complete:
            raise RuntimeError(
                'Unexpected ASGI message "http.response.body" before "http.response.start" or after the end'
            )
        if self.gone:
            raise ClientDisconnected("the WebSocket client has gone away")
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        splitter = self.splitter
        try:
            lines = splitter.feed_views(body) if body else ()
            if not more_body:
                self.response_complete = True
                lines = [*lines, *splitter.flush()]
        except MessageTooBig:
            self.close(closecodes.MESSAGE_TOO_BIG, "response line too big")
            raise
        frames: list[Message] = []
        size = 0
        for line in lines:
            size += len(line)
            try:
                frames.append({"type": "websocket.send", "text": str(line, "utf-8")})
            except UnicodeDecodeError:
                frames.append({"type": "websocket.send", "bytes": bytes(line)})
        self.messages_out += len(frames)
        self.bytes_out += size
        if len(frames) <= 1:
            # One frame, or none (an event with no complete line still costs a turn's share: an app
            # sending empty bodies forever must yield too). Several are charged one by one as the
            # shell sends them (charge_frame), so a chunk of many lines still yields within it.
            self._charge(size)
        if not more_body:
            self.close(*closecodes.close_for_status(status))
        return frames

    def charge_frame(self, frame: Message) -> bool:
        """Charge one of several frames `response_body` returned; True when the loop must get a turn."""
        return self._charge(message_size(frame))

    def _charge(self, size: int) -> bool:
        """One frame of `size` bytes against the yield budget; True (and `yield_due`) once it is spent."""
        self.spent += size + self.frame_cost
        if self.spent >= self.yield_budget:
            self.yield_due = self.pending = True
        return self.yield_due

    def yielded(self) -> bool:
        """The shell gives the loop a turn: the budget starts over.

        Returns True if the app took no message during the budget just spent: it only sends, so the
        shell should watch the socket for it (a vanished client is seen only by reading).
        """
        only_sent = self.messages_in == self.messages_at_yield
        self.loop_turned()
        return only_sent

    def loop_turned(self) -> None:
        """The event loop had a turn, forced or because the stream suspended on its own (a receive
        that waited for the client, a send held back by a full buffer): the budget starts over."""
        self.messages_at_yield = self.messages_in
        self.yield_due = False
        self.spent = 0

    # The end.

    def close(self, code: int, reason: str = "") -> None:
        """Decide to end the stream with `code`: the shell sends `closing` (unless the client is gone)."""
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        if not self.gone:
            self.closing = Close(code, reason)
        self.gone = self.pending = True

    def take_close(self) -> Close | None:
        closing, self.closing = self.closing, None
        return closing

    def client_left(self, code: int | None) -> None:
        """The client closed (its code) or the connection was lost (None): nothing more can be sent."""
        if not self.closed:
            self.closed = True
            self.close_code = code
        self.gone = self.pending = True
        self.closing = None

    def server_closed(self) -> None:
        """The server ended the connection on its own (keepalive timeout, shutdown, its frame limit)."""
        self.client_left(None)

    def outcome(self, failure: BaseException | None) -> tuple[int, str]:
        """How the app's end is reported: (log level, message); a close frame is left in `closing`.

        `failure` is what the app raised, or None if it returned. Logged at ERROR only when it is
        the app's fault: not when it tripped over its client's absence.
        """
        if failure is not None:
            if self.gone and isinstance(failure, OSError):
                return logging.DEBUG, "app ended on the client's absence"
            code, reason = closecodes.close_for_exception(failure)
            self.close(code, reason)
            if code in (closecodes.MESSAGE_TOO_BIG, closecodes.POLICY_VIOLATION):
                return logging.INFO, str(failure)  # wsproxy's own error about what the client sent
            if code == closecodes.BAD_GATEWAY:
                # The upstream's failure, logged once per call where it happened (wsproxy.upstream):
                # when a shared upstream connection dies, hundreds of streams end at once.
                return logging.WARNING, "upstream failed"
            return logging.ERROR, "app raised"
        if self.response_complete or self.closed:
            return logging.DEBUG, "app returned"
        if self.status is None:
            self.close(closecodes.INTERNAL_ERROR, "no response")
            return logging.ERROR, "app returned without a response"
        self.close(closecodes.INTERNAL_ERROR, "incomplete response")
        return logging.ERROR, "app returned before finishing its response"

    def tick(self) -> bool:
        """Called every TICK_SECONDS: True if the idle timeout ran out (then `closing` holds 1001)."""
        if self.gone:
            return False
        counts = (self.messages_in, self.messages_out, self.body_open)
        self.idle_ticks = self.idle_ticks + 1 if counts == self.last_counts else 0
        self.last_counts = counts
        if self.idle_limit is not None and self.idle_ticks >= self.idle_limit:
            self.close(closecodes.GOING_AWAY, "idle timeout")
            return True
        return False


def _text_of(marker: bytes | None) -> str | None:
    """The text message equal to `marker`; None if none is (no marker, or not UTF-8)."""
    if marker is None:
        return None
    try:
        return marker.decode()
    except UnicodeDecodeError:
        return None


def message_data(message: Message) -> bytes:
    data: bytes | None = message.get("bytes")
    if data is None:
        text: str = message.get("text", "")
        return text.encode()
    return data


def message_size(message: Message) -> int:
    data = message.get("bytes")
    return len(data if data is not None else message.get("text", ""))
