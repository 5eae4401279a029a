"""Splitting a streamed response body into lines, without I/O: each line becomes one WebSocket frame.

Theory of operation. The splitter keeps the unterminated tail between chunks. The tail never holds
a newline, so only new bytes are ever searched: a long line arriving in many small chunks is scanned
once (linear), not once per chunk (quadratic), as h11's receive buffer does. Most apps send one line
per body chunk, so the splitter answers that case first and without building a list: `one_line()`
(a chunk that is exactly one line) and `text_lines()` (a chunk of several short text lines, what a
joined request echoes back); anything else goes through `feed_views()`, which the others agree with.
"""

from __future__ import annotations

from collections.abc import Sequence

from wsproxy.errors import MessageTooBig

_CR = ord("\r")
# Below this size a line or message is cheaper to copy than to view (a line) or to keep apart (a
# message that could be joined with others): a copy of a few KiB costs less than a memoryview.
SHORT = 4096


class LineSplitter:
    """Feed body chunks, get back complete lines: "\\n"-terminated, a trailing "\\r" stripped, empties skipped."""

    __slots__ = ("_tail", "max_line_size")

    def __init__(self, max_line_size: int) -> None:
        self.max_line_size = max_line_size
        # The unterminated last line so far; never holds b"\n". Made on first use: most streams send
        # whole lines, and memory per open stream counts with thousands of them.
        self._tail: bytearray | None = None

    def feed_views(self, chunk: bytes) -> Sequence[bytes | memoryview]:
        """The lines that `chunk` completes; a chunk that is exactly one long line comes back as a view
        of it, not a copy. Raises MessageTooBig for a line over the limit.

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
            if end >= SHORT:
                return [memoryview(chunk)[:end]]
            return [chunk[:end]] if end else []
        lines = chunk.split(b"\n")
        self._keep(lines.pop())
        self._check(lines)
        return _clean(lines)

    def flush(self) -> list[bytes]:
        """End of body: the unterminated last line, if any."""
        if not self._tail:
            return []
        tail = bytes(self._tail)
        self._tail.clear()
        return _clean([tail])

    def one_line(self, chunk: bytes) -> bytes | memoryview | None:
        """The line, if `chunk` is exactly one line that needs no cleaning (not empty, no CR to strip,
        within the limit) and nothing is buffered; else None (then `feed_views()` decides).

        A short line is a copy, a long one a view of the chunk (decode it before the chunk changes).
        Its tests are the cheap ones (an index, `in`): a method call such as `bytes.find` costs
        several times more on short lines, and this runs for every message.
        """
        end = len(chunk) - 1
        if (
            end <= 0
            or chunk[end] != 10  # b"\n"
            or chunk[end - 1] == _CR  # the general path strips it
            or end > self.max_line_size
            or self._tail
        ):
            return None
        if end < SHORT:
            line = chunk[:end]
            return None if 10 in line else line
        if chunk.find(10, 0, end) >= 0:
            return None
        return memoryview(chunk)[:end]

    def text_lines(self, chunk: bytes) -> list[str] | None:
        """The lines of a chunk of several complete, non-empty UTF-8 lines with no CR, nothing
        buffered and none over the limit; else None (then `feed_views()` decides)."""
        size = len(chunk)
        if not size or chunk[size - 1] != 10 or size > self.max_line_size or 13 in chunk or self._tail:
            return None
        try:
            lines = chunk.decode().split("\n")
        except UnicodeDecodeError:
            return None
        lines.pop()  # the empty string after the last newline
        if "" in lines:
            return None  # empty lines are skipped: the general path knows how
        return lines

    def _feed_after_tail(self, chunk: bytes) -> list[bytes]:
        newline = chunk.find(b"\n")
        if newline < 0:
            self._keep(chunk)
            return []
        tail = self._tail
        assert tail is not None  # (called only with a tail)
        tail += chunk[:newline]
        first = bytes(tail)
        tail.clear()
        lines = chunk[newline + 1 :].split(b"\n")
        self._keep(lines.pop())
        lines.insert(0, first)
        self._check(lines)
        return _clean(lines)

    def _keep(self, partial: bytes) -> None:
        tail = self._tail
        if tail is None:
            if not partial:
                return
            tail = self._tail = bytearray()
        tail += partial
        if len(tail) > self.max_line_size:
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
