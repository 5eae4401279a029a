from __future__ import annotations

import pytest

from wsproxy import closecodes
from wsproxy.errors import MessageTooBig, RequestBodyNotAllowed, UpstreamError


@pytest.mark.parametrize(
    ("status", "code", "reason"),
    [
        (200, 1000, ""),
        (204, 1000, ""),
        (301, 4301, "Moved Permanently"),
        (400, 4400, "Bad Request"),
        (401, 4401, "Unauthorized"),
        (404, 4404, "Not Found"),
        (499, 4499, "HTTP 499"),
        (500, 4500, "Internal Server Error"),
        (504, 4504, "Gateway Timeout"),
        (99, 1011, "invalid HTTP status"),
    ],
)
def test_close_for_status(status: int, code: int, reason: str) -> None:
    assert closecodes.close_for_status(status) == (code, reason)


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (MessageTooBig("x"), 1009),
        (UpstreamError("reset"), 1014),
        (RuntimeError("password=hunter2"), 1011),
        (KeyError("k"), 1011),
    ],
)
def test_close_for_exception_keeps_exception_text_out(exc: BaseException, code: int) -> None:
    got_code, reason = closecodes.close_for_exception(exc)
    assert got_code == code
    assert str(exc) not in reason


@pytest.mark.parametrize(
    ("code", "status"), [(4404, 404), (4100, 100), (1000, None), (1011, None), (3000, None)]
)
def test_http_status_from_close(code: int, status: int | None) -> None:
    assert closecodes.http_status_from_close(code) == status


def test_truncate_reason_fits_a_close_frame_without_splitting_utf8() -> None:
    assert closecodes.truncate_reason("short") == "short"
    cut = closecodes.truncate_reason("é" * 100)
    assert len(cut.encode()) <= closecodes.MAX_REASON_BYTES
    assert cut == "é" * 61


# Edges found by mutation testing (docs/testing.md).


@pytest.mark.parametrize(
    ("status", "code", "reason"),
    [
        (299, 1000, ""),
        (300, 4300, "Multiple Choices"),
        (100, 4100, "Continue"),
        (101, 4101, "Switching Protocols"),
        (999, 4999, "HTTP 999"),
        (1000, 1011, "invalid HTTP status"),
    ],
)
def test_close_for_status_at_the_edges(status: int, code: int, reason: str) -> None:
    assert closecodes.close_for_status(status) == (code, reason)


@pytest.mark.parametrize(
    ("exc", "close"),
    [
        (MessageTooBig("x"), (1009, "message too big")),
        (UpstreamError("reset"), (1014, "bad gateway")),
        (RequestBodyNotAllowed("GET"), (1008, "message after end of request body")),
        (ValueError("secret"), (1011, "internal error")),
    ],
)
def test_close_for_exception_reasons(exc: BaseException, close: tuple[int, str]) -> None:
    assert closecodes.close_for_exception(exc) == close


@pytest.mark.parametrize(("code", "status"), [(4999, 999), (5000, None), (4099, None)])
def test_http_status_from_close_at_the_edges(code: int, status: int | None) -> None:
    assert closecodes.http_status_from_close(code) == status


def test_truncate_reason_at_exactly_the_limit() -> None:
    assert closecodes.truncate_reason("r" * 123) == "r" * 123
    assert closecodes.truncate_reason("r" * 124) == "r" * 123
