"""The chunked body decoder: whole chunks out, however the bytes are cut; malformed bodies refused."""

from __future__ import annotations

import pytest

from wsproxy.upstream._chunked import MAX_HELD, MAX_SIZE_LINE, MAX_TRAILERS, ChunkedBody
from wsproxy.upstream._errors import MalformedResponse

BODY = b"5\r\nhello\r\n1;name=value\r\n\n\r\nA \r\n0123456789\r\n0\r\nx-trailer: 1\r\n\r\n"


def fed_in_pieces(body: bytes, cut: int, *, max_held: int = MAX_HELD) -> list[bytes]:
    decoder = ChunkedBody(max_held=max_held)
    out = []
    for start in range(0, len(body), cut):
        assert not decoder.done
        out += decoder.feed(body[start : start + cut])
    assert decoder.done
    return out


@pytest.mark.parametrize("cut", [1, 2, 3, 4, 7, 16, len(BODY)])
def test_the_data_comes_out_whole_however_the_bytes_are_cut(cut: int) -> None:
    out = fed_in_pieces(BODY, cut)
    assert b"".join(out) == b"hello\n0123456789"
    # No chunk is handed out in pieces: every piece ends where a chunk ends.
    ends = {5, 6, 16}
    position = 0
    for piece in out:
        position += len(piece)
        assert position in ends


def test_chunks_that_arrive_together_come_out_as_one_piece() -> None:
    assert fed_in_pieces(BODY, len(BODY)) == [b"hello\n0123456789"]


def test_large_chunks_that_arrive_together_stay_apart_and_small_ones_are_joined_up_to_64_kib() -> None:
    # The line splitter takes one long line per piece in one scan, but splits several byte by byte.
    big = b"b" * 16 * 1024
    small = b"s" * 100
    body = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (small, small, big, big, small))
    assert ChunkedBody().feed(body) == [small + small, big, big, small]
    many = b"".join(b"%x\r\n%s\r\n" % (len(small), small) for _ in range(700))  # 70,000 bytes of data
    pieces = ChunkedBody().feed(many)
    assert [len(piece) for piece in pieces] == [655 * 100, 45 * 100]
    assert max(len(piece) for piece in pieces) <= 64 * 1024


def test_a_chunk_over_max_held_goes_on_in_pieces() -> None:
    body = b"1000\r\n" + b"x" * 0x1000 + b"\r\n0\r\n\r\n"
    out = fed_in_pieces(body, 1024, max_held=2048)
    assert b"".join(out) == b"x" * 0x1000
    assert len(out) > 1
    assert all(len(piece) <= 2048 + 1024 for piece in out)


def test_a_whole_chunk_in_one_read_is_passed_on_without_a_copy() -> None:
    data = b"x" * 100
    decoder = ChunkedBody()
    decoder.feed(b"64\r\n")
    (piece,) = decoder.feed(data)
    assert piece is data


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"g\r\n", id="not hex"),
        pytest.param(b"+5\r\nhello\r\n", id="a sign"),
        pytest.param(b"0x5\r\nhello\r\n", id="a 0x prefix"),
        pytest.param(b"\r\n", id="no size"),
        pytest.param(b"1" * 17 + b"\r\n", id="over 16 hex digits"),
        pytest.param(b"5\r\nhelloXY", id="data not followed by CRLF"),
        pytest.param(b"1;" + b"e" * MAX_SIZE_LINE, id="size line too long"),
        pytest.param(b"0\r\n" + b"t" * (MAX_TRAILERS + 1), id="trailers too long"),
        pytest.param(b"0\r\n\r\nHTTP/1.1", id="bytes after the end"),
    ],
)
def test_what_is_not_a_chunked_body_is_refused(body: bytes) -> None:
    decoder = ChunkedBody()
    with pytest.raises(MalformedResponse):
        decoder.feed(body)


def test_bytes_after_the_end_are_refused_in_a_later_read_too() -> None:
    decoder = ChunkedBody()
    assert decoder.feed(b"0\r\n\r\n") == []
    assert decoder.done
    assert decoder.feed(b"") == []
    with pytest.raises(MalformedResponse):
        decoder.feed(b"x")


def test_an_unfinished_body_is_not_done() -> None:
    decoder = ChunkedBody()
    assert decoder.feed(b"5\r\nhel") == []
    assert not decoder.done
    assert decoder.feed(b"lo\r\n0\r\n") == [b"hello"]
    assert not decoder.done  # the trailer section's empty line is still to come
    decoder.feed(b"\r\n")
    assert decoder.done


def test_a_message_up_to_1_mib_goes_on_whole_and_a_longer_chunk_in_pieces() -> None:
    # docs/upstream.md: a chunk still arriving is held up to 1 MiB, so such a message goes on whole.
    line = b"x" * (1024 * 1024 - 1) + b"\n"
    body = b"%x\r\n" % len(line) + line + b"\r\n0\r\n\r\n"
    assert fed_in_pieces(body, 64 * 1024) == [line]
    longer = b"y" * (1024 * 1024 + 64 * 1024)
    body = b"%x\r\n" % len(longer) + longer + b"\r\n0\r\n\r\n"
    out = fed_in_pieces(body, 64 * 1024)
    assert b"".join(out) == longer
    assert len(out) == 2
