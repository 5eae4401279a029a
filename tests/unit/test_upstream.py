"""UpstreamApp's decisions without a server (wsproxy/upstream/): the headers it forwards, the base URLs it
refuses, and the framing of the body it sends upstream (GET and HEAD carry none; an open body asks the
connection to close, for Go)."""

from __future__ import annotations

from typing import Any

import pytest

from wsproxy.upstream import UpstreamApp, forwarded_request_headers
from wsproxy.upstream._request import Framing, framing_of, http1_framing_headers


def test_forwarded_headers_drop_hop_by_hop_and_add_forwarding() -> None:
    scope: dict[str, Any] = {
        "scheme": "https",
        "client": ("10.0.0.7", 5555),
        "headers": [
            (b"host", b"public.example"),
            (b"connection", b"keep-alive, x-secret"),
            (b"x-secret", b"hop only"),
            (b"keep-alive", b"timeout=5"),
            (b"upgrade", b"h2c"),
            (b"te", b"trailers"),
            (b"transfer-encoding", b"chunked"),
            (b"x-forwarded-for", b"203.0.113.9"),
            (b"x-forwarded-proto", b"http"),
            (b"authorization", b"Bearer t"),
            (b"accept", b"application/json"),
        ],
    }
    assert forwarded_request_headers(scope, "gw:8081") == [
        (b"host", b"gw:8081"),
        (b"authorization", b"Bearer t"),
        (b"accept", b"application/json"),
        (b"x-forwarded-for", b"203.0.113.9, 10.0.0.7"),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"public.example"),
    ]


def test_forwarded_headers_keep_a_known_length_and_do_not_repeat_the_last_hop() -> None:
    scope: dict[str, Any] = {
        "scheme": "ws",
        "client": ("203.0.113.9", 1),
        "headers": [(b"content-length", b"3"), (b"x-forwarded-for", b"203.0.113.9")],
    }
    assert forwarded_request_headers(scope, "gw") == [
        (b"host", b"gw"),
        (b"content-length", b"3"),
        (b"x-forwarded-for", b"203.0.113.9"),
        (b"x-forwarded-proto", b"http"),
    ]


@pytest.mark.parametrize("url", ["ftp://host", "http://", "http://host/?q=1", "127.0.0.1:8081"])
def test_bad_base_url_is_refused_at_construction(url: str) -> None:
    with pytest.raises(ValueError, match="upstream"):
        UpstreamApp(url)


@pytest.mark.parametrize(
    ("method", "headers", "expected"),
    [
        ("GET", [], "bodyless"),
        ("HEAD", [], "bodyless"),
        ("get", [], "bodyless"),
        ("GET", [(b"content-length", b"4")], "fixed"),
        ("GET", [(b"transfer-encoding", b"chunked")], "streaming"),
        ("POST", [(b"content-length", b"4")], "fixed"),
        ("POST", [], "streaming"),
        ("DELETE", [], "streaming"),
    ],
)
def test_framing_table(method: str, headers: list[tuple[bytes, bytes]], expected: str) -> None:
    assert framing_of(method, headers).value == expected


def test_only_an_open_http1_body_asks_for_the_connection_to_close() -> None:
    assert http1_framing_headers(Framing.STREAMING) == [
        (b"transfer-encoding", b"chunked"),
        (b"connection", b"close"),
    ]
    assert http1_framing_headers(Framing.FIXED) == []
    assert http1_framing_headers(Framing.BODYLESS) == []
