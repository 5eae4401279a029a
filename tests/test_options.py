from __future__ import annotations

from typing import Any

import pytest

from wsproxy import WebSocketProxyMiddleware


async def noop(scope: Any, receive: Any, send: Any) -> None:
    return None


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"default_method": "GE T"}, ValueError, "default_method"),
        ({"method_override_param": ""}, ValueError, "method_override_param"),
        ({"token_cookie_name": ""}, ValueError, "token_cookie_name"),
        ({"request_mutator": 42}, TypeError, "request_mutator"),
        ({"forwarded_headers": "origin"}, TypeError, "forwarded_headers"),
        ({"allowed_origins": "https://a.example"}, TypeError, "allowed_origins"),
        ({"max_message_size": 0}, ValueError, "max_message_size"),
        ({"max_line_size": -1}, ValueError, "max_line_size"),
        ({"max_connections": 0}, ValueError, "max_connections"),
        ({"idle_timeout": 0}, ValueError, "idle_timeout"),
    ],
)
def test_bad_options_fail_at_construction(
    options: dict[str, Any], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        WebSocketProxyMiddleware(noop, **options)


def test_defaults() -> None:
    options = WebSocketProxyMiddleware(noop).options
    assert options.method_override_param == "method"
    assert options.default_method == "GET"
    assert options.token_cookie_name == "token"
    assert options.half_close_message == ""
    assert options.max_message_size == options.max_line_size == 1 << 20
    assert options.allowed_origins is None
