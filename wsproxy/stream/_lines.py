"""Splitting a streamed response body into lines, without I/O.

Each line becomes one WebSocket frame. The splitter keeps the unterminated tail between chunks. The
tail never holds a newline, so only new bytes are ever searched: a long line arriving in many small
chunks is scanned once (linear), not once per chunk (quadratic), as h11's receive buffer does.
"""

from __future__ import annotations

from collections.abc import Sequence

from wsproxy.errors import MessageTooBig

_CR = ord("\r")
_VIEW_MIN_SIZE = 4096  # below this, copying a line is cheaper than making a view of it


class LineSplitter:
    """Feed body chunks, get back complete lines: "\\n"-terminated, a trailing "\\r" stripped, empties skipped."""

    __slots__ = ("_tail", "max_line_size")

    def __init__(self, max_line_size: int) -> None:
        self.max_line_size = max_line_size
        self._tail = bytearray()  # the unterminated last line so far; never holds b"\n"

    def feed(self, chunk: bytes) -> list[bytes]:
        """Return the lines that `chunk` completes. Raises MessageTooBig for a line over the limit."""
        return [line if isinstance(line, bytes) else bytes(line) for line in self.feed_views(chunk)]

    def feed_views(self, chunk: bytes) -> Sequence[bytes | memoryview]:
        """Like feed(), but a chunk that is exactly one line comes back as a view of it, not a copy.

        For callers that decode the line at once (before the chunk's owner may change it): with
        large messages every copy counts.
        """
        if self._tail:
            return self._feed_after_tail(chunk)
        end = len(chunk) - 1
        if end >= 0 and chunk.find(10) == end:  # 10 is b"\n"; an int skips the substring search setup
            # The common case, one line per body chunk: a single memchr scan (bytes.split walks the
            # chunk byte by byte, which dominated the cost of 64 KiB lines), and no copy of a long line.
            if end > self.max_line_size:
                raise MessageTooBig(f"response line over {self.max_line_size} bytes")
            if end and chunk[end - 1] == _CR:
                end -= 1
            if end >= _VIEW_MIN_SIZE:
                return [memoryview(chunk)[:end]]
            return [chunk[:end]] if end else []
        lines = chunk.split(b"\n")
        self._keep(lines.pop())
        self._check(lines)
        return _clean(lines)

    def flush(self) -> list[bytes]:
        """End of body: the unterminated last line, if any."""
        tail = bytes(self._tail)
        self._tail.clear()
        return _clean([tail])

    @property
    def buffered(self) -> int:
        return len(self._tail)

    def single_line(self, chunk: bytes) -> bytes | None:
        """The line, if `chunk` is exactly one short clean line and nothing is buffered; else None.

        The common case of a message-per-chunk stream, answered without building a list. Callers
        fall back to feed_views() on None.
        """
        end = len(chunk) - 1
        if (
            0 < end < _VIEW_MIN_SIZE
            and end <= self.max_line_size
            and not self._tail
            and chunk.find(10) == end
            and chunk[end - 1] != _CR
        ):
            return chunk[:end]
        return None

    def _feed_after_tail(self, chunk: bytes) -> list[bytes]:
        newline = chunk.find(b"\n")
        if newline < 0:
            self._keep(chunk)
            return []
        self._tail += chunk[:newline]
        first = bytes(self._tail)
        self._tail.clear()
        lines = chunk[newline + 1 :].split(b"\n")
        self._keep(lines.pop())
        lines.insert(0, first)
        self._check(lines)
        return _clean(lines)

    def _keep(self, partial: bytes) -> None:
        self._tail += partial
        if len(self._tail) > self.max_line_size:
            raise MessageTooBig(f"response line over {self.max_line_size} bytes")

    def _check(self, lines: list[bytes]) -> None:
        limit = self.max_line_size
        if any(len(line) > limit for line in lines):
            raise MessageTooBig(f"response line over {limit} bytes")


def _clean(lines: list[bytes]) -> list[bytes]:
    out = []
    for line in lines:
        if line.endswith(b"\r"):
            line = line[:-1]
        if line:
            out.append(line)
    return out
