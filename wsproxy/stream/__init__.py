"""One WebSocket as one streaming HTTP request: the sans-I/O core, line splitting and the I/O shell.

`_core` decides (what a message means, when the body ends, which close code, when the loop is owed a
turn); `_lines` splits the response body into lines; `_shell` owns the socket, the tasks and the
timers and runs the app; `_ticker` is the one-second timer every open stream shares.
"""

from wsproxy.stream._core import (
    READ_AHEAD_BYTES,
    TICK_SECONDS,
    YIELD_EVERY_BYTES,
    YIELD_EVERY_FRAMES,
    StreamObserver,
    StreamSettings,
    StreamStats,
)
from wsproxy.stream._shell import DISCONNECT_GRACE_SECONDS, Stream, run_stream

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
    "run_stream",
]
