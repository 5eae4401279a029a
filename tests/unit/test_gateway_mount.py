"""The path the gateway routes on when mounted under a prefix, for each way a server or router sets the scope."""

from __future__ import annotations

from typing import Any

import pytest

from wsproxy.gateway._mount import route_path


def _scope(path: str, raw_path: bytes | None, root_path: str | None) -> dict[str, Any]:
    scope: dict[str, Any] = {"type": "http", "path": path}
    if raw_path is not None:
        scope["raw_path"] = raw_path
    if root_path is not None:
        scope["root_path"] = root_path
    return scope


@pytest.mark.parametrize(
    ("path", "raw_path", "root_path", "expected"),
    [
        # Not mounted.
        ("/v1/echo", b"/v1/echo", None, "/v1/echo"),
        ("/v1/echo", b"/v1/echo", "", "/v1/echo"),
        ("/v1/a/b c", b"/v1/a%2Fb%20c", "", "/v1/a%2Fb%20c"),  # routes see the raw form
        ("/v1/echo", None, None, "/v1/echo"),
        ("/v1/a b", None, None, "/v1/a%20b"),
        ("/v1/echo", b"/v1/echo?x=1", None, "/v1/echo"),
        ("", b"", None, "/"),
        # Starlette >= 0.35 Mount, uvicorn --root-path: the full path in path and raw_path.
        ("/grpc/v1/echo", b"/grpc/v1/echo", "/grpc", "/v1/echo"),
        ("/grpc/v1/a/b c", b"/grpc/v1/a%2Fb%20c", "/grpc", "/v1/a%2Fb%20c"),
        ("/grpc", b"/grpc", "/grpc", "/"),
        ("/grpc/", b"/grpc/", "/grpc", "/"),
        ("/a/b/v1/echo", b"/a/b/v1/echo", "/a/b", "/v1/echo"),  # nested mounts
        ("/grpc/v1/echo", b"/grpc/v1/echo", "/grpc/", "/v1/echo"),
        ("/grpc/v1/echo", None, "/grpc", "/v1/echo"),
        ("/grpc x/v1/echo", b"/grpc%20x/v1/echo", "/grpc x", "/v1/echo"),  # the prefix's raw form
        # Older Starlette Mount: the rest in path, raw_path whole.
        ("/v1/echo", b"/grpc/v1/echo", "/grpc", "/v1/echo"),
        ("/v1/a/b", b"/grpc/v1/a%2Fb", "/grpc", "/v1/a%2Fb"),
        # Already stripped (a multiplexed call's OPEN path): kept.
        ("/v1/echo", b"/v1/echo", "/grpc", "/v1/echo"),
        ("/v1/echo", None, "/grpc", "/v1/echo"),
        # A prefix only on a segment boundary.
        ("/grpcx/v1/echo", b"/grpcx/v1/echo", "/grpc", "/grpcx/v1/echo"),
        # A raw_path that spells the prefix differently: the decoded path decides.
        ("/grpc/v1/echo", b"/gr%70c/v1/echo", "/grpc", "/v1/echo"),
        ("/", b"/", "/", "/"),
    ],
)
def test_route_path(path: str, raw_path: bytes | None, root_path: str | None, expected: str) -> None:
    assert route_path(_scope(path, raw_path, root_path)) == expected
