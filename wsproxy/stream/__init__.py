"""One WebSocket as one streaming HTTP request: a sans-I/O core, line splitting, the turn budget, the I/O shell.

Each module has one job. `_core` decides (what a message means, when the body ends, which close
code, when the loop is owed a turn): events in, actions out, no I/O. `_lines` splits the response
body into lines, one frame each. `_budget` is the turn budget every pump in wsproxy charges, and its
numbers. `_actions` is the core's vocabulary: the actions it asks of the shell. `_response` is the core's
app -> client half: the app's response as frames. `_records` holds the stream's settings (in) and its
stats record (out). `_shell` owns the socket, the tasks and the timers and carries out the core's
actions. `_apptask` runs the app in the server's task and cancels it after a grace once its client
is gone. `_nowait` runs the
server's receive by hand to take what it already holds without waiting (and says what that assumes).
`_ticker` is the one-second timer every open stream of a loop shares.
"""

from wsproxy.stream._apptask import DISCONNECT_GRACE_SECONDS
from wsproxy.stream._budget import YIELD_EVERY_BYTES, YIELD_EVERY_FRAMES, TurnBudget
from wsproxy.stream._core import READ_AHEAD_BYTES, TICK_SECONDS
from wsproxy.stream._records import StreamObserver, StreamSettings, StreamStats
from wsproxy.stream._shell import Stream, run_stream

__all__ = [
    "DISCONNECT_GRACE_SECONDS",
    "READ_AHEAD_BYTES",
    "TICK_SECONDS",
    "YIELD_EVERY_BYTES",
    "YIELD_EVERY_FRAMES",
    "Stream",
    "StreamObserver",
    "StreamSettings",
    "StreamStats",
    "TurnBudget",
    "run_stream",
]
