"""What a stream's core asks its shell to do, and the message helpers both use: the core's vocabulary.

Theory of operation. The core (wsproxy/stream/_core.py) never does I/O; whenever its shell must act,
it sets `pending`, and the shell calls `next_action()` until it returns None. Each action is one of:

- `Close(code, reason)`: send this close frame now; the stream is gone.
- CLIENT_GONE: no frame can go either way any more: wake the app's receive, end the app if it hangs.
- BODY_ENDED: the app has the end of the request body: watch the socket for good (a message now is
  a violation, a disconnect must still be seen).
- TURN: give the event loop a turn now (the turn budget is spent); the budget has started over.
- TURN_AND_WATCH: the same, and the app only sent since the last turn: nothing reads the socket for
  it, and only a read sees a vanished client, so watch the socket (the read-ahead).

The actions come in that order, so a close is sent before anything else and a turn is taken last.
What a message read ahead means is answered with KEEP, VIOLATION or GONE.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from wsproxy._types import Message

# What a message read ahead (while the app is away) means.
KEEP = 0
VIOLATION = 1
GONE = 2


class Close(NamedTuple):
    """Send this close frame now; the stream is gone."""

    code: int
    reason: str = ""


class Act(enum.Enum):
    CLIENT_GONE = "client gone"
    BODY_ENDED = "body ended"
    TURN = "turn"
    TURN_AND_WATCH = "turn and watch"


CLIENT_GONE = Act.CLIENT_GONE
BODY_ENDED = Act.BODY_ENDED
TURN = Act.TURN
TURN_AND_WATCH = Act.TURN_AND_WATCH
Action = Close | Act


def text_of(marker: bytes | None) -> str | None:
    """The text message equal to `marker`; None if none is (no marker, or not UTF-8)."""
    if marker is None:
        return None
    try:
        return marker.decode()
    except UnicodeDecodeError:
        return None


def message_data(message: Message) -> bytes:
    data: bytes | None = message.get("bytes")
    if data is None:
        text: str = message.get("text") or ""
        return text.encode()
    return data


def message_size(message: Message) -> int:
    data = message.get("bytes")
    return len(data if data is not None else message.get("text") or "")
