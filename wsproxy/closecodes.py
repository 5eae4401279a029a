"""The close codes a client sees, and the pure mapping from call outcomes to them.

RFC 6455 section 7.4 codes for transport-level outcomes; 4000 + HTTP status for the wrapped app's
own error statuses (the convention graphql-ws uses), so a client learns 404 from 4404.
"""

from __future__ import annotations

from http import HTTPStatus

from wsproxy.errors import MessageTooBig, RequestBodyNotAllowed, UpstreamError

NORMAL = 1000
GOING_AWAY = 1001
POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009
INTERNAL_ERROR = 1011
TRY_AGAIN_LATER = 1013
BAD_GATEWAY = 1014
HTTP_STATUS_BASE = 4000

# A close frame's payload is at most 125 bytes, two of which carry the code.
MAX_REASON_BYTES = 123


def status_reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def close_for_status(status: int) -> tuple[int, str]:
    """The close frame that ends a call whose app answered with HTTP `status`."""
    if 200 <= status < 300:
        return NORMAL, ""
    if 100 <= status <= 999:
        return HTTP_STATUS_BASE + status, truncate_reason(status_reason(status))
    return INTERNAL_ERROR, "invalid HTTP status"


def close_for_exception(exc: BaseException) -> tuple[int, str]:
    """The close frame for a call the app ended by raising.

    Exception text stays out of the reason: it may carry paths, tokens or data.
    """
    if isinstance(exc, MessageTooBig):
        return MESSAGE_TOO_BIG, "message too big"
    if isinstance(exc, UpstreamError):
        return BAD_GATEWAY, "bad gateway"
    if isinstance(exc, RequestBodyNotAllowed):
        # A GET's body ends before it starts: the same rule as a message after a half-close.
        return POLICY_VIOLATION, "message after end of request body"
    return INTERNAL_ERROR, "internal error"


def http_status_from_close(code: int) -> int | None:
    """The HTTP status a 4000+status close code carries, or None for any other code."""
    status = code - HTTP_STATUS_BASE
    return status if 100 <= status <= 999 else None


def truncate_reason(reason: str) -> str:
    """Cut `reason` to what fits in a close frame without splitting a UTF-8 sequence."""
    encoded = reason.encode()
    if len(encoded) <= MAX_REASON_BYTES:
        return reason
    return encoded[:MAX_REASON_BYTES].decode(errors="ignore")
