"""The records a stream shares with the rest of wsproxy: its settings (in) and its stats (out).

Theory of operation. `StreamSettings` is computed once per middleware from its options and shared by
all its streams. `StreamStats` is one stream's record for logs, metrics and access logs: the stream
core counts into it in place while the stream runs (so metrics can read an open stream's counts),
and the same object goes to the `on_stream_start` and `on_stream_end` observers. Plain records: no
decision and no I/O here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from wsproxy._options import ProxyOptions
from wsproxy.stream._budget import YIELD_EVERY_BYTES, YIELD_EVERY_FRAMES

logger = logging.getLogger("wsproxy")

_DEFAULTS = ProxyOptions()  # a stream's defaults are the options' defaults


@dataclass(slots=True, eq=False)
class StreamStats:
    """The record of one stream, for logs, metrics and access logs: live, counted in place.

    The same object is passed to `on_stream_start` (after the accept) and `on_stream_end` (when the
    stream has ended, cancelled or not); read it, never write it. Messages and bytes are counted as
    they pass (in: client -> app, the half-close not counted; out: app -> client, one per line;
    bytes are payload sizes). `close_code` is the code of the close frame we sent, the client's own
    close code, or None when the connection was lost without one. `duration` is set at the end;
    `started` is `time.monotonic()` at the start.
    """

    method: str = ""
    path: str = ""
    client: str | None = None
    close_code: int | None = None
    messages_in: int = 0
    bytes_in: int = 0
    messages_out: int = 0
    bytes_out: int = 0
    duration: float = 0.0
    started: float = field(default_factory=time.monotonic)


StreamObserver = Callable[[StreamStats], None]


def notify(observer: StreamObserver | None, stats: StreamStats) -> None:
    """Hand the record to an observer; an observer that raises is logged and harms nothing."""
    if observer is None:
        return
    try:
        observer(stats)
    except Exception:
        logger.exception("stream observer %r raised for %s", observer, stats.path)


@dataclass(frozen=True)
class StreamSettings:
    """What every stream of one middleware shares, computed once from its options."""

    half_close: bytes | None = _DEFAULTS.half_close_bytes()
    max_message_size: int = _DEFAULTS.max_message_size
    max_line_size: int = _DEFAULTS.max_line_size
    idle_timeout: float | None = _DEFAULTS.idle_timeout
    yield_frames: int = YIELD_EVERY_FRAMES
    yield_bytes: int = YIELD_EVERY_BYTES
    on_stream_start: StreamObserver | None = None
    on_stream_end: StreamObserver | None = None

    def __post_init__(self) -> None:
        for name in ("on_stream_start", "on_stream_end"):
            hook = getattr(self, name)
            if hook is not None and not callable(hook):
                raise TypeError(f"{name} must be callable: (StreamStats) -> None")

    @classmethod
    def from_options(
        cls,
        options: ProxyOptions,
        *,
        on_stream_start: StreamObserver | None = None,
        on_stream_end: StreamObserver | None = None,
    ) -> StreamSettings:
        return cls(
            half_close=options.half_close_bytes(),
            max_message_size=options.max_message_size,
            max_line_size=options.max_line_size,
            idle_timeout=options.idle_timeout,
            on_stream_start=on_stream_start,
            on_stream_end=on_stream_end,
        )
