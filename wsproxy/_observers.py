"""Stream observers: what is told when a stream starts and ends (metrics, the access log, yours).

Theory of operation. An observer gets the stream's stats record twice: at accept and at the end.
The record is live (its counts grow while the stream runs), so an observer that wants figures
during a long stream reads them itself, on its own clock; nothing is called per message. An observer
that raises is logged and otherwise ignored: watching a stream must never break it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

logger = logging.getLogger("wsproxy")


class StreamObserver(Protocol):
    def stream_started(self, record: Any) -> None: ...
    def stream_ended(self, record: Any) -> None: ...


class _Observers:
    """Several observers as one; each one's failure kept to itself."""

    __slots__ = ("observers",)

    def __init__(self, observers: Sequence[StreamObserver]) -> None:
        self.observers = tuple(observers)

    def stream_started(self, record: Any) -> None:
        for observer in self.observers:
            try:
                observer.stream_started(record)
            except Exception:
                logger.exception("stream observer %r failed at stream start", observer)

    def stream_ended(self, record: Any) -> None:
        for observer in self.observers:
            try:
                observer.stream_ended(record)
            except Exception:
                logger.exception("stream observer %r failed at stream end", observer)


def observers_of(*observers: StreamObserver | None) -> StreamObserver | None:
    """One observer for all those given (None entries skipped), or None when there are none."""
    present = [observer for observer in observers if observer is not None]
    return _Observers(present) if present else None
