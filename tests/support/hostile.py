"""What both tiers of the hostile-input tests share: the secret token, a log capture that counts tracebacks,
and an echo app that records what reached it."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from wsproxy._types import Receive, Scope, Send

SECRET = "SeCrEt-t0ken.value"
TOKEN68 = re.compile(rb"^Bearer [A-Za-z0-9\-._~+/]+=*$")


class TextLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.tracebacks = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))
        # A traceback at WARNING or above is what an operator would see as a crash.
        self.tracebacks += record.exc_info is not None and record.levelno >= logging.WARNING


@contextlib.contextmanager
def logged(name: str) -> Iterator[TextLog]:
    logger = logging.getLogger(name)
    handler, level = TextLog(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@dataclass
class Seen:
    scopes: list[Scope] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)


def echo_app(seen: Seen) -> Callable[[Scope, Receive, Send], Any]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.scopes.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            seen.bodies.append(body)
            if body:
                await send({"type": "http.response.body", "body": body, "more_body": True})
            if not message.get("more_body", False):
                break
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app
