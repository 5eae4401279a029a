"""The client's side of `wsproxy.status.v1`, pure: frames (control frames as the wire carries them,
binary UTF-8 JSON) through the decoder, and `initial_metadata()` over a scripted call."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from wsproxy._status import Control
from wsproxy.client import (
    BadGatewayError,
    CallError,
    ConnectionLostError,
    HTTPStatusError,
    ProxyInternalError,
    StreamError,
)
from wsproxy.client._decoder import ResponseDecoder, error_body
from wsproxy.client._multiplexed import _control_of
from wsproxy.client._response import ResponseStream
from wsproxy.mux import _frames as mux

Frame = str | bytes


def status(code: int, headers: Sequence[tuple[str, str]] = ()) -> bytes:
    return json.dumps({"type": "status", "status": code, "headers": [list(h) for h in headers]}).encode()


def trailers(headers: Sequence[tuple[str, str]]) -> bytes:
    return json.dumps({"type": "trailers", "headers": [list(h) for h in headers]}).encode()


def run(decoder: ResponseDecoder, frames: Sequence[Frame]) -> list[list[Any]]:
    return [decoder.feed(frame) for frame in frames]


HEADERS = [("content-type", "application/x-ndjson"), ("x-app", "v")]


def test_status_frame_sets_status_and_headers_and_is_not_a_message() -> None:
    decoder = ResponseDecoder(status=True)
    assert (decoder.status, decoder.headers, decoder.awaiting_status) == (None, [], True)
    assert decoder.feed(status(200, HEADERS)) == []
    assert (decoder.status, decoder.headers, decoder.awaiting_status) == (200, HEADERS, False)


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        # After a 2xx status no line waits, not even one shaped like an error body.
        ([status(200), '{"code":5,"message":"x"}'], [[], [{"code": 5, "message": "x"}]]),
        ([status(201), '{"result":{"seq":1}}', "text"], [[], [{"seq": 1}], ["text"]]),
        ([status(204), b"\xff\xfe"], [[], [b"\xff\xfe"]]),  # a binary frame that is not UTF-8: a line
        ([status(299), "[1]"], [[], [[1]]]),
        # Without a status frame first, today's rule: the status-shaped line waits for the next frame.
        (['{"code":5,"message":"x"}', '{"a":1}'], [[], [{"code": 5, "message": "x"}, {"a": 1}]]),
    ],
)
def test_lines_after_a_success_status_are_released_at_once(
    frames: list[Frame], expected: list[list[Any]]
) -> None:
    assert run(ResponseDecoder(status=True), frames) == expected


def test_success_status_then_normal_close_has_nothing_left() -> None:
    decoder = ResponseDecoder(status=True)
    run(decoder, [status(200), '{"code":0,"message":"ok"}'])
    assert decoder.close(1000) == ([], None)


@pytest.mark.parametrize("code", [300, 304, 400, 403, 404, 500, 503, 999])
def test_any_other_status_holds_every_line_as_the_error_body(code: int) -> None:
    decoder = ResponseDecoder(status=True)
    assert run(decoder, [status(code), '{"result":1}', '{"error":{"code":3}}']) == [[], [], []]
    assert decoder.failed
    messages, error = decoder.close(4000 + code, "why")
    assert messages == []
    assert isinstance(error, HTTPStatusError)
    assert (error.status, error.code, error.reason) == (code, 4000 + code, "why")
    assert error.error_body == '{"result":1}\n{"error":{"code":3}}'  # two JSON lines are not one JSON


def test_fastapi_error_status_carries_its_json_body() -> None:
    decoder = ResponseDecoder(status=True)
    assert run(decoder, [status(403, [("content-type", "application/json")]), '{"detail":"bad token"}']) == [
        [],
        [],
    ]
    messages, error = decoder.close(4403, "Forbidden")
    assert messages == []
    assert isinstance(error, HTTPStatusError)
    assert (error.status, error.code, error.error_body, error.message) == (
        403,
        4403,
        {"detail": "bad token"},
        "bad token",
    )
    assert decoder.headers == [("content-type", "application/json")]
    assert str(error) == "HTTP 403 Forbidden bad token"


def test_raw_mode_yields_nothing_of_an_error_body_either() -> None:
    decoder = ResponseDecoder(raw=True, status=True)
    assert run(decoder, [status(400), '{"code":3,"message":"m"}']) == [[], []]
    _, error = decoder.close(4400, "")
    assert isinstance(error, HTTPStatusError)
    assert (error.error_body, error.reason, error.grpc_code_name) == (
        {"code": 3, "message": "m"},
        "Bad Request",  # no close reason: the status's phrase
        "INVALID_ARGUMENT",
    )


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([], None),
        (['{"detail":"bad token"}'], {"detail": "bad token"}),
        # grpc-gateway's stream envelope: the google.rpc.Status inside it.
        (['{"error":{"code":7,"message":"no","details":[]}}'], {"code": 7, "message": "no", "details": []}),
        (['{"error":"a string"}'], {"error": "a string"}),
        (['{"error":{"code":7},"other":1}'], {"error": {"code": 7}, "other": 1}),
        (["{", '  "code": 5,', '  "message": "gone"', "}"], {"code": 5, "message": "gone"}),  # pretty JSON
        (["Forbidden"], "Forbidden"),
        (["line one", "line two"], "line one\nline two"),
        ([b"\xff", "x"], "\ufffd\nx"),
        (["42"], 42),
        (["null"], None),
    ],
)
def test_error_body(lines: list[Frame], expected: Any) -> None:
    assert error_body(lines) == expected


def test_envelope_error_body_gives_the_grpc_fields() -> None:
    decoder = ResponseDecoder(status=True)
    run(decoder, [status(403), '{"error":{"code":7,"message":"denied","details":[{"@type":"t"}]}}'])
    _, error = decoder.close(4403, "Forbidden")
    assert isinstance(error, HTTPStatusError)
    assert not isinstance(error, StreamError)
    assert (error.grpc_code_name, error.message, error.details) == (
        "PERMISSION_DENIED",
        "denied",
        [{"@type": "t"}],
    )


@pytest.mark.parametrize(
    ("code", "error_class", "expected_code"),
    [(1011, HTTPStatusError, 1011), (1014, HTTPStatusError, 1014), (None, HTTPStatusError, 1006)],
)
def test_error_status_wins_over_a_transport_close(
    code: int | None, error_class: type[CallError], expected_code: int
) -> None:
    decoder = ResponseDecoder(status=True)
    run(decoder, [status(500), "partial"])
    _, error = decoder.close(code, "")
    assert type(error) is error_class
    assert isinstance(error, HTTPStatusError)
    assert (error.status, error.code, error.error_body) == (500, expected_code, "partial")


@pytest.mark.parametrize(
    ("code", "error_class"),
    [(1014, BadGatewayError), (1011, ProxyInternalError), (None, ConnectionLostError)],
)
def test_success_status_then_a_transport_close(code: int | None, error_class: type[CallError]) -> None:
    decoder = ResponseDecoder(status=True)
    assert run(decoder, [status(200), '{"code":1,"message":"m"}']) == [[], [{"code": 1, "message": "m"}]]
    messages, error = decoder.close(code, "")
    assert messages == []
    assert type(error) is error_class


def test_error_line_after_a_success_status_is_a_stream_error() -> None:
    decoder = ResponseDecoder(status=True)
    assert decoder.feed(status(200)) == []
    with pytest.raises(StreamError) as caught:
        decoder.feed('{"error":{"code":14,"message":"broke"}}')
    assert (caught.value.status, caught.value.grpc_code_name) == (503, "UNAVAILABLE")


def test_trailers_frame_after_the_lines() -> None:
    decoder = ResponseDecoder(status=True)
    frames: list[Frame] = [status(200, HEADERS), '{"result":1}', trailers([("grpc-trailer-x", "v")])]
    assert run(decoder, frames) == [[], [1], []]
    assert decoder.trailers == [("grpc-trailer-x", "v")]
    assert decoder.close(1000) == ([], None)


def test_trailers_of_an_error_answer_are_kept_too() -> None:
    decoder = ResponseDecoder(status=True)
    run(decoder, [status(404), '{"code":5,"message":"gone"}', trailers([("grpc-status", "5")])])
    assert decoder.trailers == [("grpc-status", "5")]
    _, error = decoder.close(4404, "")
    assert isinstance(error, HTTPStatusError)
    assert error.error_body == {"code": 5, "message": "gone"}


@pytest.mark.parametrize(
    ("frames", "problem"),
    [
        ([status(200), status(200)], "not the call's first frame"),
        (['{"a":1}', status(200)], "not the call's first frame"),
        ([trailers([])], "before the status frame"),
    ],
)
def test_control_frames_out_of_order_fail_the_call(frames: list[Frame], problem: str) -> None:
    decoder = ResponseDecoder(status=True)
    with pytest.raises(CallError, match=problem):
        run(decoder, frames)


@pytest.mark.parametrize("before_status", [True, False])
def test_a_control_frame_of_a_later_type_is_skipped(before_status: bool) -> None:
    decoder = ResponseDecoder(status=True)
    later = b'{"type":"progress","done":3}'
    frames: list[Frame] = [later, status(200), "1"] if before_status else [status(200), later, "1"]
    assert [message for ready in run(decoder, frames) for message in ready] == [1]
    assert (decoder.status, decoder.trailers) == (200, [])


@pytest.mark.parametrize("control", [Control("status", 200, []), Control("trailers", None, [])])
def test_control_frame_for_a_call_that_did_not_ask_fails_it(control: Control) -> None:
    decoder = ResponseDecoder(status=False)
    with pytest.raises(CallError, match="did not ask"):
        decoder.control(control)


def test_without_the_contract_a_binary_frame_is_always_a_line() -> None:
    """status=False (or a server that did not select the subprotocol): today's decoding exactly."""
    decoder = ResponseDecoder(status=False)
    assert not decoder.awaiting_status
    assert run(decoder, [status(403)]) == [[{"type": "status", "status": 403, "headers": []}]]
    assert decoder.status is None
    assert decoder.feed('{"detail":"bad token"}') == [{"detail": "bad token"}]
    _, error = decoder.close(4403, "Forbidden")
    assert isinstance(error, HTTPStatusError)
    assert error.error_body == {"detail": "bad token"}


def test_no_status_before_the_close_follows_the_close_code() -> None:
    decoder = ResponseDecoder(status=True)
    messages, error = decoder.close(1011, "")
    assert (messages, type(error), decoder.status) == ([], ProxyInternalError, None)


# initial_metadata(), over a call whose frames are scripted (no socket).


class Scripted(ResponseStream):
    def __init__(self, frames: Sequence[Frame], close: int | None, *, status: bool = True) -> None:
        super().__init__(ResponseDecoder(status=status))
        self._frames = list(frames)
        self._close = close
        self.steps = 0

    async def close(self) -> None:
        pass

    async def _advance(self) -> None:
        self.steps += 1
        if self._frames:
            try:
                self._ready.extend(self._decoder.feed(self._frames.pop(0)))
            except CallError as error:
                self._ended, self._error = True, error
            return
        self._ended = True
        self.close_code = self._close
        messages, self._error = self._decoder.close(self._close, "")
        self._ready.extend(messages)


async def test_initial_metadata_reads_only_the_status_frame() -> None:
    call = Scripted([status(200, HEADERS), '{"result":1}', '{"result":2}'], 1000)
    assert await call.initial_metadata() == HEADERS
    assert (call.steps, call.status, call.headers) == (1, 200, HEADERS)
    assert await call.initial_metadata() == HEADERS  # again: nothing more read
    assert call.steps == 1
    assert [message async for message in call] == [1, 2]


async def test_initial_metadata_of_an_error_status_raises_the_calls_error() -> None:
    call = Scripted([status(403), '{"detail":"bad token"}'], 4403)
    with pytest.raises(HTTPStatusError) as caught:
        await call.initial_metadata()
    assert (caught.value.status, caught.value.code, caught.value.error_body) == (
        403,
        4403,
        {"detail": "bad token"},
    )
    assert call.status == 403
    with pytest.raises(HTTPStatusError) as again:
        _ = [message async for message in call]
    assert again.value is caught.value


async def test_initial_metadata_without_the_contract_is_empty_at_once() -> None:
    call = Scripted(['{"result":1}'], 1000, status=False)
    assert await call.initial_metadata() == []
    assert call.steps == 0
    assert await call.result() == 1


async def test_initial_metadata_from_a_server_that_sends_no_status_stops_at_the_first_line() -> None:
    call = Scripted(['{"result":1}', '{"result":2}'], 1000)
    assert await call.initial_metadata() == []
    assert call.steps == 1
    assert [message async for message in call] == [1, 2]


async def test_initial_metadata_of_a_call_that_failed_before_its_status() -> None:
    call = Scripted([], 1011)
    with pytest.raises(ProxyInternalError):
        await call.initial_metadata()


async def test_initial_metadata_of_a_successful_call_that_later_failed_returns_the_headers() -> None:
    call = Scripted([status(200, HEADERS), '{"result":1}'], 1014)
    with pytest.raises(BadGatewayError):
        _ = [message async for message in call]
    assert await call.initial_metadata() == HEADERS


# The mux client's STATUS and TRAILERS frames: their payload must be the matching control object.


@pytest.mark.parametrize(
    ("kind", "payload", "expected"),
    [
        (mux.FrameType.STATUS, status(403, [("a", "b")]), Control("status", 403, [("a", "b")])),
        (mux.FrameType.TRAILERS, trailers([("t", "1")]), Control("trailers", None, [("t", "1")])),
        (mux.FrameType.STATUS, trailers([]), "STATUS frame without a status object"),
        (mux.FrameType.TRAILERS, status(200), "TRAILERS frame without a trailers object"),
        (mux.FrameType.STATUS, b"\xff", "STATUS frame without a status object"),
        (mux.FrameType.STATUS, b'{"type":"other"}', "STATUS frame without a status object"),
        (mux.FrameType.TRAILERS, b"[]", "TRAILERS frame without a trailers object"),
    ],
)
def test_mux_control_frames(kind: mux.FrameType, payload: bytes, expected: Control | str) -> None:
    frame = mux.Frame(kind, 1, payload)
    if isinstance(expected, Control):
        assert _control_of(frame) == expected
    else:
        with pytest.raises(mux.MuxProtocolError, match=expected):
            _control_of(frame)


# Edges found by mutation testing (docs/testing.md).


def test_a_decoder_made_with_the_defaults_takes_no_control_frames() -> None:
    decoder = ResponseDecoder()
    assert decoder.feed(status(403)) == [{"type": "status", "status": 403, "headers": []}]
    assert decoder.status is None


def test_a_malformed_control_frame_says_what_is_wrong() -> None:
    decoder = ResponseDecoder(status=True)
    with pytest.raises(CallError) as info:
        decoder.feed(b'{"type":"status","status":"200"}')
    assert (
        str(info.value)
        == "malformed wsproxy.status.v1 control frame: status frame with an invalid status: '200'"
    )


@pytest.mark.parametrize("with_status", [False, True])
def test_a_close_without_a_reason_keeps_none(with_status: bool) -> None:
    decoder = ResponseDecoder(status=True)
    if with_status:
        decoder.feed(status(200))
    _, error = decoder.close(1011)
    assert isinstance(error, ProxyInternalError)
    assert error.reason == ""


@pytest.mark.parametrize("with_status", [False, True])
def test_a_close_passes_its_reason_on(with_status: bool) -> None:
    decoder = ResponseDecoder(status=True)
    if with_status:
        decoder.feed(status(200))
    _, error = decoder.close(1014, "bad gateway")
    assert isinstance(error, BadGatewayError)
    assert error.reason == "bad gateway"


def test_an_error_close_with_no_line_before_it_has_no_body() -> None:
    _, error = ResponseDecoder().close(4403, "Forbidden")
    assert isinstance(error, HTTPStatusError)
    assert error.error_body is None
