"""The client's pure parts, table-driven: close codes to errors, lines to messages, URLs, encoding."""

from __future__ import annotations

from typing import Any

import pytest

from wsproxy.client import (
    BadGatewayError,
    CallError,
    ConnectionLostError,
    HTTPStatusError,
    MessageTooBigError,
    PolicyViolationError,
    ProxyInternalError,
    StreamError,
    TryAgainLaterError,
    UnexpectedCloseError,
    encode_message,
    with_method,
)
from wsproxy.client._decoder import ResponseDecoder

STATUS_400 = {"code": 3, "message": "message must not be empty", "details": []}


@pytest.mark.parametrize(
    ("code", "error_class"),
    [
        (1008, PolicyViolationError),
        (1009, MessageTooBigError),
        (1011, ProxyInternalError),
        (1013, TryAgainLaterError),
        (1014, BadGatewayError),
        (1006, ConnectionLostError),
        (None, ConnectionLostError),
        (1001, UnexpectedCloseError),
        (1002, UnexpectedCloseError),
    ],
)
def test_transport_close_codes_map_to_their_error(code: int | None, error_class: type[CallError]) -> None:
    messages, error = ResponseDecoder().close(code, "why")
    assert messages == []
    assert type(error) is error_class
    assert error.code == (1006 if code is None else code)


def test_normal_close_is_success() -> None:
    assert ResponseDecoder().close(1000) == ([], None)


@pytest.mark.parametrize(
    ("code", "reason", "status", "text"),
    [
        (4400, "Bad Request", 400, "HTTP 400 INVALID_ARGUMENT message must not be empty"),
        (4404, "", 404, "HTTP 404 INVALID_ARGUMENT message must not be empty"),
        (4999, "", 999, "HTTP 999 INVALID_ARGUMENT message must not be empty"),
    ],
)
def test_http_status_close_carries_the_error_line_before_it(
    code: int, reason: str, status: int, text: str
) -> None:
    decoder = ResponseDecoder()
    assert decoder.feed('{"code":3,"message":"message must not be empty","details":[]}') == []
    messages, error = decoder.close(code, reason)
    assert messages == []
    assert isinstance(error, HTTPStatusError)
    assert (error.status, error.code, error.error_body, str(error)) == (status, code, STATUS_400, text)
    assert (error.grpc_code, error.grpc_code_name, error.message) == (
        3,
        "INVALID_ARGUMENT",
        STATUS_400["message"],
    )
    assert error.reason == {400: "Bad Request", 404: "Not Found", 999: ""}[status]


def test_http_error_with_a_non_status_body() -> None:
    decoder = ResponseDecoder()
    assert decoder.feed('{"detail":"Not Found"}') == [{"detail": "Not Found"}]
    _, error = decoder.close(4404, "Not Found")
    assert isinstance(error, HTTPStatusError)
    assert (error.status, error.error_body, error.grpc_code, error.details) == (
        404,
        {"detail": "Not Found"},
        None,
        [],
    )
    assert str(error) == "HTTP 404 Not Found"


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        (['{"result":{"seq":1}}', '{"result":{"seq":2}}'], [[{"seq": 1}], [{"seq": 2}]]),
        (['{"message":"hi"}'], [[{"message": "hi"}]]),
        (['{"result":1,"other":2}'], [[{"result": 1, "other": 2}]]),
        (["plain text", b"\xff\xfe"], [["plain text"], [b"\xff\xfe"]]),
        (["[1, 2]", "3"], [[[1, 2]], [3]]),
        # A status-shaped line waits for the next frame, which shows it was an ordinary message.
        (['{"code":5,"message":"x"}', '{"a":1}'], [[], [{"code": 5, "message": "x"}, {"a": 1}]]),
    ],
)
def test_lines_become_messages(frames: list[str | bytes], expected: list[list[Any]]) -> None:
    decoder = ResponseDecoder()
    assert [decoder.feed(frame) for frame in frames] == expected


def test_held_status_line_is_a_message_when_the_call_succeeds() -> None:
    decoder = ResponseDecoder()
    assert decoder.feed('{"code":0,"message":"ok"}') == []
    assert decoder.close(1000) == ([{"code": 0, "message": "ok"}], None)


def test_raw_mode_yields_lines_untouched_and_keeps_the_error_line() -> None:
    decoder = ResponseDecoder(raw=True)
    assert decoder.feed('{"result":1}') == ['{"result":1}']
    assert decoder.feed('{"code":3,"message":"m"}') == ['{"code":3,"message":"m"}']
    _, error = decoder.close(4400, "Bad Request")
    assert isinstance(error, HTTPStatusError)
    assert error.error_body == {"code": 3, "message": "m"}


@pytest.mark.parametrize(
    ("error_line", "status", "name"),
    [
        ('{"error":{"code":13,"message":"boom","details":[]}}', 500, "INTERNAL"),
        ('{"error":{"code":16,"message":"who are you"}}', 401, "UNAUTHENTICATED"),
        ('{"error":{"code":5,"message":"gone","http_code":410}}', 410, "NOT_FOUND"),
        ('{"error":{"message":"no code"}}', 500, None),
    ],
)
def test_error_envelope_raises_stream_error(error_line: str, status: int, name: str | None) -> None:
    decoder = ResponseDecoder()
    assert decoder.feed('{"result":{"seq":1}}') == [{"seq": 1}]
    with pytest.raises(StreamError) as caught:
        decoder.feed(error_line)
    assert (caught.value.status, caught.value.grpc_code_name, caught.value.code) == (status, name, None)


@pytest.mark.parametrize(
    ("url", "method", "expected"),
    [
        ("ws://h/v1/echo", None, "ws://h/v1/echo"),
        ("ws://h/v1/echo", "post", "ws://h/v1/echo?method=POST"),
        ("http://h:8/v1/t?count=5", "POST", "ws://h:8/v1/t?count=5&method=POST"),
        ("https://h/v1/t?method=GET&x=1", "PUT", "wss://h/v1/t?x=1&method=PUT"),
        ("wss://h/p?method=POST", None, "wss://h/p?method=POST"),
    ],
)
def test_with_method(url: str, method: str | None, expected: str) -> None:
    assert with_method(url, method) == expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"message": "héllo"}, '{"message":"héllo"}'),
        ([1, 2], "[1,2]"),
        (0, "0"),
        (None, "null"),
        ("as is", "as is"),
        (b"\x00\x01", b"\x00\x01"),
        (bytearray(b"ab"), b"ab"),
    ],
)
def test_encode_message(message: Any, expected: str | bytes) -> None:
    assert encode_message(message) == expected


@pytest.mark.parametrize("empty", ["", b""])
def test_empty_message_is_refused_because_it_would_half_close(empty: str | bytes) -> None:
    with pytest.raises(ValueError, match="close_send"):
        encode_message(empty)
