"""Capturing log lines in tests: every line of the named loggers, at the levels a test sets."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


class TextLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextlib.contextmanager
def logged(levels: dict[str, int]) -> Iterator[TextLog]:
    handler = TextLog()
    loggers = {logging.getLogger(name): level for name, level in levels.items()}
    before = {logger: logger.level for logger in loggers}
    for logger, level in loggers.items():
        logger.addHandler(handler)
        logger.setLevel(level)
    try:
        yield handler
    finally:
        for logger, level in before.items():
            logger.removeHandler(handler)
            logger.setLevel(level)
