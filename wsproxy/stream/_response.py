"""The app's response as WebSocket frames, without I/O: the app -> client half of the stream core.

Theory of operation. `Response` belongs to a stream core (wsproxy/stream/_core.py) and answers the
app's `http.response.*` events with the frames to send: one per line of the body (split by
wsproxy/stream/_lines.py), a text frame for UTF-8 and a binary one for anything else, each counted
in the stream's stats and charged to its turn budget. `single_frame()` is the common case, a body
event that is exactly one line, answered without building a list; `several_lines()` answers a chunk
of short text lines (what a joined request echoes back), which the shell sends and charges one by
one; `body()` answers everything else. On the last body event the core is told to close with the
code of the status (1000, or 4000 + status); a line over `max_line_size` closes with 1009. Like the
core, it never calls into the shell: it returns frames and leaves actions with the core.

`metadata()` answers `http.response.start`, and `http.response.trailers`: when the client asked for
the status (`report_status`, wsproxy/_status.py), each becomes a control frame, a binary frame of
UTF-8 JSON, and a response that announced trailers closes after them instead of after its body.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from wsproxy import _status, closecodes
from wsproxy._types import Message
from wsproxy.errors import ClientDisconnected, MessageTooBig
from wsproxy.stream._lines import LineSplitter

if TYPE_CHECKING:
    from wsproxy.stream._core import StreamCore


class Response:
    """The response of one stream: its status, whether it is complete, and its frames."""

    # Slots, and the core's stats and budget reached through `core`: memory per open stream counts.
    __slots__ = ("complete", "core", "report_status", "splitter", "status", "trailers_due")

    def __init__(self, core: StreamCore, max_line_size: int, *, report_status: bool = False) -> None:
        self.core = core
        self.splitter = LineSplitter(max_line_size)
        self.status: int | None = None
        self.complete = False
        self.report_status = report_status
        # The app announced trailers (only honoured when they can reach the client): after the last
        # body event the response waits for them before the close.
        self.trailers_due = False

    def metadata(self, message: Message) -> Message | None:
        """An `http.response.start` event, or `http.response.trailers` when the client takes them: the
        control frame to send, if the client asked for the status. Anything else but a body event is
        refused, by name."""
        kind = message["type"]
        if kind == "http.response.trailers" and self.report_status:
            return self._trailers(message)
        if kind != "http.response.start":
            raise RuntimeError(
                f'Expected ASGI message "http.response.start" or "http.response.body", but got {kind!r}'
            )
        if self.status is not None:
            raise RuntimeError('Unexpected ASGI message "http.response.start" sent twice')
        status = self.status = int(message["status"])
        if not self.report_status or self.core.gone:  # (a client gone hears of it at the next body)
            return None
        self.trailers_due = bool(message.get("trailers", False))
        return self._control(_status.encode_status(status, message.get("headers", ())))

    def _trailers(self, message: Message) -> Message | None:
        if not (self.trailers_due and self.complete):
            raise RuntimeError(
                'Unexpected ASGI message "http.response.trailers": not announced, or before the last body'
            )
        if self.core.gone:
            raise ClientDisconnected("the WebSocket client has gone away")
        frame = self._control(_status.encode_trailers(message.get("headers", ())))
        if not message.get("more_trailers", False):
            self.trailers_due = False
            self.complete = True
            assert self.status is not None
            self.core.close(*closecodes.close_for_status(self.status))
        return frame

    def _control(self, payload: bytes) -> Message:
        core = self.core
        if core.budget.charge(len(payload)):
            core.turn_owed()
        return {"type": "websocket.send", "bytes": payload}

    def single_frame(self, message: Message) -> Message | None:
        """The one frame for a body event that is exactly one line with nothing buffered, charged to
        the budget; None for anything else (then `start` or `body` decides)."""
        if (
            message["type"] != "http.response.body"
            or not message.get("more_body", False)
            or self.status is None
            or self.complete
            or (core := self.core).gone
        ):
            return None
        line = self.splitter.one_line(message.get("body", b""))
        if line is None:
            return None
        size = len(line)
        stats = core.stats
        stats.messages_out += 1
        stats.bytes_out += size
        if core.budget.charge(size):
            core.turn_owed()
        if type(line) is bytes:
            try:
                return {"type": "websocket.send", "text": line.decode()}  # (str(line, "utf-8") costs more)
            except UnicodeDecodeError:
                return {"type": "websocket.send", "bytes": line}
        try:  # a long line, decoded from the chunk itself: no copy of it
            return {"type": "websocket.send", "text": str(line, "utf-8")}
        except UnicodeDecodeError:
            return {"type": "websocket.send", "bytes": bytes(line)}

    def several_lines(self, message: Message) -> list[str] | None:
        """The lines of a body event that is several short complete text lines with nothing buffered
        (what a joined request echoes back), counted; None for anything else. The shell sends each
        as a text frame and charges it to the budget."""
        if (
            message["type"] != "http.response.body"
            or not message.get("more_body", False)
            or self.status is None
            or self.complete
            or self.core.gone
        ):
            return None
        chunk: bytes = message.get("body", b"")
        lines = self.splitter.text_lines(chunk)
        if lines is not None:
            stats = self.core.stats
            stats.messages_out += len(lines)
            stats.bytes_out += len(chunk) - len(lines)
        return lines

    def body(self, message: Message) -> Sequence[Message]:
        """The frames for one `http.response.body` event; on the last one, the core closes (unless
        trailers are due: then after them). `complete` means no more body.

        One frame (or none) is charged to the budget here; when there are several, the shell
        charges each as it sends it. Raises MessageTooBig for a line over the limit, after the core
        decided to close with 1009.
        """
        status = self.status
        if status is None or self.complete:
            raise RuntimeError(
                'Unexpected ASGI message "http.response.body" before "http.response.start" or after the end'
            )
        core = self.core
        if core.gone:
            raise ClientDisconnected("the WebSocket client has gone away")
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        splitter = self.splitter
        try:
            lines = splitter.feed_views(body) if body else ()
            if not more_body:
                self.complete = True
                lines = [*lines, *splitter.flush()]
        except MessageTooBig:
            core.close(closecodes.MESSAGE_TOO_BIG, "response line too big")
            raise
        frames: list[Message] = []
        size = 0
        for line in lines:
            size += len(line)
            try:
                frames.append({"type": "websocket.send", "text": str(line, "utf-8")})
            except UnicodeDecodeError:
                frames.append({"type": "websocket.send", "bytes": bytes(line)})
        core.stats.messages_out += len(frames)
        core.stats.bytes_out += size
        # One frame, or none, is charged here (an event with no complete line still costs a turn's
        # share: an app sending empty bodies forever must yield too). Several are charged one by one
        # as the shell sends them, so a chunk of many lines still yields within it.
        if len(frames) <= 1 and core.budget.charge(size):
            core.turn_owed()
        if not more_body and not self.trailers_due:
            core.close(*closecodes.close_for_status(status))
        return frames
