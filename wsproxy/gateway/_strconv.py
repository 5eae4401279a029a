"""Go's number and duration syntax as grpc-gateway's runtime parses URL values: strconv.ParseInt with
base 0 (runtime/convert.go's path integers) and time.ParseDuration (runtime.Duration's fallback).

Pure functions; a value Go refuses raises FieldError, which the gateway answers with 400.
"""

from __future__ import annotations

import re


class FieldError(ValueError):
    """A request field cannot be set from the given value (answered with INVALID_ARGUMENT)."""


_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_NANOS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9}
_DURATION_NANOS |= {"m": 60 * 10**9, "h": 3600 * 10**9}


_BASE_PREFIXES = {"0b": 2, "0o": 8, "0x": 16}


def go_integer_base0(text: str, *, low: int, high: int) -> int:
    """strconv.ParseInt(s, 0, n) (ParseUint when `low` is 0): a sign (signed only), then decimal,
    `0x`/`0o`/`0b` or a leading `0` (octal), with `_` allowed between digits; Go's syntax errors."""
    body, sign = text, 1
    if low < 0 and body[:1] in ("+", "-") and body:
        sign, body = (-1 if body[0] == "-" else 1), body[1:]
    base, digits = 10, body
    if body[:1] == "0":
        prefix = body[:2].lower()
        base, digits = (
            (_BASE_PREFIXES[prefix], body[2:])
            if len(body) >= 3 and prefix in _BASE_PREFIXES
            else (8, body[1:])
        )
    if not body or ("_" in digits and not _underscore_ok(body)):
        raise FieldError(f"{text!r} is not an integer")
    value = 0
    for char in digits.replace("_", ""):
        digit = _DIGITS.get(char.lower(), 99)
        if digit >= base:
            raise FieldError(f"{text!r} is not an integer")
        value = value * base + digit
    value *= sign
    if not low <= value <= high:
        raise FieldError(f"{text!r} is out of range [{low}, {high}]")
    return value


_DIGITS = {char: int(char, 36) for char in "0123456789abcdefghijklmnopqrstuvwxyz"}


def _underscore_ok(body: str) -> bool:
    """strconv's underscoreOK: each `_` sits between two digits (a base prefix counts as one)."""
    saw, index = "^", 0
    hexadecimal = False
    if len(body) >= 2 and body[0] == "0" and body[1].lower() in "box":
        index, saw, hexadecimal = 2, "0", body[1].lower() == "x"
    for char in body[index:]:
        if "0" <= char <= "9" or (hexadecimal and "a" <= char.lower() <= "f"):
            saw = "0"
        elif char == "_":
            if saw != "0":
                return False
            saw = "_"
        else:
            if saw == "_":
                return False
            saw = "!"
    return saw != "_"


def go_duration_nanos(text: str) -> int:
    """time.ParseDuration: `1h30m`, `100ms`, `-1.5s`, `0`; at most 2^63-1 nanoseconds."""
    sign, rest = (-1, text[1:]) if text.startswith("-") else (1, text.removeprefix("+"))
    if rest == "0":
        return 0
    total, position = 0, 0
    while position < len(rest):
        found = _DURATION_PART.match(rest, position)
        if found is None or found.group(1) in ("", "."):
            raise FieldError(f"{text!r} is not a duration (e.g. 1.5s, 100ms, 1h30m)")
        whole, _, fraction = found.group(1).partition(".")
        unit = _DURATION_NANOS[found.group(2)]
        total += int(whole or "0") * unit + (int(fraction) * unit // 10 ** len(fraction) if fraction else 0)
        position = found.end()
    if not rest or total > 2**63 - 1:
        raise FieldError(f"{text!r} is not a duration within ±292 years")
    return sign * total
