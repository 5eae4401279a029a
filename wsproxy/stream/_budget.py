"""The turn budget: how much work anything that pumps messages may do before the event loop gets a turn.

Theory of operation. The servers' `send` and `receive` do not suspend while their buffers allow, so a
pump whose data flows freely would never let the event loop run anything else: no other client, no
signal, not even the notice that its own client reset the connection. Every pump in wsproxy (a
stream, a mux session's read loop and writes, the gateway's pumps, the upstream app's pumps) charges
each message to a `TurnBudget` and gives the loop a turn when it is spent. One rule for all: each
message costs its size plus an equal share of the byte limit, so a turn ends after `frames` messages
or `nbytes` bytes, whichever comes first (plus the message that crossed it). Pumps differ only in how
many messages they may pass, and in whether a turn that came by itself (a receive that waited)
starts their budget over: the stream sees those turns (wsproxy/stream/_shell.py), the others do not,
so their every turn is a forced one and their counts are larger (docs/reliability.md).
"""

from __future__ import annotations

# A stream: at most this many frames, or this many bytes, counting both directions, between two
# turns of the event loop (docs/reliability.md; why 16, docs/performance.md).
YIELD_EVERY_FRAMES = 16
YIELD_EVERY_BYTES = 256 * 1024
# Pumps that cannot see a turn that comes by itself, so that all their turns are forced ones.
GATEWAY_PUMP_MESSAGES = 64  # the gateway's request and response pumps (docs/gateway.md)
PUMP_MESSAGES = 32  # the upstream app's pumps (docs/upstream.md), a mux session's reads and writes


class TurnBudget:
    """Charge each message; `charge()` says when the loop is owed a turn.

    `charge()` keeps saying so until `restart()` (for a pump that takes its turn later);
    `take()` restarts at once (for a pump that takes its turn right away).
    """

    __slots__ = ("frame_cost", "limit", "spent")

    def __init__(self, frames: int = YIELD_EVERY_FRAMES, nbytes: int = YIELD_EVERY_BYTES) -> None:
        self.limit = nbytes
        self.frame_cost = nbytes // frames
        self.spent = 0

    def charge(self, size: int) -> bool:
        """One message of `size` bytes; True once the budget is spent (until `restart()`)."""
        self.spent += size + self.frame_cost
        return self.spent >= self.limit

    def take(self, size: int) -> bool:
        """One message of `size` bytes; True when the loop must get a turn now (the budget starts over)."""
        self.spent += size + self.frame_cost
        if self.spent >= self.limit:
            self.spent = 0
            return True
        return False

    def restart(self) -> None:
        """The loop had a turn: the budget starts over."""
        self.spent = 0
