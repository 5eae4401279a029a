"""The wsproxy.mux.v1 frame codec and flow-control accounting (wsproxy/mux/_frames.py), table-driven, no I/O.

Numbers the docs promise (the 5-byte header, the frame type bytes, the 65536-byte initial window,
a message costing its size plus 1) are written here as literals, not read from the module. The exact
bytes of every encoder, the exact reason of every refusal and each end of every bound are pinned too,
so that mutation testing (docs/testing.md) kills every mutant of the codec.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

import pytest

from wsproxy.mux import _frames as _mux
from wsproxy.mux._frames import (
    CLIENT_FRAMES,
    MAX_CALL_HEADERS,
    MAX_OPEN_PAYLOAD,
    SERVER_FRAMES,
    CallIds,
    CallRefused,
    FlowControlError,
    FrameType,
    MuxProtocolError,
    ReceiveCredit,
    SendCredit,
    decode,
    encode,
    encode_end,
    encode_line,
    encode_open,
    encode_window,
    parse_end,
    parse_open,
    parse_window,
)

# Encoders: the exact bytes (type byte, 4-byte big-endian call id, payload).


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


# Built inside the test, not at collection: mutation testing maps each test to the code it runs.
ENCODED: list[tuple[Callable[[], bytes], bytes]] = [
    (lambda: encode(FrameType.HALF_CLOSE, 7), b"\x03\x00\x00\x00\x07"),
    (lambda: encode_open(1, "/v1/x?q=1"), b'\x01\x00\x00\x00\x01{"path":"/v1/x?q=1"}'),
    (lambda: encode_open(2, "/p", [("x-a", "1")]), b'\x01\x00\x00\x00\x02{"path":"/p","headers":[["x-a","1"]]}'),
    (lambda: encode_window(3, 65536), b"\x05\x00\x00\x00\x03\x00\x01\x00\x00"),
    (lambda: encode_end(4, 1000), b"\x13\x00\x00\x00\x04\x03\xe8"),
    (lambda: encode_end(4, 4404, "Not Found"), b"\x13\x00\x00\x00\x04\x11\x34Not Found"),
    (lambda: encode_line(5, "é"), b"\x11\x00\x00\x00\x05" + "é".encode()),
    (lambda: encode_line(6, b"\xff"), b"\x12\x00\x00\x00\x06\xff"),
]  # fmt: skip


@pytest.mark.parametrize(("build", "wire"), ENCODED)
def test_encoders_write_exact_bytes(build: Callable[[], bytes], wire: bytes) -> None:
    assert build() == wire


def test_the_header_is_a_type_byte_and_a_big_endian_call_id() -> None:
    assert struct.unpack("!BI", encode(FrameType.MESSAGE, 0x01020304)[:5]) == (2, 0x01020304)


def test_frames_round_trip() -> None:
    frame = decode(encode_open(9, "/v1/y", [("X-Trace", "t")]), CLIENT_FRAMES)
    assert (frame.type, frame.call_id) == (FrameType.OPEN, 9)
    request = parse_open(frame.payload)
    assert (request.path, request.query, request.headers) == ("/v1/y", "", (("x-trace", "t"),))
    assert parse_window(decode(encode_window(9, 5), SERVER_FRAMES).payload) == 5
    assert parse_end(decode(encode_end(9, 1011, "internal error"), SERVER_FRAMES).payload) == (
        1011,
        "internal error",
    )
    assert parse_end(b"\x03\xe8\xff") == (1000, "\ufffd")  # a broken reason is replaced, not refused


# Decoding: the header, and frames that break the framing (a socket error, not a call's).


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
    ("data", "expected", "reason"),
    [
        (b"\x02\x00\x00\x00", CLIENT_FRAMES, "mux frame of 4 bytes: shorter than its header"),
        (b"\x7f\x00\x00\x00\x01", CLIENT_FRAMES, "unknown mux frame type 0x7f"),
        (b"\x11\x00\x00\x00\x01", CLIENT_FRAMES, "mux frame LINE not allowed in this direction"),
        (b"\x02\x00\x00\x00\x00", CLIENT_FRAMES, "mux call id 0 is reserved"),
    ],
)
def test_decode_errors_say_what_is_wrong(data: bytes, expected: frozenset[FrameType], reason: str) -> None:
    with pytest.raises(MuxProtocolError) as info:
        decode(data, expected)
    assert info.value.reason == reason
    assert str(info.value) == reason


# OPEN: the call's request target and headers.


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


def headers_of(count: int) -> bytes:
    return json.dumps({"path": "/p", "headers": [[f"x-{i}", "v"] for i in range(count)]}).encode()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{", "OPEN payload is not JSON"),
        (b"[]", "OPEN payload must be a JSON object"),
        (b'{"path": "v1/x"}', 'OPEN "path" must be a request target starting with "/"'),
        (b'{"path": "/a b"}', 'OPEN "path" must be a request target starting with "/"'),
        (b'{"path": "/p", "headers": {}}', f'OPEN "headers" must be a list of at most {MAX_CALL_HEADERS} pairs'),
        (headers_of(MAX_CALL_HEADERS + 1), f'OPEN "headers" must be a list of at most {MAX_CALL_HEADERS} pairs'),
        (b'{"path": "/p", "headers": [["x-a"]]}', 'OPEN "headers" items must be [name, value] strings'),
        (b'{"path": "/p", "headers": [["x-a", 1]]}', 'OPEN "headers" items must be [name, value] strings'),
        (b'{"path": "/p", "headers": [["x a", "v"]]}', "OPEN header with an invalid name or value"),
        (b'{"path": "/p", "headers": [["x-a", "v\\r\\nInjected: 1"]]}', "OPEN header with an invalid name or value"),
        (b'{"path": "/p", "headers": [["Upgrade", "h2c"]]}', "header 'upgrade' is the connection's, not a call's"),
        (b'{"path": "/p", "headers": [["Sec-WebSocket-Key", "k"]]}', "header 'sec-websocket-key' is the connection's, not a call's"),
    ],
)  # fmt: skip
def test_open_refusals_say_what_is_wrong(payload: bytes, reason: str) -> None:
    with pytest.raises(CallRefused) as info:
        parse_open(payload)
    assert (info.value.code, info.value.reason) == (1008, reason)


def test_open_bounds_are_inclusive() -> None:
    assert len(parse_open(headers_of(MAX_CALL_HEADERS)).headers) == MAX_CALL_HEADERS
    at_limit = b'{"path": "/' + b"a" * (MAX_OPEN_PAYLOAD - 13) + b'"}'
    assert len(at_limit) == MAX_OPEN_PAYLOAD
    assert parse_open(at_limit).path.startswith("/a")
    with pytest.raises(CallRefused) as info:
        parse_open(at_limit[:-2] + b'a"}')
    assert info.value.reason == f"OPEN payload over {MAX_OPEN_PAYLOAD} bytes"


def test_call_headers_replace_the_connections_of_the_same_name() -> None:
    connection = [(b"host", b"h"), (b"x-tenant", b"a"), (b"origin", b"https://o")]
    assert _mux.call_headers(connection, [("x-tenant", "b"), ("x-new", "1")]) == [
        (b"host", b"h"),
        (b"origin", b"https://o"),
        (b"x-tenant", b"b"),
        (b"x-new", b"1"),
    ]
    assert _mux.call_headers(connection, []) == connection


# WINDOW and END payloads.


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


@pytest.mark.parametrize(
    ("payload", "error", "code", "reason"),
    [
        (b"\x00\x00\x01", CallRefused, 1008, "WINDOW frame payload must be 4 bytes"),
        (b"\x00\x00\x00\x00", FlowControlError, 1008, "WINDOW increment of 0"),
    ],
)
def test_window_errors(payload: bytes, error: type[CallRefused], code: int, reason: str) -> None:
    with pytest.raises(error) as info:
        parse_window(payload)
    assert (info.value.code, info.value.reason, str(info.value)) == (code, reason, reason)


def test_end_payload() -> None:
    assert _mux.parse_end(b"\x114Not Found") == (4404, "Not Found")
    assert _mux.parse_end(b"\x03\xe8") == (1000, "")
    with pytest.raises(MuxProtocolError):
        _mux.parse_end(b"\x03")
    long_reason = "é" * 100
    code, reason = _mux.parse_end(_mux.encode_end(1, 1011, long_reason)[5:])
    assert code == 1011
    assert len(reason.encode()) <= 123


def test_end_without_a_code() -> None:
    with pytest.raises(MuxProtocolError) as info:
        parse_end(b"\x03")
    assert info.value.reason == "END frame without a close code"


# Flow control, at each end of its bounds.


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


def test_send_credit() -> None:
    credit = SendCredit(10)
    credit.spend(8)  # 8 bytes and the newline
    assert (credit.credit, credit.available) == (1, True)
    credit.spend(0)
    assert (credit.credit, credit.available) == (0, False)
    credit.grant((1 << 31) - 1)  # exactly the largest window
    assert credit.credit == (1 << 31) - 1
    with pytest.raises(FlowControlError) as info:
        credit.grant(1)
    assert (info.value.code, info.value.reason) == (1008, "WINDOW increment overflows the credit")


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


def test_receive_credit_allows_a_message_while_any_credit_is_left() -> None:
    credit = ReceiveCredit(10)
    credit.received(8)
    assert credit.remaining == 1
    credit.received(5)  # one byte of credit left: the peer may still send one message
    assert credit.remaining == -5
    with pytest.raises(FlowControlError) as info:
        credit.received(0)
    assert info.value.reason == "flow control: message sent without credit"


def test_receive_credit_returns_half_a_window_at_a_time() -> None:
    credit = ReceiveCredit(10)
    credit.received(3)
    assert credit.consumed(3) == 0  # 4 owed: under half of 10
    assert credit.consumed(0) == 5  # 5 owed: exactly half, returned
    assert (credit.owed, credit.remaining) == (0, 11)
    odd = ReceiveCredit(11)
    assert odd.consumed(3) == 0  # 4 owed, under 11 // 2 = 5
    assert odd.consumed(0) == 5


# Call ids.


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


def test_call_ids_increase_and_frames_for_never_opened_calls_are_errors() -> None:
    ids = CallIds()
    ids.open(1)
    ids.open(5)
    ids.check_unknown(5)  # the last opened call, ended: a race, not an error
    ids.check_unknown(3)
    with pytest.raises(MuxProtocolError) as info:
        ids.check_unknown(6)
    assert info.value.reason == "frame for call 6, which was never opened"
    with pytest.raises(MuxProtocolError) as info:
        ids.open(5)
    assert info.value.reason == "OPEN of call 5: ids must increase (last was 5)"
