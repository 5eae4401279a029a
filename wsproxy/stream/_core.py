"""One proxied stream's decisions, without I/O: events in, actions out.

Theory of operation. The I/O shell (wsproxy/stream/_shell.py) owns the socket, the tasks and the
timers and calls this core, in the manner of python-websockets' `Protocol` and h11's `Connection`:
each method takes one event and returns what it becomes; the core never calls back into the shell,
and holds no coroutine, no callable of the server's and no reference to an event loop.

- client -> app: `client_message()` turns one ASGI `websocket.*` event into the app's `http.*` event.
  It knows what a message means: the half-close marker ends the body, CR/LF become spaces (one message
  is one body line), a message over `max_message_size` ends the stream with 1009, a disconnect marks
  the client gone, and with `single_message` the first message also ends the body. A call without a
  body (`bodyless`: GET, HEAD) starts with the body ended: `ended_body()` gives the app its empty,
  ended body once, the socket is watched from the start, a client message is the violation a message
  after the half-close is (1008), and the half-close marker changes nothing. `join()` and
  `joined()` join short text messages that arrived together into one event (one wake-up of the app
  for a burst instead of one per message); the shell offers them while the server holds them.
- app -> client: the core's `response` (wsproxy/stream/_response.py) turns the app's response into
  the frames to send, one per line (and, with `report_status`, the status and trailers frames), and
  at the end has the core close with the code of the status (1000, or 4000 + status).
- read-ahead: while the app is away from `receive`, the shell may read the socket; `read_ahead()`
  decides what each message read that way means (kept in the core's inbox for the app, a violation
  after the end of the body, the client gone) and `may_read_ahead()` bounds the inbox.
- the end: `outcome()` maps how the app ended (returned, raised, returned early) to a log level and a
  close frame; `client_left()` and `server_closed()` record that no frame can go either way any more.
- idleness: `tick()` is called every TICK_SECONDS and answers whether the idle timeout has run out.
- scheduling: every frame, either way, is charged to the stream's turn budget `budget`
  (wsproxy/stream/_budget.py; the several frames of one event are charged by the shell as it sends
  them, then `turn()`). When it is spent, the loop is owed a turn: after a send at once, and after a
  read before the next read or send, so that no message is held over a turn of the loop
  (docs/performance.md). `loop_turned()` starts the budget over when the loop turned by itself.

Actions. Whenever the shell must act, the core sets `pending` (so the common case costs the shell one
test); the shell then calls `next_action()` until it returns None (the vocabulary: wsproxy/stream/_actions.py).
"""

from __future__ import annotations

import logging
import math
from collections import deque

from wsproxy import closecodes
from wsproxy._types import Message
from wsproxy.stream._actions import (
    BODY_ENDED,
    CLIENT_GONE,
    GONE,
    KEEP,
    TURN,
    TURN_AND_WATCH,
    VIOLATION,
    Act,
    Action,
    Close,
    message_data,
    message_size,
    text_of,
)
from wsproxy.stream._budget import TurnBudget
from wsproxy.stream._lines import SHORT
from wsproxy.stream._records import StreamSettings, StreamStats
from wsproxy.stream._response import Response

TICK_SECONDS = 1.0  # how often an open stream checks for idleness and a vanished client
READ_AHEAD_BYTES = 64 * 1024  # what a stream may hold unread while its app is away (plus one message)


class StreamCore:
    """The state and decisions of one stream; see the module docstring. `stats` is its live record."""

    # Slots: thousands of streams may be open at once.
    __slots__ = (
        "body_end_due",
        "body_open",
        "budget",
        "closed",
        "closing",
        "end_read",
        "gather_max",
        "gone",
        "gone_told",
        "half_close",
        "half_close_text",
        "hold_turn",
        "idle_limit",
        "idle_ticks",
        "inbox",
        "inbox_bytes",
        "joining",
        "last_activity",
        "max_message_size",
        "messages_at_turn",
        "no_body",
        "owe_ended_body",
        "pending",
        "response",
        "single_message",
        "stats",
        "turn_due",
    )

    def __init__(
        self,
        settings: StreamSettings,
        stats: StreamStats | None = None,
        *,
        single_message: bool = False,
        bodyless: bool = False,
        report_status: bool = False,
    ) -> None:
        self.stats = StreamStats() if stats is None else stats
        self.half_close = settings.half_close
        self.half_close_text = text_of(settings.half_close)  # the same marker as a text message
        self.max_message_size = settings.max_message_size
        # A joined text is at most 4 bytes per character: never over the limit (else: never joined).
        self.gather_max = SHORT if settings.max_message_size >= 4 * SHORT else 0
        self.single_message = single_message
        self.budget = TurnBudget(settings.yield_frames, settings.yield_bytes)
        timeout = settings.idle_timeout
        # Idleness is counted in ticks without traffic: no clock read per message.
        self.idle_limit = None if timeout is None else max(1, math.ceil(timeout / TICK_SECONDS))
        self.idle_ticks = 0
        self.last_activity = 0

        # A call without a body has it ended before it starts: the app is owed the empty ended body
        # (`ended_body()`), and the socket is watched from the start (BODY_ENDED is due).
        self.no_body = bodyless
        self.owe_ended_body = bodyless
        self.body_open = not bodyless
        self.end_read = False  # a message read ahead ends the body
        # Read ahead while the app was away; made on first use (an empty deque is 760 bytes, and
        # most streams never need one: memory per open stream counts with thousands of them).
        self.inbox: deque[Message] | None = None
        self.inbox_bytes = 0
        self.joining: list[str] | None = None  # the texts being joined into one event
        self.response = Response(self, settings.max_line_size, report_status=report_status)  # app -> client
        self.gone = False  # no frame can go either way any more
        self.closed = False  # a close frame was sent, or the client's arrived
        self.closing: Close | None = None  # a close frame the shell must send now
        self.messages_at_turn = 0  # messages_in at the last turn: did the app read since?
        # The actions, computed from state by next_action(); `pending` says there may be one.
        self.pending = bodyless
        self.gone_told = False
        self.body_end_due = bodyless
        self.turn_due = False
        self.hold_turn = False  # owed after a read: taken before the next read or after a send

    # client -> app

    def client_message(self, message: Message, text: str | None = None) -> Message:
        """The app's event for one event from the WebSocket (which the shell read for it).

        `text`: the message's text, if the shell took it out of the event (`message.pop("text",
        None)`): then this str is held only here and `text += "\\n"` extends it in place (CPython
        resizes a str nobody else holds), so one encode makes the body line. Encoding first and
        appending the newline to the bytes would copy a large message twice (docs/performance.md).
        """
        if message["type"] != "websocket.receive":
            self.client_left(message.get("code", closecodes.GOING_AWAY))
            return {"type": "http.disconnect"}
        data = message.get("bytes") if text is None else None
        if data is None:
            if text is None:
                text = message.get("text") or ""
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
        if self.budget.charge(size):
            self.turn_owed(after_read=True)
        if size > self.max_message_size:
            self.close(closecodes.MESSAGE_TOO_BIG, "message too big")
            return {"type": "http.disconnect"}
        stats = self.stats
        stats.messages_in += 1
        stats.bytes_in += size
        if self.single_message:
            self._end_body()
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.request", "body": body, "more_body": True}

    def join(self, message: Message) -> bool:
        """Offer a message for joining: True if it was joined and the budget has room for more.

        The first message offered starts a joined event only if it is a short text message with no
        line break, not the half-close marker, on an open body of a stream that takes more than one
        message; if it does not, nothing is taken (`joined()` is None, `client_message` decides).
        Later ones that are not for joining are read ahead (`read_ahead`: kept for the app's next
        receive, or the client gone) and end the join. Each joined message is charged to the budget
        as the frame it is, and no more than the budget allows are joined (docs/reliability.md).
        """
        text: str | None = message.get("text")
        texts = self.joining
        if (
            text is None
            or len(text) >= self.gather_max
            or text == self.half_close_text
            or "\n" in text
            or "\r" in text
        ):
            if texts is not None:
                self.read_ahead(message)
            return False
        if texts is not None:
            texts.append(text)
        elif self.body_open and not self.single_message:
            self.joining = [text]
        else:
            return False
        if self.budget.charge(len(text)):
            self.turn_owed(after_read=True)
            return False
        return True

    def joined(self) -> Message | None:
        """The one event for the messages `join()` took, counted; None if it took none."""
        texts = self.joining
        if texts is None:
            return None
        self.joining = None
        texts.append("")  # the last newline
        body = "\n".join(texts).encode()
        count = len(texts) - 1
        stats = self.stats
        stats.messages_in += count
        stats.bytes_in += len(body) - count
        return {"type": "http.request", "body": body, "more_body": True}

    def ended_body(self) -> Message | None:
        """On a call without a body, the app's first receive: the empty body, already ended (once)."""
        if not self.owe_ended_body or self.gone:
            return None
        self.owe_ended_body = False  # from now on the app waits for the client to go, as after a half-close
        return {"type": "http.request", "body": b"", "more_body": False}

    def _half_closed(self, size: int) -> Message:
        if self.budget.charge(size):
            self.turn_owed(after_read=True)
        self._end_body()
        return {"type": "http.request", "body": b"", "more_body": False}

    def _end_body(self) -> None:
        self.body_open = False
        self.pending = True
        if self.inbox:  # a message already waits after the end of the body
            self.close(closecodes.POLICY_VIOLATION, "message after end of request body")
        else:
            self.body_end_due = True

    def read_ahead(self, message: Message) -> int:
        """What one event read while the app was away means: KEEP it (in the inbox, for the app's next
        receive: `next_kept()`; nothing is kept for a half-close on a call without a body, which changes
        nothing), a VIOLATION (closing: 1008), or GONE."""
        if message["type"] != "websocket.receive":
            self.client_left(message.get("code", closecodes.GOING_AWAY))
            return GONE
        if self.end_read or not self.body_open:
            if self.no_body and message_data(message) == self.half_close:
                return KEEP
            self.close(closecodes.POLICY_VIOLATION, "message after end of request body")
            return VIOLATION
        self.inbox_bytes += message_size(message)
        self.end_read = self.single_message or message_data(message) == self.half_close
        if self.inbox is None:
            self.inbox = deque()
        self.inbox.append(message)
        return KEEP

    def next_kept(self) -> Message | None:
        """The oldest message read ahead, taken out of the inbox; None if there is none."""
        if not self.inbox:
            return None
        message = self.inbox.popleft()
        self.inbox_bytes -= message_size(message)
        return message

    def may_read_ahead(self) -> bool:
        """Whether the shell may read one more message ahead (the inbox is bounded while the body is open)."""
        return not self.gone and (self.inbox_bytes <= READ_AHEAD_BYTES or not self.body_open)

    # Actions and turns.

    def turn_owed(self, *, after_read: bool = False) -> None:
        """A frame spent the budget: the loop is owed a turn (`after_read`: taken after the app has its message)."""
        self.turn_due = self.pending = True
        self.hold_turn = after_read

    def next_action(self) -> Action | None:
        """What the shell must do next, in order; None when nothing more (for now). See the module docstring."""
        closing = self.closing
        if closing is not None:
            self.closing = None
            self.gone_told = True
            return closing
        if self.gone and not self.gone_told:
            self.gone_told = True
            return CLIENT_GONE
        if self.body_end_due:
            self.body_end_due = False
            if not self.gone:
                return BODY_ENDED
        if self.turn_due:
            if self.hold_turn and self.body_open and not self.gone:
                # Owed after a read: not before the app has its message (which would hold it over
                # the turn), but before the next read or after the next send. Still pending.
                self.hold_turn = False
                return None
            return self.turn()
        self.pending = False
        return None

    def turn(self) -> Act:
        """The shell gives the loop a turn now (the budget is spent): TURN, or TURN_AND_WATCH when the app
        only sent since the last one. The budget starts over."""
        only_sent = self.stats.messages_in == self.messages_at_turn
        self.loop_turned()
        return TURN_AND_WATCH if only_sent else TURN

    def loop_turned(self) -> None:
        """The event loop had a turn, forced or because the stream suspended on its own (a receive
        that waited for the client, a send held back by a full buffer): the budget starts over."""
        self.messages_at_turn = self.stats.messages_in
        self.turn_due = self.hold_turn = False
        self.budget.restart()
        # The turn was what was pending, unless something else is: then the shell need not ask.
        self.pending = self.closing is not None or self.body_end_due or (self.gone and not self.gone_told)

    # The end.

    def close(self, code: int, reason: str = "") -> None:
        """Decide to end the stream with `code`: the shell sends the `Close` (unless the client is gone)."""
        if self.closed:
            return
        self.closed = True
        self.stats.close_code = code
        if not self.gone:
            self.closing = Close(code, reason)
        self.gone = self.pending = True

    def take_close(self) -> Close | None:
        """The close frame to send now, if one is due (once); the stream is gone either way."""
        closing, self.closing = self.closing, None
        self.gone_told = self.gone_told or self.gone
        return closing

    def client_left(self, code: int | None) -> None:
        """The client closed (its code) or the connection was lost (None): nothing more can be sent."""
        if not self.closed:
            self.closed = True
            self.stats.close_code = code
        self.gone = self.pending = True
        self.closing = None

    def server_closed(self) -> None:
        """The server ended the connection on its own (keepalive timeout, shutdown, its frame limit)."""
        self.client_left(None)

    def outcome(self, failure: BaseException | None) -> tuple[int, str]:
        """How the app's end is reported: (log level, message); a close frame is left for `take_close()`.

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
        response = self.response
        if response.trailers_due and response.complete and not self.closed:
            # The body is all there: the client gets it and the status, with no trailers.
            assert response.status is not None
            self.close(*closecodes.close_for_status(response.status))
            return logging.INFO, "app returned without the trailers it announced"
        if response.complete or self.closed:
            return logging.DEBUG, "app returned"
        if response.status is None:
            self.close(closecodes.INTERNAL_ERROR, "no response")
            return logging.ERROR, "app returned without a response"
        self.close(closecodes.INTERNAL_ERROR, "incomplete response")
        return logging.ERROR, "app returned before finishing its response"

    def tick(self) -> bool:
        """Called every TICK_SECONDS: True if the idle timeout ran out (then `take_close()` gives 1001)."""
        if self.gone:
            return False
        # Traffic either way or the end of the body: the counts only grow and the body only ends, so
        # their sum changes exactly when one of them does (an int, not a tuple kept per stream).
        activity = self.stats.messages_in + self.stats.messages_out + (not self.body_open)
        self.idle_ticks = self.idle_ticks + 1 if activity == self.last_activity else 0
        self.last_activity = activity
        if self.idle_limit is not None and self.idle_ticks >= self.idle_limit:
            self.close(closecodes.GOING_AWAY, "idle timeout")
            return True
        return False
