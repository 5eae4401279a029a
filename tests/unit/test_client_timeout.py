"""The Python client's timeout in gRPC's wire format, and on the URL (wsproxy/client/_response.py)."""

from __future__ import annotations

import pytest

from wsproxy.client._response import DEADLINE_GRACE_SECONDS, grpc_timeout
from wsproxy.client._single import with_timeout


@pytest.mark.parametrize(
    ("seconds", "wire"),
    [
        (1.5, "1500m"),
        (0.0001, "1m"),  # rounded up to whole milliseconds: never a deadline of 0 (none)
        (30, "30000m"),
        (99_999.999, "99999999m"),  # 8 digits at most
        (100_000, "100000S"),
        (99_999_999 * 60, "99999999M"),
        (99_999_999 * 3600, "99999999H"),
    ],
)
def test_grpc_timeout(seconds: float, wire: str) -> None:
    assert grpc_timeout(seconds) == wire


@pytest.mark.parametrize("bad", [0, -1, float("nan"), 1e20])
def test_a_timeout_that_is_no_deadline_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="timeout"):
        grpc_timeout(bad)


def test_the_timeout_goes_on_the_url_replacing_one_there() -> None:
    assert with_timeout("ws://h/v1/x?a=1&grpc-timeout=9S", 2) == "ws://h/v1/x?a=1&grpc-timeout=2000m"
    assert with_timeout("/v1/x", 0.25) == "/v1/x?grpc-timeout=250m"
    assert with_timeout("ws://h/v1/x?a=1", None) == "ws://h/v1/x?a=1"


def test_the_grace_is_one_second() -> None:
    assert DEADLINE_GRACE_SECONDS == 1.0
