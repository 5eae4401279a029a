"""The app's response as frames (wsproxy/stream/_response.py): what the several-lines fast path leaves alone.

`several_lines()` answers only a middle body event of a started, unfinished response; everything
else goes to `body()`, which raises for misuse and closes on the last event. Each row is an event
the fast path must refuse, next to what `body()` does with it. `make mutate` runs these rows
(docs/testing.md).
"""

from __future__ import annotations

import pytest

from wsproxy._types import Message
from wsproxy.stream._actions import Close
from wsproxy.stream._core import StreamCore
from wsproxy.stream._records import StreamSettings


def stream(*, started: bool = True, complete: bool = False) -> StreamCore:
    core = StreamCore(StreamSettings())
    if started:
        core.response.metadata({"type": "http.response.start", "status": 200})
    if complete:
        core.response.body({"type": "http.response.body", "body": b"", "more_body": False})
    return core


LINES: Message = {"type": "http.response.body", "body": b"a\nb\n", "more_body": True}


@pytest.mark.parametrize(("started", "complete"), [(False, False), (True, True)])
def test_several_lines_refuses_a_body_before_the_start_or_after_the_end(
    started: bool, complete: bool
) -> None:
    core = stream(started=started, complete=complete)
    assert core.response.several_lines(LINES) is None
    with pytest.raises(RuntimeError, match=r"before \"http\.response\.start\" or after the end$"):
        core.response.body(LINES)
    assert core.stats.messages_out == 0


def test_several_lines_leaves_the_last_event_without_more_body_to_close() -> None:
    core = stream()
    last: Message = {"type": "http.response.body", "body": b"a\nb\n"}  # more_body absent: False
    assert core.response.several_lines(last) is None
    assert [frame["text"] for frame in core.response.body(last)] == ["a", "b"]
    assert core.take_close() == Close(1000)


def test_several_lines_takes_a_body_event_without_a_body_as_empty() -> None:
    core = stream()
    empty: Message = {"type": "http.response.body", "more_body": True}
    assert core.response.several_lines(empty) is None
    assert core.response.body(empty) == []
    assert (core.stats.messages_out, core.take_close()) == (0, None)


def test_a_long_line_after_an_empty_one_is_not_taken_as_one_line() -> None:
    # A leading newline makes an empty line (skipped) before the long one: never one frame holding both.
    chunk = b"\n" + b"y" * 4096 + b"\n"
    core = stream()
    assert (
        core.response.single_frame({"type": "http.response.body", "body": chunk, "more_body": True}) is None
    )
    frames = core.response.body({"type": "http.response.body", "body": chunk, "more_body": True})
    assert frames == [{"type": "websocket.send", "text": "y" * 4096}]
