"""The wsproxy.mux.v1 framing and flow-control accounting, table-driven, no I/O.

Numbers the docs promise (the 5-byte header, the frame type bytes, the 65536-byte initial window,
a message costing its size plus 1) are written here as literals, not read from the module.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from wsproxy.mux import _frames as _mux
from wsproxy.mux._frames import (
    CLIENT_FRAMES,
    SERVER_FRAMES,
    CallIds,
    CallRefused,
    FlowControlError,
    FrameType,
    MuxProtocolError,
    ReceiveCredit,
    SendCredit,
)


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (_mux.encode(FrameType.MESSAGE, 7, b'{"a":1}'), b'\x02\x00\x00\x00\x07{"a":1}'),
        (_mux.encode(FrameType.HALF_CLOSE, 1), b"\x03\x00\x00\x00\x01"),
        (_mux.encode(FrameType.LAST_MESSAGE, 1, b"{}"), b"\x06\x00\x00\x00\x01{}"),
        (_mux.encode(FrameType.CANCEL, 256), b"\x04\x00\x00\x01\x00"),
        (_mux.encode_window(3, 65536), b"\x05\x00\x00\x00\x03\x00\x01\x00\x00"),
        (_mux.encode_line(2, "héllo"), b"\x11\x00\x00\x00\x02h\xc3\xa9llo"),
        (_mux.encode_line(2, b"\xff"), b"\x12\x00\x00\x00\x02\xff"),
        (_mux.encode_end(9, 4404, "Not Found"), b"\x13\x00\x00\x00\x09\x114Not Found"),
        (_mux.encode_end(1, 1000), b"\x13\x00\x00\x00\x01\x03\xe8"),
        (_mux.encode_open(1, "/v1/echo?method=POST"), b'\x01\x00\x00\x00\x01{"path":"/v1/echo?method=POST"}'),
    ],
)
def test_wire_bytes(frame: bytes, expected: bytes) -> None:
    assert frame == expected


def test_the_header_is_read_without_touching_the_payload() -> None:
    payload = b"not json at all \xff"
    frame = _mux.decode(_mux.encode(FrameType.MESSAGE, 42, payload), CLIENT_FRAMES)
    assert (frame.type, frame.call_id, frame.payload) == (FrameType.MESSAGE, 42, payload)


@pytest.mark.parametrize(
    ("data", "expected", "reason"),
    [
        (b"", CLIENT_FRAMES, "shorter than its header"),
        (b"\x02\x00\x00\x00", CLIENT_FRAMES, "shorter than its header"),
        (b"\x7f\x00\x00\x00\x01", CLIENT_FRAMES, "unknown mux frame type 0x7f"),
        (b"\x02\x00\x00\x00\x00", CLIENT_FRAMES, "call id 0 is reserved"),
        (b"\x11\x00\x00\x00\x01x", CLIENT_FRAMES, "LINE not allowed"),
        (b"\x13\x00\x00\x00\x01\x03\xe8", CLIENT_FRAMES, "END not allowed"),
        (b"\x01\x00\x00\x00\x01{}", SERVER_FRAMES, "OPEN not allowed"),
        (b"\x02\x00\x00\x00\x01x", SERVER_FRAMES, "MESSAGE not allowed"),
    ],
)
def test_frames_that_break_the_framing_are_socket_errors(
    data: bytes, expected: frozenset[FrameType], reason: str
) -> None:
    with pytest.raises(MuxProtocolError, match=reason):
        _mux.decode(data, expected)


@pytest.mark.parametrize(
    ("payload", "path", "query", "headers"),
    [
        ({"path": "/v1/echo"}, "/v1/echo", "", ()),
        ({"path": "/v1/a%20b?x=1&method=POST"}, "/v1/a%20b", "x=1&method=POST", ()),
        ({"path": "/", "headers": [["X-Request-Id", "abc"]]}, "/", "", (("x-request-id", "abc"),)),
        (
            {"path": "/x", "headers": [["authorization", "Bearer t"]]},
            "/x",
            "",
            (("authorization", "Bearer t"),),
        ),
    ],
)
def test_open_payload(payload: dict[str, Any], path: str, query: str, headers: tuple[Any, ...]) -> None:
    request = _mux.parse_open(json.dumps(payload).encode())
    assert (request.path, request.query, request.headers) == (path, query, headers)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{", "not JSON"),
        (b"[]", "must be a JSON object"),
        (b"{}", '"path" must be a request target'),
        (b'{"path": "v1/echo"}', '"path" must be a request target'),
        (b'{"path": "/a b"}', '"path" must be a request target'),
        (b'{"path": "/a\\r\\nx: y"}', '"path" must be a request target'),
        (b'{"path": "/", "headers": {"a": "b"}}', "must be a list"),
        (b'{"path": "/", "headers": [["a"]]}', r"\[name, value\]"),
        (b'{"path": "/", "headers": [["a b", "c"]]}', "invalid name or value"),
        (b'{"path": "/", "headers": [["x", "a\\r\\nInjected: 1"]]}', "invalid name or value"),
        (b'{"path": "/", "headers": [["x", "caf\\u00e9"]]}', "invalid name or value"),
        (b'{"path": "/", "headers": [["Origin", "https://evil"]]}', "'origin' is the connection's"),
        (b'{"path": "/", "headers": [["cookie", "token=x"]]}', "'cookie' is the connection's"),
        (b'{"path": "/", "headers": [["host", "other"]]}', "'host' is the connection's"),
        (b'{"path": "/", "headers": [["sec-websocket-protocol", "x"]]}', "is the connection's"),
        (b'{"path": "/", "headers": [["content-length", "3"]]}', "is the connection's"),
        (json.dumps({"path": "/", "headers": [["x", "y"]] * 65}).encode(), "at most 64 pairs"),
        (json.dumps({"path": "/" + "a" * 16384}).encode(), "over 16384 bytes"),
    ],
)
def test_bad_open_payloads_refuse_only_the_call(payload: bytes, reason: str) -> None:
    with pytest.raises(CallRefused, match=reason) as refused:
        _mux.parse_open(payload)
    assert refused.value.code == 1008


def test_call_headers_replace_the_connections_of_the_same_name() -> None:
    connection = [(b"host", b"h"), (b"x-tenant", b"a"), (b"origin", b"https://o")]
    assert _mux.call_headers(connection, [("x-tenant", "b"), ("x-new", "1")]) == [
        (b"host", b"h"),
        (b"origin", b"https://o"),
        (b"x-tenant", b"b"),
        (b"x-new", b"1"),
    ]
    assert _mux.call_headers(connection, []) == connection


@pytest.mark.parametrize(
    ("payload", "result"),
    [
        (b"\x00\x00\x00\x01", 1),
        (b"\x7f\xff\xff\xff", 2**31 - 1),
        (b"\x00\x00\x00\x00", "WINDOW increment of 0"),
        (b"\x00\x00\x01", "must be 4 bytes"),
        (b"\x00\x00\x00\x01\x00", "must be 4 bytes"),
    ],
)
def test_window_payload(payload: bytes, result: int | str) -> None:
    if isinstance(result, int):
        assert _mux.parse_window(payload) == result
    else:
        with pytest.raises(CallRefused, match=result):
            _mux.parse_window(payload)


def test_end_payload() -> None:
    assert _mux.parse_end(b"\x114Not Found") == (4404, "Not Found")
    assert _mux.parse_end(b"\x03\xe8") == (1000, "")
    with pytest.raises(MuxProtocolError):
        _mux.parse_end(b"\x03")
    long_reason = "é" * 100
    code, reason = _mux.parse_end(_mux.encode_end(1, 1011, long_reason)[5:])
    assert code == 1011
    assert len(reason.encode()) <= 123


def test_send_credit_may_overdraw_by_one_message_then_waits() -> None:
    credit = SendCredit()
    assert credit.credit == 65536
    credit.spend(65000)  # costs 65001
    assert credit.available
    credit.spend(10_000)  # one message may overdraw
    assert not credit.available
    credit.grant(9_466)
    assert not credit.available  # back to exactly 0: still no credit
    credit.grant(1)
    assert credit.available


def test_send_credit_overflow_is_a_flow_control_error() -> None:
    credit = SendCredit()
    with pytest.raises(FlowControlError, match="overflows"):
        credit.grant(2**31 - 1 - 65536 + 1)
    credit.grant(2**31 - 1 - 65536)
    assert credit.credit == 2**31 - 1


def test_receive_credit_refuses_a_message_without_credit() -> None:
    credit = ReceiveCredit()
    credit.received(65535)  # costs 65536: the window is spent
    with pytest.raises(FlowControlError):
        credit.received(0)  # even an empty message (or a half-close) costs 1
    assert FlowControlError("x").code == 1008


def test_receive_credit_is_returned_in_half_window_batches() -> None:
    credit = ReceiveCredit()
    returned = []
    for _ in range(100):
        credit.received(999)  # costs 1000
        returned.append(credit.consumed(999))
    batches = [increment for increment in returned if increment]
    assert batches == [33000, 33000, 33000]  # every 33 messages: the first 1000s at or over 32768
    assert credit.remaining == 65536 - 100_000 + 99_000


def test_call_ids_must_increase_and_unknown_ones_are_told_apart() -> None:
    ids = CallIds()
    ids.open(1)
    ids.open(5)
    with pytest.raises(MuxProtocolError, match="ids must increase"):
        ids.open(5)
    with pytest.raises(MuxProtocolError, match="ids must increase"):
        ids.open(3)
    ids.check_unknown(4)  # never opened but below the last: an ended call, frames in flight
    with pytest.raises(MuxProtocolError, match="never opened"):
        ids.check_unknown(6)
