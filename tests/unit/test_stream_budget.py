"""The turn budget (wsproxy/stream/_budget.py) and how the stream core spends it, table-driven.

Each frame costs its size plus yield_bytes // yield_frames; a spent budget makes the core ask for a
turn (TURN, or TURN_AND_WATCH when the app only sent since the last one). The documented numbers
(docs/reliability.md: 16 frames or 256 KiB a turn for a stream, 64 messages for the gateway's pumps,
32 for the upstream app's) appear here as literals, not as the code's constants, so changing the
code without the docs turns these red.
"""

from __future__ import annotations

from typing import Any

import pytest

from wsproxy._types import Message
from wsproxy.stream._actions import TURN, TURN_AND_WATCH, Act, message_size
from wsproxy.stream._budget import GATEWAY_PUMP_MESSAGES, PUMP_MESSAGES, TurnBudget
from wsproxy.stream._core import StreamCore
from wsproxy.stream._records import StreamSettings

KIB = 1024
DOCUMENTED_FRAMES = 16
DOCUMENTED_BYTES = 256 * 1024


def core(**settings: Any) -> StreamCore:
    return StreamCore(StreamSettings(**settings))


def started(status: int = 200, **settings: Any) -> StreamCore:
    stream = core(**settings)
    stream.response.metadata({"type": "http.response.start", "status": status})
    return stream


def text(data: str) -> Message:
    return {"type": "websocket.receive", "text": data}


def binary(data: bytes) -> Message:
    return {"type": "websocket.receive", "bytes": data}


def body(data: bytes, more: bool = True) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": more}


def charge(stream: StreamCore, frame: Message) -> Act | None:
    """One of several frames of an event, charged as the shell charges it once it is sent."""
    return stream.turn() if stream.budget.charge(message_size(frame)) else None


def turn(stream: StreamCore) -> Act | None:
    """The turn the shell would take next (after a send, or before the next read); None if none is owed."""
    action = stream.next_action()
    if action is None and stream.pending:  # owed after a read: held until the app's next call
        action = stream.next_action()
    assert action is None or isinstance(action, Act)
    return action


# The rule, for every pump.


@pytest.mark.parametrize(
    ("frames", "nbytes", "charges", "due_at"),
    [
        (4, 1000, [0, 0, 0, 0, 0], 4),
        (1000, 10, [5, 4, 1, 9], 3),
        (2, 10, [0, 0], 2),
        (3, 10, [0, 0, 0, 0], 4),
    ],
)
def test_the_shared_budget_for_other_pumps(frames: int, nbytes: int, charges: list[int], due_at: int) -> None:
    budget = TurnBudget(frames, nbytes)
    assert budget.spent == 0
    results = [budget.take(size) for size in charges]
    assert results.index(True) + 1 == due_at
    assert results.count(True) == 1  # it starts over after saying so
    assert TurnBudget().frame_cost == 256 * KIB // 16  # the documented budget (docs/reliability.md)


def test_charge_keeps_saying_so_until_restarted() -> None:
    budget = TurnBudget(2, 10)
    assert [budget.charge(0), budget.charge(0), budget.charge(0)] == [False, True, True]
    budget.restart()
    assert (budget.spent, budget.charge(4)) == (0, False)


def test_the_pumps_numbers_are_the_documented_ones() -> None:
    assert (GATEWAY_PUMP_MESSAGES, PUMP_MESSAGES) == (64, 32)  # docs/gateway.md, docs/upstream.md
    assert TurnBudget(GATEWAY_PUMP_MESSAGES).frame_cost == 256 * KIB // 64


# The stream core's budget: one for both directions.


@pytest.mark.parametrize(("size", "frames_to_due"), [(1, 4), (249, 3), (250, 2), (1000, 1)])
def test_the_budget_is_due_after_n_frames_or_n_bytes_whichever_first(size: int, frames_to_due: int) -> None:
    stream = core(yield_frames=4, yield_bytes=1000)
    stream.response.metadata({"type": "http.response.start", "status": 200})
    for _ in range(frames_to_due - 1):
        stream.client_message(binary(b"b" * size))
        assert (stream.turn_due, stream.pending) == (False, False)
    stream.client_message(binary(b"b" * size))
    assert (stream.turn_due, stream.pending) == (True, True)


def test_each_way_of_sending_charges_the_same_budget() -> None:
    by_single = started(yield_frames=1000, yield_bytes=10)  # frame cost 0: bytes alone
    assert by_single.response.single_frame(body(b"sssss\n")) == {"type": "websocket.send", "text": "sssss"}
    assert (by_single.turn_due, by_single.budget.spent) == (False, 5)
    by_single.response.single_frame(body(b"sssss\n"))
    assert (by_single.turn_due, by_single.pending, by_single.budget.spent) == (True, True, 10)
    by_body = started(yield_frames=1000, yield_bytes=10)
    by_body.response.body(body(b"bbbbb\n"))  # one frame: charged here
    assert (by_body.turn_due, by_body.budget.spent) == (False, 5)
    by_body.response.body(body(b"bbbbb\n"))
    assert (by_body.turn_due, by_body.budget.spent) == (True, 10)
    several = started(yield_frames=1000, yield_bytes=10)
    frames = several.response.body(body(b"ccccc\nccccc\n"))  # several: the shell charges each
    assert several.budget.spent == 0
    assert [charge(several, frame) for frame in frames] == [None, TURN_AND_WATCH]
    assert (several.turn_due, several.budget.spent) == (False, 0)  # the turn is taken at once
    empty = started(yield_frames=2, yield_bytes=10)  # an event with no line still costs its share
    empty.response.body(body(b"partial"))
    assert empty.budget.spent == 5


def test_a_turn_starts_the_budget_over_and_says_whether_the_app_only_sent() -> None:
    stream = started(yield_frames=2, yield_bytes=1000)
    stream.client_message(text("in"))
    stream.response.single_frame(body(b"out\n"))
    assert stream.turn_due is True
    assert stream.next_action() is TURN  # the app took a message during that budget
    assert (stream.turn_due, stream.budget.spent, stream.next_action(), stream.pending) == (
        False,
        0,
        None,
        False,
    )
    stream.response.single_frame(body(b"out\n"))
    stream.response.single_frame(body(b"out\n"))
    assert stream.next_action() is TURN_AND_WATCH  # it only sent
    stream.client_message(text("in"))
    stream.client_message(text("in"))
    assert turn(stream) is TURN


def test_a_turn_owed_after_a_read_waits_for_the_apps_next_call() -> None:
    stream = started(yield_frames=1, yield_bytes=1000)
    stream.client_message(text("big"))
    assert (stream.next_action(), stream.pending) == (None, True)  # not while the app is handed its message
    assert stream.next_action() is TURN  # before the next read, or after the next send
    assert stream.next_action() is None
    ended = started(yield_frames=1, yield_bytes=1000)
    ended.client_message(text(""))  # the end of the body: no next read to wait for
    assert ended.next_action() is not None  # BODY_ENDED
    assert ended.next_action() in (TURN, TURN_AND_WATCH)  # at once


def test_a_turn_that_came_by_itself_starts_the_budget_over() -> None:
    stream = started(yield_frames=2, yield_bytes=1000)
    stream.response.single_frame(body(b"out\n"))
    stream.loop_turned()  # the stream suspended on its own
    stream.response.single_frame(body(b"out\n"))
    assert (stream.turn_due, stream.budget.spent) == (False, 503)
    stream.response.single_frame(body(b"out\n"))
    assert turn(stream) is TURN_AND_WATCH


# The documented numbers.


def test_the_budget_is_16_frames_in_either_direction() -> None:
    c = started()
    for i in range(DOCUMENTED_FRAMES - 1):
        if i % 2:
            c.client_message(text("m"))
        else:
            c.response.body(body(b"m\n"))
        assert not c.turn_due
    c.client_message(text("m"))
    assert c.turn_due
    assert turn(c) is TURN  # the app read during that budget: no need to watch the socket for it
    assert (c.turn_due, c.budget.spent) == (False, 0)


def test_the_budget_is_256_kib() -> None:
    c = core()
    for _ in range(3):
        c.client_message(text("x" * (64 * 1024)))
        assert not c.turn_due
    c.client_message(text("x" * (64 * 1024)))  # 256 KiB
    assert c.turn_due
    turn(c)
    c.client_message(text("x" * DOCUMENTED_BYTES))  # one message of 256 KiB ends a turn by itself
    assert c.turn_due


def test_a_chunk_of_many_lines_is_charged_frame_by_frame() -> None:
    c = started()
    frames = c.response.body(body(b"line\n" * 100))
    assert len(frames) == 100
    assert not c.turn_due  # charged as the shell sends them
    due = [charge(c, frame) for frame in frames[:DOCUMENTED_FRAMES]]
    assert due == [None] * (DOCUMENTED_FRAMES - 1) + [
        TURN_AND_WATCH
    ]  # only sent: the shell must watch the socket


def test_an_app_sending_nothing_but_empty_bodies_still_spends_its_budget() -> None:
    c = started()
    for _ in range(DOCUMENTED_FRAMES):
        assert list(c.response.body(body(b""))) == []
    assert c.turn_due
