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


def library_data_body_repr(frame: hyperframe.frame.DataFrame) -> str:
    """hyperframe 6's fallback `Frame._body_repr`, which DataFrame inherits: the serialized body's repr."""
    return library_raw_data_repr(hyperframe.frame.DataFrame.serialize_body(frame))


@pytest.mark.parametrize("data", [b"", b"a", b"x" * 10, b"x" * 11, bytes(range(200)), b"\xff" * 65537])
@pytest.mark.parametrize("pad_length", [None, 0, 1, 5, 20])
def test_a_data_frames_body_repr_is_the_librarys(data: bytes, pad_length: int | None) -> None:
    frame = hyperframe.frame.DataFrame(3, data=data)
    if pad_length is not None:
        frame.flags.add("PADDED")
        frame.pad_length = pad_length
    assert hyperframe.frame.DataFrame._body_repr is _h2._data_frame_body_repr
    assert frame._body_repr() == library_data_body_repr(frame)
