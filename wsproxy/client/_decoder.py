"""Turns the frames of a call into messages and its close into an outcome; no I/O.

Each frame is one line of the wrapped app's response. By default lines are parsed as JSON and
grpc-gateway's stream envelope is unwrapped: {"result": x} yields x and {"error": {...}} raises.

A non-2xx response is only recognised by its close code (4000 + status), which arrives after the
error body. So a line shaped like grpc-gateway's error body ({"code": int, "message": str, ...}) is
held back until the next frame or the close decides what it was: the error's details, or a message.
Only such lines wait; every other message is released as soon as it arrives.
"""

from __future__ import annotations

import json
from typing import Any

from wsproxy.client._errors import CallError, StreamError, error_for_close, is_status_body

_NOTHING = object()


class ResponseDecoder:
    def __init__(self, *, raw: bool = False) -> None:
        self.raw = raw
        self._held: Any = _NOTHING
        self._last: Any = None

    def feed(self, frame: str | bytes) -> list[Any]:
        """The messages ready after `frame` arrived.

        Raises:
            StreamError: the frame is an {"error": {...}} line.
        """
        ready = self._release()
        if self.raw:
            self._last = _parse(frame)
            ready.append(frame)
            return ready
        value = self._last = _parse(frame)
        if isinstance(value, dict) and len(value) == 1:
            if "result" in value:
                ready.append(value["result"])
                return ready
            if isinstance(value.get("error"), dict):
                raise StreamError(value["error"])
        if is_status_body(value):
            self._held = value
        else:
            ready.append(value)
        return ready

    def close(self, code: int | None, reason: str = "") -> tuple[list[Any], CallError | None]:
        """The last messages and the error (None for success) once the call closed with `code`."""
        error = error_for_close(code, reason, self._last)
        if error is not None:
            self._held = _NOTHING
            return [], error
        return self._release(), None

    def _release(self) -> list[Any]:
        if self._held is _NOTHING:
            return []
        held, self._held = self._held, _NOTHING
        return [held]


def _parse(frame: str | bytes) -> Any:
    """The line as JSON, or as received when it is not JSON (plain text lines stay usable)."""
    try:
        return json.loads(frame)
    except ValueError:
        return frame
