"""Turns the frames of a call into messages, its status and trailers, and its close into an outcome; no I/O.

Each line of the wrapped app's response is one frame. By default lines are parsed as JSON and
grpc-gateway's stream envelope is unwrapped: {"result": x} yields x and {"error": {...}} raises.

With the `wsproxy.status.v1` contract the HTTP status arrives before the first line and decides
at once what the lines are. After a 2xx status they are messages, released as they arrive. After
any other status every line is the error body: collected, never released, and carried by the
HTTPStatusError the close raises.

Without a status frame (`status=False`, an older server, or an app that failed before it
answered) a non-2xx response is only recognised by its close code (4000 + status), which arrives
after the error body. So a line shaped like grpc-gateway's error body ({"code": int, "message":
str, ...}) is held back until the next frame or the close decides what it was: the error's
details, or a message. Only such lines wait; every other message is released as soon as it arrives.
"""

from __future__ import annotations

import enum
import json
from typing import Any

from wsproxy._status import SUBPROTOCOL, Control, parse_control
from wsproxy.client._errors import (
    ABNORMAL_CLOSURE,
    CallError,
    HTTPStatusError,
    StreamError,
    error_for_close,
    is_status_body,
    reason_phrase,
)

_NOTHING = object()


class _Phase(enum.Enum):
    AWAITING_STATUS = enum.auto()  # a status frame may still come first
    CLOSE_DECIDES = enum.auto()  # no status frame: the close code tells an error (held lines)
    SUCCESS = enum.auto()  # a 2xx status: lines are messages
    FAILURE = enum.auto()  # any other status: lines are the error body


class ResponseDecoder:
    """One call's response. `status=True` when the call speaks `wsproxy.status.v1`: a status frame
    may come first (on a single socket: the server selected the subprotocol; on mux: OPEN asked)."""

    def __init__(self, *, raw: bool = False, status: bool = False) -> None:
        self.raw = raw
        self.controls = status  # a binary frame may be a control frame
        self.status: int | None = None
        self.headers: list[tuple[str, str]] = []
        self.trailers: list[tuple[str, str]] = []
        self._phase = _Phase.AWAITING_STATUS if status else _Phase.CLOSE_DECIDES
        self._held: Any = _NOTHING
        self._last: Any = None
        self._body: list[str | bytes] = []  # the error body's lines, after a non-2xx status

    @property
    def awaiting_status(self) -> bool:
        """Whether a status frame may still arrive (nothing else has yet)."""
        return self._phase is _Phase.AWAITING_STATUS

    @property
    def failed(self) -> bool:
        """Whether the status frame said the app answered with an error."""
        return self._phase is _Phase.FAILURE

    def feed(self, frame: str | bytes) -> list[Any]:
        """The messages ready after one WebSocket frame of a single-socket call arrived.

        A binary frame that is a control frame (UTF-8 JSON) sets the status or the trailers;
        anything else is a line.

        Raises:
            StreamError: the frame is an {"error": {...}} line of a successful response.
            CallError: the server broke the status contract.
        """
        if self.controls and isinstance(frame, bytes):
            try:
                control = parse_control(frame)
            except ValueError as bad:
                raise CallError(f"malformed {SUBPROTOCOL} control frame: {bad}") from None
            if control is not None:
                self.control(control)
                return []
        return self.line(frame)

    def line(self, line: str | bytes) -> list[Any]:
        """The messages ready after one response line arrived.

        Raises:
            StreamError: the line is an {"error": {...}} line of a successful response.
        """
        if self._phase is _Phase.AWAITING_STATUS:
            self._phase = _Phase.CLOSE_DECIDES  # a line first: the server sends no status
        if self._phase is _Phase.FAILURE:
            self._body.append(line)
            return []
        ready = self._release()
        value = self._last = _parse(line)
        if self.raw:
            ready.append(line)
            return ready
        if isinstance(value, dict) and len(value) == 1:
            if "result" in value:
                ready.append(value["result"])
                return ready
            if isinstance(value.get("error"), dict):
                raise StreamError(value["error"])
        if self._phase is _Phase.CLOSE_DECIDES and is_status_body(value):
            self._held = value
        else:
            ready.append(value)
        return ready

    def control(self, control: Control) -> None:
        """Take a status or trailers frame; one of a type a later version added is skipped.

        Raises:
            CallError: the frame came out of order (the server broke the status contract).
        """
        if not self.controls:
            raise CallError(f"{SUBPROTOCOL}: a {control.kind} frame on a call that did not ask for it")
        if control.kind not in ("status", "trailers"):
            return
        if control.kind == "status":
            if self._phase is not _Phase.AWAITING_STATUS or control.status is None:
                raise CallError(f"{SUBPROTOCOL}: a status frame that is not the call's first frame")
            self.status, self.headers = control.status, list(control.headers)
            self._phase = _Phase.SUCCESS if 200 <= control.status < 300 else _Phase.FAILURE
        else:
            if self._phase is _Phase.AWAITING_STATUS:
                raise CallError(f"{SUBPROTOCOL}: a trailers frame before the status frame")
            self.trailers = list(control.headers)

    def close(self, code: int | None, reason: str = "") -> tuple[list[Any], CallError | None]:
        """The last messages and the error (None for success) once the call closed with `code`.

        `code` None means no close frame arrived (the connection dropped).
        """
        if self.status is not None and self._phase is _Phase.FAILURE:
            error = HTTPStatusError(
                self.status,
                reason or reason_phrase(self.status),
                error_body(self._body),
                code=ABNORMAL_CLOSURE if code is None else code,
            )
            return [], error
        if self._phase is _Phase.SUCCESS:
            return [], error_for_close(code, reason)
        outcome = error_for_close(code, reason, self._last)
        if outcome is not None:
            self._held = _NOTHING
            return [], outcome
        return self._release(), None

    def _release(self) -> list[Any]:
        if self._held is _NOTHING:
            return []
        held, self._held = self._held, _NOTHING
        return [held]


def error_body(lines: list[str | bytes]) -> Any:
    """The error body of a non-2xx response: JSON when the lines are, else their text; None when empty.

    grpc-gateway's stream envelope {"error": {...}} gives the google.rpc.Status inside it.
    """
    if not lines:
        return None
    text = "\n".join(line if isinstance(line, str) else line.decode(errors="replace") for line in lines)
    try:
        body = json.loads(text)
    except ValueError:
        return text
    if isinstance(body, dict) and len(body) == 1 and isinstance(body.get("error"), dict):
        return body["error"]
    return body


def _parse(frame: str | bytes) -> Any:
    """The line as JSON, or as received when it is not JSON (plain text lines stay usable)."""
    try:
        return json.loads(frame)
    except ValueError:
        return frame
