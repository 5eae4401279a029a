"""The middleware's options, checked once at construction so a bad value fails at start-up."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

from wsproxy._types import Scope

RequestMutator = Callable[[Scope, Scope], Scope]
HeaderPredicate = Callable[[str], bool]
ForwardedHeaders = Collection[str] | HeaderPredicate

# W3C Trace Context and Baggage pass by default, so an instrumented app continues the client's trace.
DEFAULT_FORWARDED_HEADERS: tuple[str, ...] = (
    "host",
    "origin",
    "referer",
    "traceparent",
    "tracestate",
    "baggage",
)
DEFAULT_MAX_MESSAGE_SIZE = 1 << 20
DEFAULT_MAX_LINE_SIZE = 1 << 20
DEFAULT_MAX_CALLS_PER_SOCKET = 100

# RFC 9110 token characters: what a method or a header name may be made of.
TOKEN_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


@dataclass(frozen=True)
class ProxyOptions:
    method_override_param: str | None = "method"
    default_method: str = "GET"
    forwarded_headers: ForwardedHeaders = DEFAULT_FORWARDED_HEADERS
    token_cookie_name: str | None = "token"
    request_mutator: RequestMutator | None = None
    half_close_message: str | bytes | None = ""
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    max_line_size: int = DEFAULT_MAX_LINE_SIZE
    allowed_origins: Collection[str] | None = None
    max_connections: int | None = None
    idle_timeout: float | None = None
    max_calls_per_socket: int = DEFAULT_MAX_CALLS_PER_SOCKET

    def __post_init__(self) -> None:
        if not TOKEN_RE.match(self.default_method):
            raise ValueError(f"default_method must be an HTTP method token, got {self.default_method!r}")
        if self.method_override_param == "":
            raise ValueError("method_override_param must be a query parameter name or None")
        if self.token_cookie_name == "":
            raise ValueError("token_cookie_name must be a cookie name or None")
        if self.request_mutator is not None and not callable(self.request_mutator):
            raise TypeError("request_mutator must be callable: (websocket_scope, http_scope) -> http_scope")
        if isinstance(self.forwarded_headers, (str, bytes)):
            raise TypeError(
                "forwarded_headers must be a collection of header names or a predicate, not a str"
            )
        if isinstance(self.allowed_origins, (str, bytes)):
            raise TypeError("allowed_origins must be a collection of origins, not a str")
        for name in ("max_message_size", "max_line_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive number of bytes, got {value!r}")
        if self.max_connections is not None and self.max_connections < 1:
            raise ValueError(f"max_connections must be positive or None, got {self.max_connections!r}")
        if not isinstance(self.max_calls_per_socket, int) or self.max_calls_per_socket < 1:
            raise ValueError(f"max_calls_per_socket must be positive, got {self.max_calls_per_socket!r}")
        if self.idle_timeout is not None and self.idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be positive seconds or None, got {self.idle_timeout!r}")

    def forwards(self) -> HeaderPredicate:
        """A predicate on lower-case header names, built once."""
        if callable(self.forwarded_headers):
            predicate = self.forwarded_headers
            return lambda name: bool(predicate(name))
        names = frozenset(name.lower() for name in self.forwarded_headers)
        return names.__contains__

    def origins(self) -> frozenset[str] | None:
        if self.allowed_origins is None:
            return None
        return frozenset(normalize_origin(origin) for origin in self.allowed_origins)

    def half_close_bytes(self) -> bytes | None:
        if isinstance(self.half_close_message, str):
            return self.half_close_message.encode()
        return self.half_close_message


def normalize_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()
