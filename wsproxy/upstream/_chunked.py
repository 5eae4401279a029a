"""A chunked response body (RFC 9112 section 7.1), decoded into whole chunks. Pure, no I/O.

h11 parses the response head; a chunked body is decoded here. h11 hands out a chunk as one event
per piece of it that a read delivered, at a cost per event that was the largest part of a 64 KiB
message's cost through an HTTP/1.1 upstream, and a line cut into pieces takes the line splitter's
slow path. Servers write a chunk per flush (Go's net/http a chunk per `Write`, a gateway a line
per message), so `feed` returns the data of every chunk it completed, and holds back the start of
a chunk still arriving, up to `max_held` bytes: a message up to that size goes on whole. Small
chunks (under `SMALL`) that arrived together are joined, up to `JOIN_UP_TO` bytes: one event for
many lines. A larger one stays a piece of its own, since the line splitter takes a chunk that is
one line in one memchr scan, but splits a chunk of several lines byte by byte.

Strict where h11 is: a chunk size is 1 to 16 hex digits followed by optional extensions and CRLF,
chunk data is followed by CRLF, and the size line, the trailer section and the held data are
bounded. Trailers are read and dropped (the proxy does not forward them).
"""

from __future__ import annotations

import re

from wsproxy.upstream._errors import MalformedResponse

MAX_HELD = 1024 * 1024  # the most of one chunk held back before it is passed on in pieces
SMALL = 16 * 1024  # chunks below this size that arrived together are joined ...
JOIN_UP_TO = 64 * 1024  # ... into pieces of up to this size
MAX_SIZE_LINE = 4096  # a chunk-size line with its extensions
MAX_TRAILERS = 64 * 1024

_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_SIZE, _DATA, _DATA_END, _TRAILERS, _DONE = range(5)


class ChunkedBody:
    """Feed it the bytes that follow the response head; it returns body data and says when it ended."""

    def __init__(self, *, max_held: int = MAX_HELD) -> None:
        self.max_held = max_held
        self._state = _SIZE
        self._pending = b""  # an unfinished size line, data CRLF or trailer section
        self._left = 0  # data bytes of the current chunk still to come
        self._partial: list[bytes] = []  # the current chunk's data so far, held back
        self._partial_size = 0
        self._trailers = 0  # bytes of the trailer section so far

    @property
    def done(self) -> bool:
        """The last chunk and the trailer section have arrived: the body is complete."""
        return self._state == _DONE

    def feed(self, data: bytes) -> list[bytes]:
        """The data of every chunk that `data` completes, in order, small ones joined (see above).

        Raises MalformedResponse for bytes that are not a chunked body, or that follow its end.
        """
        if self._state == _DONE:
            if data:
                raise MalformedResponse("bytes after the end of a chunked body")
            return []
        if self._pending:
            data = self._pending + data
            self._pending = b""
        out: list[bytes] = []
        pos, end = 0, len(data)
        while pos < end:
            state = self._state
            if state == _DATA:
                take = min(self._left, end - pos)
                piece = data[pos : pos + take] if take < end or pos else data
                pos += take
                self._left -= take
                if self._left:
                    self._partial.append(piece)
                    self._partial_size += take
                    break
                if self._partial:
                    self._partial.append(piece)
                    piece = b"".join(self._partial)
                    self._partial.clear()
                    self._partial_size = 0
                out.append(piece)
                self._state = _DATA_END
            elif state == _DATA_END:
                if end - pos < 2:
                    self._pending = data[pos:]
                    break
                if data[pos : pos + 2] != b"\r\n":
                    raise MalformedResponse("chunk data not followed by CRLF")
                pos += 2
                self._state = _SIZE
            elif state == _SIZE:
                newline = data.find(b"\r\n", pos, pos + MAX_SIZE_LINE)
                if newline < 0:
                    if end - pos >= MAX_SIZE_LINE:
                        raise MalformedResponse("chunk size line too long")
                    self._pending = data[pos:]
                    break
                size = data[pos:newline].split(b";", 1)[0].rstrip(b" \t")
                if not _HEX.fullmatch(size):
                    raise MalformedResponse(f"bad chunk size {size[:20]!r}")
                pos = newline + 2
                self._left = int(size, 16)
                self._state = _DATA if self._left else _TRAILERS
            else:  # _TRAILERS: header lines, then an empty line
                newline = data.find(b"\r\n", pos)
                if newline < 0:
                    if self._trailers + end - pos > MAX_TRAILERS:
                        raise MalformedResponse("trailer section too long")
                    self._pending = data[pos:]
                    break
                self._trailers += newline + 2 - pos
                if self._trailers > MAX_TRAILERS:
                    raise MalformedResponse("trailer section too long")
                empty = newline == pos
                pos = newline + 2
                if empty:
                    self._state = _DONE
                    if pos < end:
                        raise MalformedResponse("bytes after the end of a chunked body")
        if self._partial_size >= self.max_held:
            out.append(b"".join(self._partial))
            self._partial.clear()
            self._partial_size = 0
        return _joined_small(out) if len(out) > 1 else out


def _joined_small(pieces: list[bytes]) -> list[bytes]:
    """Runs of small pieces joined up to JOIN_UP_TO bytes; every other piece alone."""
    out: list[bytes] = []
    run: list[bytes] = []
    size = 0
    for piece in pieces:
        small = len(piece) < SMALL
        if run and (not small or size + len(piece) > JOIN_UP_TO):
            out.append(run[0] if len(run) == 1 else b"".join(run))
            run, size = [], 0
        if small:
            run.append(piece)
            size += len(piece)
        else:
            out.append(piece)
    if run:
        out.append(run[0] if len(run) == 1 else b"".join(run))
    return out
