"""Edges of the stream core's decisions (wsproxy/stream/_core.py) that mutation testing found unpinned.

Each row pins one documented rule at the input that tells it apart: a message with only a line feed
or only a carriage return, the joining bound at exactly its limit, a turn owed after a join, the
actions left pending when the loop turned by itself, the idle count when two kinds of activity
happen within one tick. `make mutate` runs these rows against the core (docs/testing.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from wsproxy._types import Message
from wsproxy.stream._actions import BODY_ENDED, CLIENT_GONE, TURN, Close
from wsproxy.stream._core import StreamCore
from wsproxy.stream._records import StreamSettings

KIB = 1024


def core(single_message: bool = False, **settings: Any) -> StreamCore:
    return StreamCore(StreamSettings(**settings), single_message=single_message)


def text(data: str) -> Message:
    return {"type": "websocket.receive", "text": data}


def binary(data: bytes) -> Message:
    return {"type": "websocket.receive", "bytes": data}


def request(body: bytes, more: bool = True) -> Message:
    return {"type": "http.request", "body": body, "more_body": more}


def response_body(data: bytes) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": True}


@pytest.mark.parametrize(
    ("message", "event"),
    [
        (text("a\nb"), request(b"a b\n")),  # a line feed alone, no carriage return
        (text("a\rb"), request(b"a b\n")),
        (binary(b"a\nb"), request(b"a b\n")),
        (binary(b"a\rb"), request(b"a b\n")),  # a carriage return alone, no line feed
    ],
)
def test_a_line_break_of_either_kind_alone_becomes_a_space(message: Message, event: Message) -> None:
    assert core().client_message(message) == event


@pytest.mark.parametrize(
    ("settings", "message", "joined"),
    [
        ({"max_message_size": 16 * KIB}, "a", True),  # 4 bytes per character of 4095 characters: fits
        ({"max_message_size": 16 * KIB - 1}, "a", False),
        ({"max_message_size": 1000, "half_close": None}, "", False),  # never joined: not even an empty text
    ],
)
def test_joining_is_on_only_when_the_message_limit_holds_any_joinable_text(
    settings: dict[str, Any], message: str, joined: bool
) -> None:
    stream = core(**settings)
    assert stream.join(text(message)) is joined
    assert (stream.joined() is not None) is joined


def test_a_join_that_spends_the_budget_owes_its_turn_after_the_app_has_the_message() -> None:
    stream = core()
    assert stream.join(text("m"))
    while stream.join(text("m")):
        pass
    assert stream.joined() == request(b"m\n" * 16)
    # Held once (the app must have its event before the loop turns), then taken.
    assert (stream.pending, stream.next_action(), stream.pending) == (True, None, True)
    assert stream.next_action() is TURN


def test_after_its_close_frame_the_stream_asks_for_nothing_more() -> None:
    stream = core()
    stream.close(1011, "boom")
    assert [stream.next_action(), stream.next_action()] == [Close(1011, "boom"), None]
    assert stream.pending is False


def _closed(stream: StreamCore) -> None:
    stream.close(1011, "boom")


def _body_ended(stream: StreamCore) -> None:
    stream.client_message(text(""))


def _client_left(stream: StreamCore) -> None:
    stream.client_left(None)


def _client_left_and_told(stream: StreamCore) -> None:
    stream.client_left(None)
    while stream.next_action() is not None:
        pass
    stream.turn_owed()


def _turn_owed(stream: StreamCore) -> None:
    stream.turn_owed()


@pytest.mark.parametrize(
    ("event", "still_pending", "action"),
    [
        (_closed, True, Close(1011, "boom")),
        (_body_ended, True, BODY_ENDED),
        (_client_left, True, CLIENT_GONE),
        (_client_left_and_told, False, None),
        (_turn_owed, False, None),
    ],
)
def test_when_the_loop_turned_by_itself_only_the_other_actions_stay_pending(
    event: Callable[[StreamCore], None], still_pending: bool, action: object
) -> None:
    stream = core()
    event(stream)
    stream.loop_turned()
    assert (stream.pending is still_pending, stream.turn_due) == (True, False)
    assert stream.next_action() == action


def test_the_one_message_of_a_single_message_call_is_activity() -> None:
    # It is counted in and ends the body in the same tick: both are activity, neither cancels the other.
    stream = core(True, idle_timeout=2)
    assert stream.tick() is False
    stream.client_message(text("x"))
    assert [stream.tick(), stream.tick()] == [False, False]
    assert stream.tick() is True


def test_a_message_in_and_a_frame_out_within_one_tick_are_activity() -> None:
    stream = core(idle_timeout=2)
    stream.response.metadata({"type": "http.response.start", "status": 200})
    assert stream.tick() is False
    stream.client_message(text("x"))
    assert stream.response.single_frame(response_body(b"y\n")) == {"type": "websocket.send", "text": "y"}
    assert [stream.tick(), stream.tick()] == [False, False]
    assert stream.tick() is True
