"""One proxied stream's decisions, without I/O: events in, actions out.

Theory of operation. The I/O shell (wsproxy/middleware.py) owns the sockets, tasks and timers; this
module owns every decision about what they carry, in the manner of python-websockets' protocol core:

- client -> app: `client_message()` turns one ASGI `websocket.*` event into the app's `http.*` event.
  It knows what a message means: the half-close marker ends the body, CR/LF become spaces (one message
  is one body line), a message over `max_message_size` ends the stream with 1009, a disconnect marks the
  client gone, and with `single_message` the first message also ends the body.
- app -> client: `response_start()` and `response_body()` turn the app's response into the text or
  binary frames to send (one per line), and on the last body event decide the close code from the
  status (1000, or 4000 + status). A line over `max_line_size` ends the stream with 1009.
- the end: `outcome()` maps how the app ended (returned, raised, returned early) to a log level and a
  close frame; `client_left()` and `server_closed()` record that no frame can go either way any more.
- scheduling: every event charges the yield budget, one for both directions. When `yield_due` is set
  the shell must give the event loop a turn before the next event: no stream, whatever its app does,
  runs more than `frames` frames or `nbytes` bytes in one turn of the loop. Without it an app that
  never awaits anything but `send` never lets the server run anything else (other clients, signals,
  the notice that its own client reset the connection), because the servers' `send` and `receive`
  do not suspend while their buffers allow.
- read-ahead: while the app is away from `receive`, the shell may read the socket into an inbox;
  `read_ahead()` decides what each message read that way means (keep it, a violation after the end of
  the body, the client gone) and `may_read_ahead()` bounds the inbox.
- idleness: `tick()` is called once a second and answers whether the idle timeout has run out.

When the core decides to end the stream, it sets `closing` to the close frame the shell must send now
(once: `closing` is cleared by `take_close()`, and a stream that is gone never closes twice).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from wsproxy import closecodes
from wsproxy._lines import LineSplitter
from wsproxy._options import ProxyOptions
from wsproxy._types import Message
from wsproxy.errors import ClientDisconnected, MessageTooBig

# The yield budget: at most this many frames, or this many bytes, counting both directions, between
# two turns of the event loop. Chosen with `python -m bench` (docs/performance.md): small enough
# that one flooding client delays the others by well under a millisecond per turn, large enough
# that the extra turns cost no measurable throughput.
YIELD_EVERY_FRAMES = 64
YIELD_EVERY_BYTES = 256 * 1024
READ_AHEAD_BYTES = 64 * 1024  # what a stream may hold unread while its app is away (plus one message)
TICK_SECONDS = 1.0  # how often an open stream checks for idleness and a vanished client

# What a message read ahead (while the app is away) means.
KEEP = 0
VIOLATION = 1
GONE = 2


class Close(NamedTuple):
    code: int
    reason: str = ""


@dataclass(frozen=True)
class StreamSettings:
    """What every stream of one middleware shares, computed once from its options."""

    half_close: bytes | None = b""
    max_message_size: int = 1 << 20
    max_line_size: int = 1 << 20
    idle_timeout: float | None = None
    yield_frames: int = YIELD_EVERY_FRAMES
    yield_bytes: int = YIELD_EVERY_BYTES

    @classmethod
    def from_options(cls, options: ProxyOptions) -> StreamSettings:
        return cls(
            half_close=options.half_close_bytes(),
            max_message_size=options.max_message_size,
            max_line_size=options.max_line_size,
            idle_timeout=options.idle_timeout,
        )


@dataclass(slots=True)
class StreamStats:
    """The record of one stream, made when it ends (for logs, metrics and access logs).

    `close_code` is the code of the close frame we sent, or the client's own close code, or None
    when the connection was lost without a close frame.
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


class StreamCore:
    """The state and decisions of one stream; see the module docstring."""

    # Slots: thousands of streams may be open at once.
    __slots__ = (
        "body_open",
        "bytes_in",
        "bytes_out",
        "close_code",
        "closed",
        "closing",
        "end_read",
        "gone",
        "half_close",
        "idle_limit",
        "idle_ticks",
        "inbox_bytes",
        "last_counts",
        "lines_out",
        "max_message_size",
        "messages_in",
        "response_complete",
        "single_message",
        "spent_bytes",
        "spent_frames",
        "splitter",
        "status",
        "yield_bytes",
        "yield_due",
        "yield_frames",
    )

    def __init__(self, settings: StreamSettings, *, single_message: bool = False) -> None:
        self.half_close = settings.half_close
        self.max_message_size = settings.max_message_size
        self.splitter = LineSplitter(settings.max_line_size)
        self.single_message = single_message
        self.yield_frames = settings.yield_frames
        self.yield_bytes = settings.yield_bytes
        timeout = settings.idle_timeout
        # Idleness is counted in ticks without traffic: no clock read per message.
        self.idle_limit = None if timeout is None else max(1, math.ceil(timeout / TICK_SECONDS))
        self.idle_ticks = 0
        self.last_counts = (0, 0, True)

        self.body_open = True
        self.end_read = False  # a message read ahead ends the body
        self.inbox_bytes = 0
        self.status: int | None = None
        self.response_complete = False
        self.gone = False  # no frame can go either way any more
        self.closed = False  # a close frame was sent, or the client's arrived
        self.close_code: int | None = None
        self.closing: Close | None = None  # a close frame the shell must send now
        self.messages_in = 0
        self.bytes_in = 0
        self.lines_out = 0
        self.bytes_out = 0
        self.spent_frames = 0
        self.spent_bytes = 0
        self.yield_due = False

    # client -> app

    def client_message(self, message: Message) -> Message:
        """The app's event for one event from the WebSocket (which the shell read for it)."""
        if message["type"] != "websocket.receive":
            self.client_left(message.get("code", closecodes.GOING_AWAY))
            return {"type": "http.disconnect"}
        data = message.get("bytes")
        if data is None:
            data = message.get("text", "").encode()
        size = len(data)
        # The budget inline: this runs for every message, and a call costs more than the rest.
        self.spent_frames += 1
        self.spent_bytes += size
        if self.spent_frames >= self.yield_frames or self.spent_bytes >= self.yield_bytes:
            self.yield_due = True
        if data == self.half_close:
            self.body_open = False
            return {"type": "http.request", "body": b"", "more_body": False}
        if size > self.max_message_size:
            self.close(closecodes.MESSAGE_TOO_BIG, "message too big")
            return {"type": "http.disconnect"}
        self.messages_in += 1
        self.bytes_in += size
        if 10 in data or 13 in data:  # b"\n", b"\r" (an int test skips the substring search setup)
            # Raw line breaks would split one message into two requests; in JSON they are whitespace.
            data = data.replace(b"\r", b" ").replace(b"\n", b" ")
        if self.single_message:
            self.body_open = False
            return {"type": "http.request", "body": data + b"\n", "more_body": False}
        return {"type": "http.request", "body": data + b"\n", "more_body": True}

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

    def response_body(self, message: Message) -> Sequence[Message]:
        """The frames for one `http.response.body` event; the close on the last one is left in `closing`.

        Raises MessageTooBig for a line over the limit, after setting `closing` to 1009.
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
        if more_body:
            single = splitter.single_line(body)
            if single is not None:
                # The common case (one short line, nothing buffered), kept apart from the general
                # loop below on purpose: it runs for every message.
                size = len(single)
                self.lines_out += 1
                self.bytes_out += size
                self.spent_frames += 1
                self.spent_bytes += size
                if self.spent_frames >= self.yield_frames or self.spent_bytes >= self.yield_bytes:
                    self.yield_due = True
                try:
                    return ({"type": "websocket.send", "text": single.decode()},)
                except UnicodeDecodeError:
                    return ({"type": "websocket.send", "bytes": single},)
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
        self.lines_out += len(frames)
        self.bytes_out += size
        self.spent_frames += len(frames)
        self.spent_bytes += size
        if self.spent_frames >= self.yield_frames or self.spent_bytes >= self.yield_bytes:
            self.yield_due = True
        if not more_body:
            self.close(*closecodes.close_for_status(status))
        return frames

    def yielded(self) -> None:
        """The shell gave the loop a turn: the budget starts over."""
        self.yield_due = False
        self.spent_frames = 0
        self.spent_bytes = 0

    # The end.

    def close(self, code: int, reason: str = "") -> None:
        """Decide to end the stream with `code`: the shell sends `closing` (unless the client is gone)."""
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        if not self.gone:
            self.closing = Close(code, reason)
        self.gone = True

    def take_close(self) -> Close | None:
        closing, self.closing = self.closing, None
        return closing

    def client_left(self, code: int | None) -> None:
        """The client closed (its code) or the connection was lost (None): nothing more can be sent."""
        if not self.closed:
            self.closed = True
            self.close_code = code
        self.gone = True
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
            self.close(*closecodes.close_for_exception(failure))
            if isinstance(failure, MessageTooBig):
                return logging.INFO, str(failure)
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
        counts = (self.messages_in, self.lines_out, self.body_open)
        self.idle_ticks = self.idle_ticks + 1 if counts == self.last_counts else 0
        self.last_counts = counts
        if self.idle_limit is not None and self.idle_ticks >= self.idle_limit:
            self.close(closecodes.GOING_AWAY, "idle timeout")
            return True
        return False


def message_data(message: Message) -> bytes:
    data: bytes | None = message.get("bytes")
    if data is None:
        text: str = message.get("text", "")
        return text.encode()
    return data


def message_size(message: Message) -> int:
    data = message.get("bytes")
    return len(data if data is not None else message.get("text", ""))
