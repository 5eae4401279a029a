"""gRPC status -> HTTP status and the google.rpc.Status JSON body, as grpc-gateway v2 writes them."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import json_format
from google.rpc import status_pb2  # type: ignore[import-untyped]

from wsproxy._grpc_codes import http_status_for_grpc_code

_DETAILS_KEY = "grpc-status-details-bin"


def http_status(code: grpc.StatusCode) -> int:
    """runtime.HTTPStatusFromCode in grpc-gateway v2 (FAILED_PRECONDITION is 400 there, not 412)."""
    return http_status_for_grpc_code(code.value[0])


class GatewayError(Exception):
    """An error the gateway answers itself, with a gRPC code (and the HTTP status mapped from it)."""

    def __init__(self, code: grpc.StatusCode, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = (
            http_status if http_status is not None else http_status_for_grpc_code(code.value[0])
        )

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
