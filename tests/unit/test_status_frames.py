"""`wsproxy.status.v1` (wsproxy/_status.py and its users), table-driven and without I/O.

The control frames' JSON both ways; the handshake that selects the subprotocol and tells the app it
may send trailers; the stream's response with and without the status asked for: the status frame
first, trailers before the close, and what an app that breaks the trailers rules gets.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from wsproxy import _status
from wsproxy._handshake import offers_status, plan_request
from wsproxy._options import ProxyOptions
from wsproxy._types import Message
from wsproxy.errors import ClientDisconnected
from wsproxy.mux import _frames as mux
from wsproxy.stream._actions import Close
from wsproxy.stream._core import StreamCore
from wsproxy.stream._records import StreamSettings

# The control frames.


@pytest.mark.parametrize(
    ("headers", "exposed"),
    [
        ([], []),
        ([(b"Content-Type", b"application/json")], [["content-type", "application/json"]]),
        (
            [(b"grpc-metadata-a", b"1"), (b"X-Other", b"two"), (b"grpc-metadata-a", b"3")],
            [["grpc-metadata-a", "1"], ["x-other", "two"], ["grpc-metadata-a", "3"]],
        ),
        # Framing and connection headers, and cookies, never reach the client.
        (
            [
                (b"content-length", b"12"),
                (b"Transfer-Encoding", b"chunked"),
                (b"connection", b"close"),
                (b"keep-alive", b"5"),
                (b"trailer", b"grpc-status"),
                (b"te", b"trailers"),
                (b"upgrade", b"h2c"),
                (b"proxy-connection", b"x"),
                (b"Proxy-Authenticate", b"Basic"),
                (b"proxy-status", b"wsproxy"),
                (b"Set-Cookie", b"session=secret; HttpOnly"),
                (b"set-cookie2", b"old"),
                (b"vary", b"accept"),
            ],
            [["vary", "accept"]],
        ),
        ([(b"x-latin", "caf\u00e9".encode("latin-1"))], [["x-latin", "caf\u00e9"]]),
    ],
)
def test_exposed_headers(headers: list[tuple[bytes, bytes]], exposed: list[list[str]]) -> None:
    assert _status.exposed_headers(headers) == exposed
    decoded = _status.parse_control(_status.encode_status(200, headers))
    assert decoded == _status.Control("status", 200, [(name, value) for name, value in exposed])


def test_the_frames_are_compact_json_with_a_type() -> None:
    assert _status.encode_status(403, [(b"content-type", b"application/json")]) == (
        b'{"type":"status","status":403,"headers":[["content-type","application/json"]]}'
    )
    assert _status.encode_trailers([(b"Grpc-Trailer-X", b"v")]) == (
        b'{"type":"trailers","headers":[["grpc-trailer-x","v"]]}'
    )
    assert _status.parse_control(_status.encode_trailers([(b"a", b"b")])) == _status.Control(
        "trailers", None, [("a", "b")]
    )


@pytest.mark.parametrize("payload", [b"\xff\xfe", b"ok\x80", b"\xc3\x28"])
def test_a_binary_payload_that_is_not_utf8_is_a_line_not_a_control_frame(payload: bytes) -> None:
    assert _status.parse_control(payload) is None


@pytest.mark.parametrize(
    "payload", [b'{"type":"progress"}', b'{"type":"progress","headers":{"not":"a list"},"status":"x"}']
)
def test_a_control_frame_of_a_later_type_is_handed_on_to_be_skipped(payload: bytes) -> None:
    assert _status.parse_control(payload) == _status.Control("progress")


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"not json", "Expecting value"),
        (b"[1]", "not a JSON object"),
        (b'{"type":"status"}', "invalid status: None"),
        (b'{"type":"status","status":true}', "invalid status: True"),
        (b'{"type":"status","status":99}', "invalid status: 99"),
        (b'{"type":"status","status":1000}', "invalid status: 1000"),
        (b'{"type":"status","status":200,"headers":{}}', '"headers" is not a list'),
        (b'{"type":"status","status":200,"headers":[["a"]]}', r"\[name, value\] strings"),
        (b'{"type":"status","status":200,"headers":[["a",1]]}', r"\[name, value\] strings"),
        (b"{}", "control frame without a type: None"),
        (b'{"type":7}', "control frame without a type: 7"),
    ],
)
def test_a_utf8_payload_that_is_not_a_control_frame_is_refused(payload: bytes, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        _status.parse_control(payload)


# The handshake.


def ws_scope(*subprotocols: str) -> dict[str, Any]:
    return {
        "type": "websocket",
        "path": "/v1/x",
        "query_string": b"",
        "headers": [(b"te", b"gzip")],
        "subprotocols": list(subprotocols),
    }


def plan(scope: dict[str, Any], report_status: bool) -> Any:
    return plan_request(
        scope, ProxyOptions(), forwards=lambda name: True, origins=None, report_status=report_status
    )


@pytest.mark.parametrize(
    ("offered", "status_offered"),
    [
        ((), False),
        (("wsproxy.status.v1",), True),
        (("Bearer", "tok", "wsproxy.status.v1"), True),
        (("Bearer", "wsproxy.status.v1"), True),  # a token spelled like the name is still offered
        (("Bearer", "tok"), False),
        (("wsproxy.status.v2",), False),
        (("wsproxy.mux.v1", "wsproxy.status.v1"), True),
    ],
)
def test_offers_status(offered: tuple[str, ...], status_offered: bool) -> None:
    assert offers_status(ws_scope(*offered)) is status_offered


@pytest.mark.parametrize(
    ("offered", "report_status", "subprotocol", "authorization"),
    [
        (("wsproxy.status.v1",), True, "wsproxy.status.v1", None),
        (("Bearer", "tok", "wsproxy.status.v1"), True, "wsproxy.status.v1", b"Bearer tok"),
        (("Bearer", "tok"), False, "Bearer", b"Bearer tok"),
        ((), False, None, None),
    ],
)
def test_the_plan_accepts_the_status_subprotocol_and_offers_trailers_to_the_app(
    offered: tuple[str, ...], report_status: bool, subprotocol: str | None, authorization: bytes | None
) -> None:
    got = plan(ws_scope(*offered), report_status)
    headers = dict(got.scope["headers"])
    assert (got.subprotocol, got.report_status, headers.get(b"authorization")) == (
        subprotocol,
        report_status,
        authorization,
    )
    # The client's own TE is hop-by-hop and never passes; the proxy's says what the client can take.
    assert headers.get(b"te") == (b"trailers" if report_status else None)
    assert got.scope["extensions"] == ({"http.response.trailers": {}} if report_status else {})


# The response, as the stream core frames it.


def core(report_status: bool) -> StreamCore:
    return StreamCore(StreamSettings(), report_status=report_status)


def start(status: int = 200, trailers: bool = False, headers: Any = ()) -> Message:
    return {"type": "http.response.start", "status": status, "headers": list(headers), "trailers": trailers}


def body(data: bytes, more: bool = True) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": more}


def trailers(headers: Any, more: bool = False) -> Message:
    return {"type": "http.response.trailers", "headers": list(headers), "more_trailers": more}


def control(frame: Message | None) -> Any:
    assert frame is not None
    assert "text" not in frame
    return json.loads(frame["bytes"])


@pytest.mark.parametrize("status", [200, 204, 403, 500, 599])
def test_the_status_frame_comes_from_the_start_with_the_apps_headers(status: int) -> None:
    stream = core(report_status=True)
    frame = stream.response.metadata(start(status, headers=[(b"x-id", b"7"), (b"content-length", b"3")]))
    assert control(frame) == {"type": "status", "status": status, "headers": [["x-id", "7"]]}
    assert stream.take_close() is None  # the start decides nothing about the end


def test_without_the_status_asked_for_the_start_sends_nothing_and_trailers_are_ignored() -> None:
    stream = core(report_status=False)
    assert stream.response.metadata(start(200, trailers=True)) is None
    assert [frame["text"] for frame in stream.response.body(body(b"a\n", more=False))] == ["a"]
    assert stream.take_close() == Close(1000)  # at the last body, as always
    with pytest.raises(RuntimeError, match=r"but got 'http\.response\.trailers'"):
        stream.response.metadata(trailers([]))


@pytest.mark.parametrize(("status", "close"), [(200, Close(1000)), (404, Close(4404, "Not Found"))])
def test_announced_trailers_come_before_the_close(status: int, close: Close) -> None:
    stream = core(report_status=True)
    stream.response.metadata(start(status, trailers=True))
    assert [frame["text"] for frame in stream.response.body(body(b"line\n", more=False))] == ["line"]
    assert stream.response.complete
    assert stream.take_close() is None
    first = stream.response.metadata(trailers([(b"grpc-trailer-a", b"1")], more=True))
    assert control(first) == {"type": "trailers", "headers": [["grpc-trailer-a", "1"]]}
    assert stream.take_close() is None  # more_trailers
    last = stream.response.metadata(trailers([(b"Grpc-Trailer-B", b"2")]))
    assert control(last) == {"type": "trailers", "headers": [["grpc-trailer-b", "2"]]}
    assert stream.take_close() == close


@pytest.mark.parametrize(
    ("events", "error"),
    [
        ([start(200)], "not announced"),  # trailers that were not announced
        ([start(200, trailers=True), body(b"a\n")], "before the last body"),  # body not ended yet
        ([start(200, trailers=True)], "before the last body"),
    ],
)
def test_trailers_out_of_turn_are_refused(events: list[Message], error: str) -> None:
    stream = core(report_status=True)
    for event in events:
        if event["type"] == "http.response.start":
            stream.response.metadata(event)
        else:
            stream.response.body(event)
    with pytest.raises(RuntimeError, match=error):
        stream.response.metadata(trailers([]))


def test_trailers_after_the_last_ones_are_refused() -> None:
    stream = core(report_status=True)
    stream.response.metadata(start(200, trailers=True))
    stream.response.body(body(b"", more=False))
    stream.response.metadata(trailers([]))
    with pytest.raises(RuntimeError, match="not announced"):
        stream.response.metadata(trailers([]))


def test_an_app_that_returns_without_its_announced_trailers_still_closes_with_its_status() -> None:
    stream = core(report_status=True)
    stream.response.metadata(start(403, trailers=True))
    stream.response.body(body(b'{"detail":"no"}\n', more=False))
    assert stream.outcome(None) == (logging.INFO, "app returned without the trailers it announced")
    assert stream.take_close() == Close(4403, "Forbidden")


def test_an_app_that_returns_before_the_end_of_its_body_is_still_an_incomplete_response() -> None:
    stream = core(report_status=True)
    stream.response.metadata(start(200, trailers=True))
    stream.response.body(body(b"a\n"))
    assert stream.outcome(None) == (logging.ERROR, "app returned before finishing its response")
    assert stream.take_close() == Close(1011, "incomplete response")


def test_the_control_frames_are_charged_to_the_turn_budget() -> None:
    stream = StreamCore(StreamSettings(yield_frames=2), report_status=True)
    stream.response.metadata(start(200, trailers=True))
    assert not stream.turn_due
    stream.response.body(body(b"", more=False))  # an event with no line is charged too
    assert stream.turn_due


# The mux framing of it.


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        (b'{"path":"/v1/x"}', False),
        (b'{"path":"/v1/x","status":true}', True),
        (b'{"path":"/v1/x","status":false}', False),
    ],
)
def test_open_asks_for_the_status(payload: bytes, status: bool) -> None:
    assert mux.parse_open(payload).status is status


@pytest.mark.parametrize("value", ["1", "true", 1, None, [], {}])
def test_open_with_a_status_that_is_not_a_boolean_is_refused(value: object) -> None:
    payload = json.dumps({"path": "/v1/x", "status": value}).encode()
    with pytest.raises(mux.CallRefused, match=r"^OPEN") as info:
        mux.parse_open(payload)
    assert (info.value.code, info.value.reason) == (1008, 'OPEN "status" must be true or false')


def test_encode_open_says_status_only_when_asked() -> None:
    assert mux.encode_open(1, "/v1/x")[mux.HEADER_SIZE :] == b'{"path":"/v1/x"}'
    assert mux.encode_open(1, "/v1/x", status=True)[mux.HEADER_SIZE :] == b'{"path":"/v1/x","status":true}'


@pytest.mark.parametrize(("kind", "value"), [(mux.FrameType.STATUS, 0x14), (mux.FrameType.TRAILERS, 0x15)])
def test_status_and_trailers_frames_go_from_server_to_client_only(kind: mux.FrameType, value: int) -> None:
    assert kind == value
    frame = mux.encode(kind, 3, b"{}")
    assert mux.decode(frame, mux.SERVER_FRAMES) == mux.Frame(kind, 3, b"{}")
    with pytest.raises(mux.MuxProtocolError, match="not allowed in this direction"):
        mux.decode(frame, mux.CLIENT_FRAMES)


# Edges found by mutation testing (docs/testing.md).


def test_header_values_beyond_ascii_go_as_utf8_json_not_escapes() -> None:
    payload = _status.encode_status(200, [(b"x-name", "Jos\u00e9".encode("latin-1"))])
    assert payload == '{"type":"status","status":200,"headers":[["x-name","Jos\u00e9"]]}'.encode()


@pytest.mark.parametrize(("status", "ok"), [(100, True), (999, True), (99, False), (1000, False)])
def test_the_status_range_is_inclusive(status: int, ok: bool) -> None:
    payload = json.dumps({"type": "status", "status": status}).encode()
    if ok:
        assert _status.parse_control(payload) == _status.Control("status", status, [])
    else:
        with pytest.raises(ValueError, match=f"^status frame with an invalid status: {status}$"):
            _status.parse_control(payload)


@pytest.mark.parametrize("kind", ["status", "trailers"])
def test_a_control_frame_without_headers_has_none(kind: str) -> None:
    control = _status.parse_control(json.dumps({"type": kind, "status": 204}).encode())
    assert control is not None
    assert control.headers == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"[]", "control frame is not a JSON object"),
        (b'{"type":"trailers","headers":"x"}', 'control frame "headers" is not a list'),
        (
            b'{"type":"trailers","headers":[[1,2]]}',
            'control frame "headers" items must be [name, value] strings',
        ),
    ],
)
def test_the_refusals_say_exactly_what_is_wrong(payload: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=r"^control frame") as info:
        _status.parse_control(payload)
    assert str(info.value) == message


def test_a_start_without_headers_or_a_trailers_flag_is_a_plain_status() -> None:
    stream = core(report_status=True)
    frame = stream.response.metadata({"type": "http.response.start", "status": 200})
    assert control(frame) == {"type": "status", "status": 200, "headers": []}
    stream.response.body({"type": "http.response.body", "body": b"", "more_body": False})
    assert stream.take_close() == Close(1000)  # no trailers announced: the close comes at the body's end


def test_trailers_without_more_trailers_or_headers_end_the_response() -> None:
    stream = core(report_status=True)
    stream.response.metadata(start(200, trailers=True))
    stream.response.body(body(b"", more=False))
    assert control(stream.response.metadata({"type": "http.response.trailers"})) == {
        "type": "trailers",
        "headers": [],
    }
    assert stream.response.complete is True
    assert stream.take_close() == Close(1000)


def test_trailers_after_the_client_left_raise_client_disconnected() -> None:
    stream = core(report_status=True)
    stream.response.metadata(start(200, trailers=True))
    stream.response.body(body(b"", more=False))
    stream.client_left(None)
    with pytest.raises(ClientDisconnected) as info:
        stream.response.metadata(trailers([]))
    assert str(info.value) == "the WebSocket client has gone away"


def test_trailers_out_of_turn_say_exactly_what_is_wrong() -> None:
    stream = core(report_status=True)
    stream.response.metadata(start(200))
    with pytest.raises(RuntimeError) as info:
        stream.response.metadata(trailers([]))
    assert str(info.value) == (
        'Unexpected ASGI message "http.response.trailers": not announced, or before the last body'
    )


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (_status.encode_status(200, [(b"x", b"caf\xe9")]), "status"),
        (_status.encode_status(500, []), "status"),
        (_status.encode_trailers([]), "trailers"),
        (b'{"type":"status",' + b"\xff", None),  # shaped like ours, but not UTF-8: a binary line
        (b'{"type":"trailers",\xc3\x28', None),
        (b"\xff\xfe", None),
        (b"", None),
        (b'{"type":"other"}', None),
    ],
)
def test_the_mux_session_sorts_its_calls_binary_frames_without_parsing_them(
    payload: bytes, kind: str | None
) -> None:
    assert _status.encoded_kind(payload) == kind


def test_a_start_after_the_client_left_sends_no_status_frame() -> None:
    stream = core(report_status=True)
    stream.client_left(None)
    assert stream.response.metadata(start(200)) is None
    with pytest.raises(ClientDisconnected):
        stream.response.body(body(b"a\n"))
