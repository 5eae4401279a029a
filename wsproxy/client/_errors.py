"""The errors a wsproxy call can end with, and the pure mapping from a close frame to them.

A call ends with a close frame: 1000 is success; 4000 + status carries the wrapped app's HTTP error
status, preceded by its error body; the other codes are transport-level outcomes (RFC 6455 7.4).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from wsproxy import closecodes
from wsproxy._grpc_codes import grpc_code_name, http_status_for_grpc_code


def reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


class CallError(Exception):
    """Base class: the call did not end normally.

    Attributes:
        code: the WebSocket close code that ended the call, or None when there was none
            (refused handshake, dropped connection, an error line in the stream).
        reason: the close reason, or a short explanation.
    """

    def __init__(self, message: str, *, code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class HTTPStatusError(CallError):
    """The wrapped app answered with an HTTP error status (close code 4000 + status).

    Also raised, with `code` None, when the server refused the handshake with an HTTP status.

    Attributes:
        status: the HTTP status (400, 401, 404, 500, ...).
        error_body: the error body: parsed JSON when it was JSON, else the text; None when empty.
        grpc_code, grpc_code_name, message, details: read from a google.rpc.Status body
            ({"code": 3, "message": "...", "details": [...]}) when there is one, else None / [].
    """

    def __init__(self, status: int, reason: str, error_body: Any = None, *, code: int | None = None) -> None:
        status_body = _status_fields(error_body)
        self.status = status
        self.error_body = error_body
        self.grpc_code: int | None = status_body.get("code")
        self.grpc_code_name = grpc_code_name(self.grpc_code)
        self.message: str | None = status_body.get("message")
        self.details: list[Any] = status_body.get("details") or []
        super().__init__(self._describe(reason), code=code, reason=reason)

    def _describe(self, reason: str) -> str:
        parts = [f"HTTP {self.status}"]
        if self.grpc_code_name:
            parts.append(self.grpc_code_name)
        elif reason:
            parts.append(reason)
        if self.message and self.message != parts[-1]:
            parts.append(self.message)
        elif self.error_body is not None and not isinstance(self.error_body, dict):
            parts.append(str(self.error_body)[:200])
        return " ".join(parts)


class StreamError(HTTPStatusError):
    """A streaming response reported an error in-band: an {"error": {...}} line.

    Its HTTP status is the one grpc-gateway maps the gRPC code to (the response had already
    started with 200, so there is no real status to read).
    """

    def __init__(self, error: Any) -> None:
        fields = _status_fields(error)
        status = fields.get("http_code") or http_status_for_grpc_code(fields.get("code"))
        super().__init__(status, reason_phrase(status), error)


class PolicyViolationError(CallError):
    """Close 1008: the client broke the proxy's rules (e.g. a message after the half-close)."""


class MessageTooBigError(CallError):
    """Close 1009: a message or a response line exceeded a size limit."""


class ProxyInternalError(CallError):
    """Close 1011: the wrapped app raised instead of answering."""


class TryAgainLaterError(CallError):
    """Close 1013: the proxy is at its connection limit; retry after a delay."""


class BadGatewayError(CallError):
    """Close 1014: the proxy's upstream failed in the middle of the response."""


class DeadlineExceededError(CallError):
    """The call's `timeout` ran out on the client (plus DEADLINE_GRACE_SECONDS for the service's own
    answer, usually HTTP 504, to arrive) and the call was abandoned; `code` is None."""


class ConnectionLostError(CallError):
    """The connection dropped without a close frame (1006): the outcome of the call is unknown."""


class ConnectError(CallError):
    """The WebSocket connection could not be opened (refused, unreachable, not a WebSocket)."""


class UnexpectedCloseError(CallError):
    """The call ended with a close code that has no more specific error (1001, 1002, 1007, ...)."""


_BY_CODE: dict[int, type[CallError]] = {
    closecodes.POLICY_VIOLATION: PolicyViolationError,
    closecodes.MESSAGE_TOO_BIG: MessageTooBigError,
    closecodes.INTERNAL_ERROR: ProxyInternalError,
    closecodes.TRY_AGAIN_LATER: TryAgainLaterError,
    closecodes.BAD_GATEWAY: BadGatewayError,
}

ABNORMAL_CLOSURE = 1006


def error_for_close(code: int | None, reason: str, error_body: Any = None) -> CallError | None:
    """The error a call ending with close `code` raises, or None for a normal end.

    `code` None means no close frame arrived (the connection dropped).
    `error_body` is the last line received, which for an HTTP error status is its error JSON.
    """
    if code == closecodes.NORMAL:
        return None
    if code is None or code == ABNORMAL_CLOSURE:
        return ConnectionLostError(
            "connection lost before the call ended", code=ABNORMAL_CLOSURE, reason=reason
        )
    status = closecodes.http_status_from_close(code)
    if status is not None:
        return HTTPStatusError(status, reason or reason_phrase(status), error_body, code=code)
    error_class = _BY_CODE.get(code, UnexpectedCloseError)
    return error_class(
        f"call closed with {code}" + (f" {reason}" if reason else ""), code=code, reason=reason
    )


def is_status_body(value: Any) -> bool:
    """Whether `value` looks like a google.rpc.Status, grpc-gateway's error body."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("code"), int)
        and isinstance(value.get("message"), str)
        and value.keys() <= {"code", "message", "details", "error", "http_code", "http_status"}
    )


def _status_fields(body: Any) -> dict[str, Any]:
    """The typed google.rpc.Status fields of `body`; ill-typed ones are left out."""
    if not isinstance(body, dict):
        return {}
    fields: dict[str, Any] = {}
    for name, kind in (("code", int), ("http_code", int), ("message", str), ("details", list)):
        value = body.get(name)
        if isinstance(value, kind) and not isinstance(value, bool):
            fields[name] = value
    # Bodies of other shapes: wsproxy's refused handshakes ({"error": ...}), FastAPI ({"detail": ...}).
    for name in ("error", "detail"):
        if "message" not in fields and isinstance(body.get(name), str):
            fields["message"] = body[name]
    return fields
