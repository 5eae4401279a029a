"""gRPC status -> HTTP status and the google.rpc.Status JSON body, as grpc-gateway v2 writes them."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import json_format
from google.rpc import status_pb2  # type: ignore[import-untyped]

# runtime.HTTPStatusFromCode in grpc-gateway v2.
_HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    # Deliberately not 412: grpc-gateway maps FAILED_PRECONDITION to 400.
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}
_DETAILS_KEY = "grpc-status-details-bin"


def http_status(code: grpc.StatusCode) -> int:
    return _HTTP_STATUS.get(code, 500)


class GatewayError(Exception):
    """An error the gateway answers itself, with a gRPC code (and the HTTP status mapped from it)."""

    def __init__(self, code: grpc.StatusCode, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status if http_status is not None else _HTTP_STATUS.get(code, 500)

    def body(self) -> dict[str, Any]:
        return {"code": self.code.value[0], "message": self.message, "details": []}


def rpc_error_body(error: grpc.aio.AioRpcError) -> dict[str, Any]:
    """`{"code", "message", "details"}`, with details from the rich status trailer when present."""
    details: list[Any] = []
    trailers: Any = error.trailing_metadata() or ()
    for key, value in trailers:
        if key == _DETAILS_KEY and isinstance(value, bytes):
            try:
                status = status_pb2.Status.FromString(value)
                details = json_format.MessageToDict(status).get("details", [])
            except Exception:
                details = []
    return {"code": error.code().value[0], "message": error.details() or "", "details": details}
