from __future__ import annotations

from typing import Any

import pytest

from wsproxy._handshake import (
    RequestPlan,
    bearer_from_cookie,
    bearer_from_subprotocols,
    offered_subprotocols,
    origin_allowed,
    plan_request,
    split_query,
)
from wsproxy._options import ProxyOptions
from wsproxy.errors import HandshakeRejected


def ws_scope(
    query: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None, **extra: Any
) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": "/v1/chat",
        "raw_path": b"/v1/chat",
        "root_path": "/api",
        "query_string": query,
        "headers": headers if headers is not None else [(b"host", b"example.test")],
        "client": ("10.0.0.1", 1234),
        "server": ("10.0.0.2", 80),
        "subprotocols": [],
        "state": {"db": "pool"},
    }
    scope.update(extra)
    return scope


def plan(scope: dict[str, Any], **options: Any) -> RequestPlan:
    opts = ProxyOptions(**options)
    return plan_request(scope, opts, forwards=opts.forwards(), origins=opts.origins())


def test_scope_is_an_http_request_for_the_same_target() -> None:
    result = plan(ws_scope(query=b"a=1&b=2", scheme="wss"))
    scope = result.scope
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["method"] == "GET"
    assert scope["scheme"] == "https"
    assert (scope["path"], scope["raw_path"], scope["root_path"]) == ("/v1/chat", b"/v1/chat", "/api")
    assert scope["query_string"] == b"a=1&b=2"
    assert scope["client"] == ("10.0.0.1", 1234)
    assert scope["server"] == ("10.0.0.2", 80)
    assert scope["state"] == {"db": "pool"}
    assert "subprotocols" not in scope
    assert result.subprotocol is None
    assert result.single_message is False


@pytest.mark.parametrize(
    ("query", "method", "rest"),
    [
        (b"method=POST", "POST", b""),
        (b"method=post&x=1", "POST", b"x=1"),
        (b"x=1&method=PUT&y=%20z", "PUT", b"x=1&y=%20z"),
        (b"m%65thod=PATCH", "PATCH", b""),
        (b"x=1", "GET", b"x=1"),
    ],
)
def test_method_override(query: bytes, method: str, rest: bytes) -> None:
    scope = plan(ws_scope(query=query)).scope
    assert (scope["method"], scope["query_string"]) == (method, rest)


def test_method_override_param_and_default_are_options() -> None:
    scope = plan(ws_scope(query=b"verb=DELETE&method=keep"), method_override_param="verb").scope
    assert (scope["method"], scope["query_string"]) == ("DELETE", b"method=keep")
    assert plan(ws_scope(), default_method="POST").scope["method"] == "POST"
    scope = plan(ws_scope(query=b"method=PUT"), method_override_param=None).scope
    assert (scope["method"], scope["query_string"]) == ("GET", b"method=PUT")


@pytest.mark.parametrize("bad", [b"method=GET%0D%0AX-Evil:%201", b"method=G%20T", b"method=", b"method=a(b)"])
def test_method_override_rejects_non_tokens(bad: bytes) -> None:
    with pytest.raises(HandshakeRejected) as info:
        plan(ws_scope(query=bad))
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("hint", "single"),
    [
        ("Unary", True),
        ("ServerStreaming", True),
        ("unary", True),
        ("ClientStreaming", False),
        ("BidiStreaming", False),
    ],
)
def test_method_type_hint(hint: str, single: bool) -> None:
    result = plan(ws_scope(query=b"methodType=" + hint.encode() + b"&a=1"))
    assert result.single_message is single
    assert result.scope["query_string"] == b"a=1"


@pytest.mark.parametrize(
    ("query", "options", "bodyless"),
    [
        (b"", {}, True),  # the default method, GET
        (b"method=get", {}, True),
        (b"method=HEAD", {}, True),
        (b"method=POST", {}, False),
        (b"method=PUT", {}, False),
        (b"method=DELETE", {}, False),
        (b"", {"default_method": "POST"}, False),
        (b"methodType=ClientStreaming", {}, True),  # a GET has no body, whatever the hint
        (b"method=POST&methodType=Unary", {}, False),
    ],
)
def test_get_and_head_have_no_body(query: bytes, options: dict[str, Any], bodyless: bool) -> None:
    assert plan(ws_scope(query=query), **options).bodyless is bodyless


def test_the_body_shape_follows_the_final_method() -> None:
    """A `request_mutator` may change the method: the plan reads it from the scope it carries."""
    got = plan(ws_scope())
    assert got.bodyless
    mutated = RequestPlan({**got.scope, "method": "POST"}, got.subprotocol, got.single_message)
    assert not mutated.bodyless


def test_unknown_method_type_is_rejected() -> None:
    with pytest.raises(HandshakeRejected):
        plan(ws_scope(query=b"methodType=Sometimes"))


def test_only_allowlisted_headers_reach_the_app() -> None:
    headers = [
        (b"host", b"example.test"),
        (b"origin", b"https://app.example"),
        (b"referer", b"https://app.example/page"),
        (b"cookie", b"session=1"),
        (b"x-secret", b"1"),
        (b"sec-websocket-key", b"abc"),
        (b"sec-websocket-version", b"13"),
        (b"connection", b"Upgrade"),
        (b"upgrade", b"websocket"),
        (b"authorization", b"Basic Zm9vOmJhcg=="),
    ]
    names = [name for name, _ in plan(ws_scope(headers=headers)).scope["headers"]]
    assert names == [b"host", b"origin", b"referer"]


def test_forwarded_headers_as_names_or_predicate_never_pass_websocket_headers() -> None:
    headers = [
        (b"X-Trace", b"1"),
        (b"sec-websocket-key", b"k"),
        (b"upgrade", b"websocket"),
        (b"x-other", b"2"),
    ]
    by_name = plan(ws_scope(headers=headers), forwarded_headers=["x-trace"]).scope["headers"]
    assert by_name == [(b"X-Trace", b"1")]
    everything = plan(ws_scope(headers=headers), forwarded_headers=lambda name: True).scope["headers"]
    assert everything == [(b"X-Trace", b"1"), (b"x-other", b"2")]


@pytest.mark.parametrize(
    "subprotocols",
    [["Bearer", "tok.en-1_~+/="], ["Bearer,tok.en-1_~+/="], ["Bearer, tok.en-1_~+/="]],
)
def test_bearer_subprotocol_becomes_authorization(subprotocols: list[str]) -> None:
    result = plan(ws_scope(subprotocols=subprotocols))
    assert (b"authorization", b"Bearer tok.en-1_~+/=") in result.scope["headers"]
    assert result.subprotocol == "Bearer"


def test_bearer_from_raw_header_when_server_gives_no_subprotocols() -> None:
    scope = ws_scope(headers=[(b"sec-websocket-protocol", b"Bearer,abc")])
    del scope["subprotocols"]
    assert offered_subprotocols(scope) == ["Bearer", "abc"]
    assert (b"authorization", b"Bearer abc") in plan(scope).scope["headers"]


def test_bearer_replaces_a_forwarded_authorization_header() -> None:
    headers = [(b"authorization", b"Basic x")]
    scope = plan(
        ws_scope(headers=headers, subprotocols=["Bearer", "t"]), forwarded_headers=["authorization"]
    ).scope
    assert scope["headers"] == [(b"authorization", b"Bearer t")]


@pytest.mark.parametrize(
    ("items", "token"),
    [([], None), (["graphql-ws"], None), (["graphql-ws", "Bearer", "x"], None), (["Bearer", "abc"], "abc")],
)
def test_bearer_only_as_first_subprotocol(items: list[str], token: str | None) -> None:
    assert bearer_from_subprotocols(items) == token


@pytest.mark.parametrize("items", [["Bearer"], ["Bearer", "a b"], ["Bearer", "a\r\nX: y"], ["Bearer", "é"]])
def test_malformed_bearer_is_rejected(items: list[str]) -> None:
    with pytest.raises(HandshakeRejected) as info:
        bearer_from_subprotocols(items)
    assert info.value.status == 400


def test_cookie_token_becomes_authorization_and_subprotocol_wins() -> None:
    cookie = [(b"cookie", b"a=1; token=from-cookie; b=2")]
    assert (b"authorization", b"Bearer from-cookie") in plan(ws_scope(headers=cookie)).scope["headers"]
    both = plan(ws_scope(headers=cookie, subprotocols=["Bearer", "from-protocol"])).scope["headers"]
    assert (b"authorization", b"Bearer from-protocol") in both
    assert (b"authorization", b"Bearer from-cookie") not in both
    assert plan(ws_scope(headers=cookie), token_cookie_name=None).scope["headers"] == []
    assert bearer_from_cookie([(b"cookie", b'sid="quoted"')], "sid") == "quoted"
    assert bearer_from_cookie([(b"cookie", b"tokens=x")], "token") is None


def test_cookie_with_injection_is_rejected() -> None:
    with pytest.raises(HandshakeRejected):
        plan(ws_scope(headers=[(b"cookie", b"token=a\rb")]))


@pytest.mark.parametrize(
    ("origin", "allowed", "ok"),
    [
        ("https://evil.example", None, True),
        (None, frozenset({"https://app.example"}), True),
        ("https://app.example", frozenset({"https://app.example"}), True),
        ("HTTPS://APP.EXAMPLE/", frozenset({"https://app.example"}), True),
        ("https://evil.example", frozenset({"https://app.example"}), False),
        ("https://app.example.evil", frozenset({"https://app.example"}), False),
        ("null", frozenset({"https://app.example"}), False),
        ("https://any.example", frozenset({"*"}), True),
    ],
)
def test_origin_allowed(origin: str | None, allowed: frozenset[str] | None, ok: bool) -> None:
    assert origin_allowed(origin, allowed) is ok


def test_foreign_origin_is_refused_before_the_cookie_is_read() -> None:
    headers = [(b"origin", b"https://evil.example"), (b"cookie", b"token=victim")]
    with pytest.raises(HandshakeRejected) as info:
        plan(ws_scope(headers=headers), allowed_origins=["https://app.example"])
    assert info.value.status == 403


@pytest.mark.parametrize(
    ("query", "names", "rest", "found"),
    [
        (b"", {"method"}, b"", {}),
        (b"a=1&&b=2", {"method"}, b"a=1&b=2", {}),
        (b"method=A&method=B", {"method"}, b"", {"method": "A"}),
        (b"a+b=c&method", {"method"}, b"a+b=c", {"method": ""}),
    ],
)
def test_split_query(query: bytes, names: set[str], rest: bytes, found: dict[str, str]) -> None:
    assert split_query(query, names) == (rest, found)


# Edges found by mutation testing (docs/testing.md).


def test_a_scope_without_the_optional_keys_gets_their_defaults() -> None:
    bare = {"type": "websocket", "path": "/p"}  # ASGI makes headers, query_string, scheme... optional
    result = plan(bare)
    scope = result.scope
    assert (scope["headers"], scope["query_string"], scope["scheme"]) == ([], b"", "http")
    assert scope["http_version"] == "1.1"
    assert scope["extensions"] == {}
    assert result.subprotocol is None


def test_http_version_and_unknown_schemes_are_kept_and_extensions_reset() -> None:
    scope = plan(ws_scope(http_version="2", scheme="weird", extensions={"websocket.http.response": {}})).scope
    assert (scope["http_version"], scope["scheme"], scope["extensions"]) == ("2", "weird", {})


@pytest.mark.parametrize(
    ("scope", "options", "status", "message"),
    [
        (ws_scope(headers=[(b"origin", b"https://evil.example")]), {"allowed_origins": ["https://a.example"]}, 403, "origin not allowed"),
        (ws_scope(query=b"method=G%20T"), {}, 400, "invalid method override"),
        (ws_scope(query=b"methodType=Bogus"), {}, 400, "invalid methodType: use Unary, ServerStreaming, ClientStreaming or BidiStreaming"),
        (ws_scope(subprotocols=["Bearer"]), {}, 400, "Bearer subprotocol without a token"),
        (ws_scope(subprotocols=["Bearer", "a b"]), {}, 400, "malformed bearer token"),
        (ws_scope(headers=[(b"cookie", b"token=a;b")], subprotocols=[]), {}, 200, ""),
        (ws_scope(headers=[(b"cookie", b"token=a\tb")]), {}, 400, "malformed bearer token"),
    ],
)  # fmt: skip
def test_refusals_carry_their_status_and_message(
    scope: dict[str, Any], options: dict[str, Any], status: int, message: str
) -> None:
    if status == 200:
        plan(scope, **options)  # `;` ends a cookie: no refusal
        return
    with pytest.raises(HandshakeRejected) as info:
        plan(scope, **options)
    assert (info.value.status, info.value.message) == (status, message)


def test_the_origin_header_is_found_wherever_it_is() -> None:
    headers = [(b"host", b"h.example"), (b"Origin", b"https://a.example"), (b"referer", b"x")]
    plan(ws_scope(headers=headers), allowed_origins=["https://a.example"])  # allowed: no raise


@pytest.mark.parametrize(
    ("headers", "token"),
    [
        ([(b"accept", b"*/*"), (b"cookie", b"token=after-another-header")], "after-another-header"),
        ([(b"cookie", b"a=1"), (b"cookie", b"token=second-cookie-header")], "second-cookie-header"),
        ([(b"cookie", b"token=padded==")], "padded=="),  # only the first "=" splits name and value
        ([(b"cookie", b'token="XquotedX"')], "XquotedX"),  # only the quotes are stripped
    ],
)
def test_the_cookie_token_is_found_and_kept_whole(headers: list[tuple[bytes, bytes]], token: str) -> None:
    assert bearer_from_cookie(headers, "token") == token


def test_split_query_without_names_returns_the_query_untouched() -> None:
    assert split_query(b"a=1&&b=2", set()) == (b"a=1&&b=2", {})


# The deadline: ?grpc-timeout= becomes the grpc-timeout header (docs/protocol.md).


@pytest.mark.parametrize("value", ["1500m", "1S", "30S", "2M", "1H", "99999999n", "0m", "250u"])
def test_the_grpc_timeout_parameter_becomes_the_header(value: str) -> None:
    got = plan(ws_scope(query=b"grpc-timeout=" + value.encode() + b"&a=1"))
    assert (b"grpc-timeout", value.encode()) in got.scope["headers"]
    assert got.scope["query_string"] == b"a=1"


def test_the_grpc_timeout_parameter_replaces_a_forwarded_header_and_needs_no_allowlist() -> None:
    headers = [(b"host", b"h"), (b"grpc-timeout", b"99H")]
    got = plan(
        ws_scope(query=b"grpc-timeout=5S", headers=headers), forwarded_headers=["host", "grpc-timeout"]
    )
    assert [value for name, value in got.scope["headers"] if name == b"grpc-timeout"] == [b"5S"]
    assert not [name for name, _ in plan(ws_scope()).scope["headers"] if name == b"grpc-timeout"]


@pytest.mark.parametrize(
    "value", [b"", b"1", b"S", b"123456789S", b"1s", b"-1S", b"1.5S", b"1S%0D%0Ax:%201", b"1S%0A", b"%201S"]
)
def test_a_malformed_grpc_timeout_is_refused_400(value: bytes) -> None:
    with pytest.raises(HandshakeRejected) as info:
        plan(ws_scope(query=b"grpc-timeout=" + value))
    assert info.value.status == 400
    assert info.value.message == "invalid grpc-timeout: 1-8 digits and a unit (H, M, S, m, u, n)"
