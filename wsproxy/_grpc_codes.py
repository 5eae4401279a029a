"""gRPC status codes as grpc-gateway v2 maps them to HTTP, without importing grpc.

Shared by the gateway (which answers with these statuses) and the clients (which read them back
from an in-stream {"error": ...} line). The browser module, wsproxy/static/wsproxy.js, carries the
same table.
"""

from __future__ import annotations

# google.rpc.Code names, indexed by number, and the HTTP status grpc-gateway answers each with
# (runtime.HTTPStatusFromCode), so an in-stream {"error": ...} line gets the status a unary call would.
GRPC_CODE_NAMES = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)
GRPC_CODE_HTTP_STATUS = (200, 499, 500, 400, 504, 404, 409, 403, 429, 400, 409, 400, 501, 500, 503, 500, 401)


def grpc_code_name(code: int | None) -> str | None:
    if code is None or not 0 <= code < len(GRPC_CODE_NAMES):
        return None
    return GRPC_CODE_NAMES[code]


def http_status_for_grpc_code(code: int | None) -> int:
    if code is None or not 0 <= code < len(GRPC_CODE_HTTP_STATUS):
        return 500
    return GRPC_CODE_HTTP_STATUS[code]
