"""`passthrough_paths`: which upgrades go to the app's own WebSocket routes, and the checks at construction."""

from __future__ import annotations

from typing import Any

import pytest

from wsproxy import WebSocketProxyMiddleware
from wsproxy._options import ProxyOptions


async def noop(scope: Any, receive: Any, send: Any) -> None:
    return None


@pytest.mark.parametrize(
    ("paths", "path", "passes"),
    [
        (("/ws/",), "/ws/native", True),
        (("/ws/",), "/ws", True),
        (("/ws",), "/ws/native", True),
        (("/ws",), "/ws", True),
        (("/ws",), "/wsx", False),
        (("/ws/",), "/wsx/native", False),
        (("/ws/",), "/v1/stream", False),
        (("/ws/", "/live"), "/live/feed", True),
        (("/ws/", "/live"), "/liveness", False),
        (("/",), "/anything", True),
        (("/",), "/", True),
        (("/boX",), "/boX", True),  # only slashes are stripped from a prefix
        (("/boX",), "/boX/chat", True),
        (("/boX",), "/bo/chat", False),
        ((), "/ws/native", False),
        (["/ws/"], "/ws/native", True),
        (frozenset({"/ws"}), "/ws/a/b", True),
        (lambda path: path.endswith("/native"), "/deep/native", True),
        (lambda path: path.endswith("/native"), "/deep/proxied", False),
    ],
)
def test_which_paths_pass_through(paths: Any, path: str, passes: bool) -> None:
    predicate = ProxyOptions(passthrough_paths=paths).passthrough()
    assert (predicate is not None and predicate(path)) is passes


def test_by_default_every_upgrade_is_proxied() -> None:
    assert WebSocketProxyMiddleware(noop).options.passthrough_paths is None
    assert ProxyOptions().passthrough() is None


@pytest.mark.parametrize(
    ("paths", "error", "message"),
    [
        (
            "/ws/",
            TypeError,
            "passthrough_paths must be a collection of path prefixes or a predicate, not a str",
        ),
        (
            b"/ws/",
            TypeError,
            "passthrough_paths must be a collection of path prefixes or a predicate, not a str",
        ),
        (["ws/"], ValueError, "passthrough_paths: each prefix must be a path starting with /, got 'ws/'"),
        ([""], ValueError, "passthrough_paths: each prefix must be a path starting with /, got ''"),
        ([b"/ws/"], ValueError, "passthrough_paths: each prefix must be a path starting with /, got b'/ws/'"),
        (42, TypeError, "passthrough_paths"),
    ],
)
def test_bad_passthrough_paths_fail_at_construction(paths: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as raised:
        WebSocketProxyMiddleware(noop, passthrough_paths=paths)
    assert message in str(raised.value)


@pytest.mark.parametrize("paths", ["/ws/", b"/ws/"])
def test_a_single_prefix_given_as_a_string_is_refused_with_the_exact_message(paths: Any) -> None:
    with pytest.raises(TypeError) as raised:
        ProxyOptions(passthrough_paths=paths)
    assert str(raised.value) == (
        "passthrough_paths must be a collection of path prefixes or a predicate, not a str"
    )


async def test_a_passed_upgrade_reaches_the_app_untouched_before_anything_is_read() -> None:
    seen: list[tuple[Any, Any, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope, receive, send))

    async def receive() -> Any:
        raise AssertionError("the middleware read the handshake of a passed-through upgrade")

    async def send(message: Any) -> None:
        raise AssertionError("the middleware answered a passed-through upgrade")

    scope = {"type": "websocket", "path": "/ws/native", "headers": [], "query_string": b""}
    await WebSocketProxyMiddleware(app, passthrough_paths=["/ws/"])(scope, receive, send)
    assert len(seen) == 1
    assert seen[0][0] is scope
    assert seen[0][1] is receive
    assert seen[0][2] is send
