from __future__ import annotations

from typing import Any

import pytest

from wsproxy import WebSocketProxyMiddleware
from wsproxy._options import ProxyOptions, normalize_origin


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


# Edges found by mutation testing (docs/testing.md): the exact messages, and the smallest legal values.


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"method_override_param": ""}, ValueError, "method_override_param must be a query parameter name or None"),
        ({"token_cookie_name": ""}, ValueError, "token_cookie_name must be a cookie name or None"),
        ({"request_mutator": 42}, TypeError, "request_mutator must be callable: (websocket_scope, http_scope) -> http_scope"),
        ({"forwarded_headers": "origin"}, TypeError, "forwarded_headers must be a collection of header names or a predicate, not a str"),
        ({"allowed_origins": b"https://a.example"}, TypeError, "allowed_origins must be a collection of origins, not a str"),
        ({"default_method": "GE T"}, ValueError, "default_method must be an HTTP method token, got 'GE T'"),
        ({"max_message_size": 0}, ValueError, "max_message_size must be a positive number of bytes, got 0"),
        ({"max_line_size": 1.5}, ValueError, "max_line_size must be a positive number of bytes, got 1.5"),
        ({"max_connections": 0}, ValueError, "max_connections must be positive or None, got 0"),
        ({"idle_timeout": -1}, ValueError, "idle_timeout must be positive seconds or None, got -1"),
        ({"idle_timeout": "30"}, ValueError, "idle_timeout must be positive seconds or None, got '30'"),
        ({"idle_timeout": True}, ValueError, "idle_timeout must be positive seconds or None, got True"),
        ({"idle_timeout": float("nan")}, ValueError, "idle_timeout must be positive seconds or None, got nan"),
        ({"idle_timeout": float("inf")}, ValueError, "idle_timeout must be positive seconds or None, got inf"),
        ({"max_connections": "5"}, ValueError, "max_connections must be positive or None, got '5'"),
        ({"max_connections": 2.5}, ValueError, "max_connections must be positive or None, got 2.5"),
        ({"max_calls_per_socket": 0}, ValueError, "max_calls_per_socket must be positive, got 0"),
        ({"max_calls_per_socket": 0.5}, ValueError, "max_calls_per_socket must be positive, got 0.5"),
    ],
)  # fmt: skip
def test_bad_options_say_exactly_what_is_wrong(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        ProxyOptions(**options)
    assert str(info.value) == message


def test_the_smallest_legal_values_are_accepted() -> None:
    options = ProxyOptions(
        max_message_size=1,
        max_line_size=1,
        max_connections=1,
        idle_timeout=0.5,
        request_mutator=lambda ws_scope, http_scope: http_scope,
        max_calls_per_socket=1,
    )
    assert options.max_calls_per_socket == 1
    assert (options.max_message_size, options.max_line_size, options.max_connections) == (1, 1, 1)
    assert options.idle_timeout == 0.5


def test_a_forwarded_headers_predicate_is_asked_about_each_name() -> None:
    forwards = ProxyOptions(forwarded_headers=lambda name: name == "x-trace").forwards()
    assert forwards("x-trace") is True
    assert forwards("x-other") is False


def test_origins_are_normalized_case_and_trailing_slash() -> None:
    assert normalize_origin("  https://BOX.example/ ") == "https://box.example"
    assert normalize_origin("https://APP.EXAMPLEX//") == "https://app.examplex"
