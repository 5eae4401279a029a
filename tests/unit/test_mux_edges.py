"""Edges of the mux framing (wsproxy/mux/_frames.py) found by mutation testing (docs/testing.md): exact
bytes of every encoder, exact error reasons, and each end of every bound."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable

import pytest

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


# Exact reasons.


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


def test_end_without_a_code() -> None:
    with pytest.raises(MuxProtocolError) as info:
        parse_end(b"\x03")
    assert info.value.reason == "END frame without a close code"


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


# Flow control, at each end of its bounds.


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


def test_the_header_is_a_type_byte_and_a_big_endian_call_id() -> None:
    assert struct.unpack("!BI", encode(FrameType.MESSAGE, 0x01020304)[:5]) == (2, 0x01020304)
