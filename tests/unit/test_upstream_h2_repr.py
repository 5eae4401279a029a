"""wsproxy.upstream._h2 replaces hyperframe's `_raw_data_repr` process-wide: its output must stay the library's."""

from __future__ import annotations

import binascii

import hyperframe.frame
import pytest

from wsproxy.upstream import _h2


def library_raw_data_repr(data: bytes | None) -> str:
    """hyperframe 6's own `_raw_data_repr` (frame.py), as the library writes it."""
    if not data:
        return "None"
    r = binascii.hexlify(data).decode("ascii")
    if len(r) > 20:
        r = r[:20] + "..."
    return "<hex:" + r + ">"


@pytest.mark.parametrize(
    "data", [None, b"", b"\x00", b"x" * 9, b"x" * 10, b"x" * 11, bytes(range(256)), b"\xff" * 65536]
)
def test_the_patched_repr_gives_the_librarys_output(data: bytes | None) -> None:
    assert _h2._raw_data_repr(data) == library_raw_data_repr(data)


def test_the_patch_is_in_place_and_a_data_frames_repr_is_unchanged() -> None:
    assert hyperframe.frame._raw_data_repr is _h2._raw_data_repr
    frame = hyperframe.frame.DataFrame(1, data=b"a" * 100)
    assert "<hex:61616161616161616161...>" in repr(frame)
