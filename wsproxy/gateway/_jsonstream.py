"""Split a byte stream into top-level JSON values (newline-delimited or simply concatenated).

A sans-I/O scanner: it only tracks string/escape state and bracket depth, remembers where it
stopped, and leaves parsing to `json.loads`, so a long value arriving in many chunks is scanned once.
"""

from __future__ import annotations

_WHITESPACE = b" \t\r\n"
_OPEN = b"{["
_CLOSE = b"}]"
_QUOTE = ord('"')
_BACKSLASH = ord("\\")


class ValueTooLarge(ValueError):
    """One JSON value is longer than the limit."""


class JSONValueSplitter:
    """Feed bytes, get back complete top-level JSON values (as bytes, not yet parsed)."""

    def __init__(self, *, max_value_size: int) -> None:
        self._max = max_value_size
        self._buffer = bytearray()
        self._scanned = 0  # bytes of _buffer already scanned
        self._start = -1  # start of the value being scanned, -1 between values
        self._depth = 0
        self._in_string = False
        self._escaped = False

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        buffer = self._buffer
        bounds: list[tuple[int, int]] = []
        for index in range(self._scanned, len(buffer)):
            byte = buffer[index]
            if self._start < 0:
                if byte not in _WHITESPACE:
                    self._start = index
                    self._in_string = byte == _QUOTE
                    self._depth = 1 if byte in _OPEN else 0
            elif self._in_string:
                if self._escaped:
                    self._escaped = False
                elif byte == _BACKSLASH:
                    self._escaped = True
                elif byte == _QUOTE:
                    self._in_string = False
                    if self._depth == 0:
                        bounds.append((self._start, index + 1))
                        self._start = -1
            elif byte == _QUOTE:
                self._in_string = True
            elif byte in _OPEN:
                self._depth += 1
            elif byte in _CLOSE:
                self._depth -= 1
                if self._depth == 0:
                    bounds.append((self._start, index + 1))
                    self._start = -1
            elif self._depth == 0 and byte in _WHITESPACE:
                bounds.append((self._start, index))  # the end of a bare number, true, false or null
                self._start = -1
        values = [bytes(buffer[start:end]) for start, end in bounds]
        # Drop what is consumed; keep the unfinished value and remember how far it was scanned.
        keep_from = self._start if self._start >= 0 else len(buffer)
        del buffer[:keep_from]
        self._scanned = len(buffer)
        if self._start >= 0:
            self._start = 0
            if len(buffer) > self._max:
                raise ValueTooLarge(f"a JSON value is larger than {self._max} bytes")
        for value in values:
            if len(value) > self._max:
                raise ValueTooLarge(f"a JSON value is larger than {self._max} bytes")
        return values

    def close(self) -> bytes | None:
        """The end of the stream: the last bare scalar, or an unfinished value (which will not parse)."""
        if self._start < 0:
            return None
        value = bytes(self._buffer[self._start :])
        self._buffer.clear()
        self._start = -1
        self._scanned = 0
        return value
