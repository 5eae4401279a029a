"""Stream observers: functions told of each stream when it ends (the access log, yours).

An observer gets the stream's stats record once, at the end. Several run one after the other, each
one's failure logged and kept to itself: watching a stream must never break it, nor another watcher.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("wsproxy")

Observer = Callable[[Any], None]


def chain(*observers: Observer | None) -> Observer | None:
    """One observer calling each of `observers` (None entries skipped); None when there are none."""
    present = tuple(observer for observer in observers if observer is not None)
    if len(present) <= 1:
        return present[0] if present else None

    def each(record: Any) -> None:
        for observer in present:
            try:
                observer(record)
            except Exception:
                logger.exception("stream observer %r raised", observer)

    return each
