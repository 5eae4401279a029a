"""The middleware's options, checked once at construction so a bad value fails at start-up.

What each option is, its default and its flag are in wsproxy/_option_table.py; this module holds the
checks and the forms the handshake mapping reads (a header predicate, normalized origins).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

from wsproxy._option_table import (
    DEFAULT_FORWARDED_HEADERS,
    DEFAULT_MAX_CALLS_PER_SOCKET,
    DEFAULT_MAX_LINE_SIZE,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULTS,
)
from wsproxy._types import Scope

__all__ = [
    "DEFAULT_FORWARDED_HEADERS",
    "DEFAULT_MAX_CALLS_PER_SOCKET",
    "DEFAULT_MAX_LINE_SIZE",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "TOKEN_RE",
    "ForwardedHeaders",
    "HeaderPredicate",
    "PassthroughPaths",
    "ProxyOptions",
    "RequestMutator",
    "normalize_origin",
]

RequestMutator = Callable[[Scope, Scope], Scope]
HeaderPredicate = Callable[[str], bool]
ForwardedHeaders = Collection[str] | HeaderPredicate
PathPredicate = Callable[[str], bool]
PassthroughPaths = Collection[str] | PathPredicate

# RFC 9110 token characters: what a method or a header name may be made of.
TOKEN_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


@dataclass(frozen=True)
class ProxyOptions:
    """The options the handshake mapping and the streams read; defaults from wsproxy/_option_table.py."""

    method_override_param: str | None = DEFAULTS["method_override_param"]
    default_method: str = DEFAULTS["default_method"]
    forwarded_headers: ForwardedHeaders = DEFAULTS["forwarded_headers"]
    token_cookie_name: str | None = DEFAULTS["token_cookie_name"]
    request_mutator: RequestMutator | None = DEFAULTS["request_mutator"]
    half_close_message: str | bytes | None = DEFAULTS["half_close_message"]
    max_message_size: int = DEFAULTS["max_message_size"]
    max_line_size: int = DEFAULTS["max_line_size"]
    allowed_origins: Collection[str] | None = DEFAULTS["allowed_origins"]
    max_connections: int | None = DEFAULTS["max_connections"]
    idle_timeout: float | None = DEFAULTS["idle_timeout"]
    max_calls_per_socket: int = DEFAULTS["max_calls_per_socket"]
    passthrough_paths: PassthroughPaths | None = DEFAULTS["passthrough_paths"]

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
        if self.max_connections is not None and (
            not _is_int(self.max_connections) or self.max_connections < 1
        ):
            raise ValueError(f"max_connections must be positive or None, got {self.max_connections!r}")
        if not isinstance(self.max_calls_per_socket, int) or self.max_calls_per_socket < 1:
            raise ValueError(f"max_calls_per_socket must be positive, got {self.max_calls_per_socket!r}")
        timeout = self.idle_timeout
        if timeout is not None and (not _is_number(timeout) or not 0 < timeout < math.inf):
            raise ValueError(f"idle_timeout must be positive seconds or None, got {self.idle_timeout!r}")
        _check_passthrough_paths(self.passthrough_paths)

    def forwards(self) -> HeaderPredicate:
        """A predicate on lower-case header names, built once."""
        if callable(self.forwarded_headers):
            predicate = self.forwarded_headers
            return lambda name: bool(predicate(name))
        names = frozenset(name.lower() for name in self.forwarded_headers)
        return names.__contains__

    def passthrough(self) -> PathPredicate | None:
        """A predicate on the upgrade's path, built once; None when every upgrade is proxied."""
        paths = self.passthrough_paths
        if paths is None:
            return None
        if callable(paths):
            predicate = paths
            return lambda path: bool(predicate(path))
        exact = frozenset(prefix.rstrip("/") or "/" for prefix in paths)
        # A prefix matches at a segment boundary: "/ws" and "/ws/" both take "/ws/chat", never "/wsx".
        folders = tuple(prefix.rstrip("/") + "/" for prefix in paths)
        if not folders:
            return None
        return lambda path: path in exact or path.startswith(folders)

    def origins(self) -> frozenset[str] | None:
        if self.allowed_origins is None:
            return None
        return frozenset(normalize_origin(origin) for origin in self.allowed_origins)

    def half_close_bytes(self) -> bytes | None:
        if isinstance(self.half_close_message, str):
            return self.half_close_message.encode()
        return self.half_close_message


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_passthrough_paths(paths: PassthroughPaths | None) -> None:
    if paths is None or callable(paths):
        return
    if isinstance(paths, (str, bytes)):
        raise TypeError("passthrough_paths must be a collection of path prefixes or a predicate, not a str")
    if not isinstance(paths, Collection):
        raise TypeError(
            f"passthrough_paths must be a collection of path prefixes or a predicate, got {paths!r}"
        )
    for prefix in paths:
        if not isinstance(prefix, str) or not prefix.startswith("/"):
            raise ValueError(f"passthrough_paths: each prefix must be a path starting with /, got {prefix!r}")


def normalize_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()
