from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsproxy.errors import MessageTooBig
from wsproxy.stream._lines import LineSplitter


def feed(splitter: LineSplitter, chunk: bytes) -> list[bytes]:
    return [bytes(line) for line in splitter.feed_views(chunk)]


def split_all(chunks: list[bytes], limit: int = 1 << 20) -> list[bytes]:
    splitter = LineSplitter(limit)
    lines: list[bytes] = []
    for chunk in chunks:
        lines += feed(splitter, chunk)
    return lines + splitter.flush()


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b'{"a":1}\n'], [b'{"a":1}']),
        ([b"a\nb\n"], [b"a", b"b"]),
        ([b"a", b"b", b"c\n"], [b"abc"]),
        ([b"a\r\n", b"b\r\n"], [b"a", b"b"]),
        ([b"a\r", b"\nb"], [b"a", b"b"]),
        ([b"\n\n\r\n", b"x\n\n"], [b"x"]),
        ([b"tail without newline"], [b"tail without newline"]),
        ([b"a\nb", b"c\nd"], [b"a", b"bc", b"d"]),
        ([b"in\rside\n"], [b"in\rside"]),
        ([b""], []),
        ([], []),
    ],
)
def test_split(chunks: list[bytes], expected: list[bytes]) -> None:
    assert split_all(chunks) == expected


def test_lines_are_returned_as_soon_as_complete() -> None:
    splitter = LineSplitter(100)
    assert feed(splitter, b"one\ntw") == [b"one"]
    assert len(splitter._tail or b"") == 2
    assert feed(splitter, b"o\nthree") == [b"two"]
    assert splitter.flush() == [b"three"]
    assert len(splitter._tail or b"") == 0


@pytest.mark.parametrize(
    "chunks",
    [
        [b"x" * 11 + b"\n"],  # complete line in one chunk
        [b"x" * 6, b"x" * 6],  # grows in the tail
        [b"ok\n" + b"x" * 11],  # tail after a good line
        [b"xxxxx", b"xxxxxxx\n"],  # completed over the limit
    ],
)
def test_line_over_limit_raises(chunks: list[bytes]) -> None:
    with pytest.raises(MessageTooBig):
        split_all(chunks, limit=10)


def test_line_at_limit_passes() -> None:
    assert split_all([b"x" * 5, b"x" * 5 + b"\n"], limit=10) == [b"x" * 10]


def test_long_line_in_many_chunks_is_bounded_by_the_tail() -> None:
    splitter = LineSplitter(1 << 20)
    for _ in range(1000):
        assert feed(splitter, b"y" * 100) == []
    assert len(splitter._tail or b"") == 100_000
    assert feed(splitter, b"\n") == [b"y" * 100_000]


@given(
    lines=st.lists(
        st.binary(min_size=1).filter(lambda b: b"\n" not in b and not b.endswith(b"\r")), max_size=20
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=30),
)
def test_any_chunking_yields_the_same_lines(lines: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(line + b"\n" for line in lines)
    points = sorted({min(cut, len(stream)) for cut in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    assert split_all(chunks) == [line for line in lines if line]


@pytest.mark.parametrize(
    ("chunk", "tail", "expected"),
    [
        (b'{"a":1}\n', b"", b'{"a":1}'),
        (b"x\n", b"", b"x"),
        (b"\n", b"", None),  # empty line: the general path skips it
        (b"a\r\n", b"", None),  # CR to strip: general path
        (b"a\nb\n", b"", None),  # two lines
        (b"no newline", b"", None),
        (b"x" * 20 + b"\n", b"", None),  # over the limit: the general path raises
        (b"x\n", b"partial", None),  # something buffered first
        (b"x" * 5000 + b"\n", b"", b"x" * 5000),  # long: a view of the chunk
        (b"x" * 5000 + b"\nx\n", b"", None),  # long, two lines
        (b"\n" + b"x" * 5000 + b"\n", b"", None),  # long, after an empty line
    ],
)
def test_one_line_fast_path(chunk: bytes, tail: bytes, expected: bytes | None) -> None:
    splitter = LineSplitter(8192 if len(chunk) > 4096 else 10)
    if tail:
        splitter.feed_views(tail)
    line = splitter.one_line(chunk)
    assert (None if line is None else bytes(line)) == expected


# Edges found by mutation testing (docs/testing.md): each row fails if one comparison or constant moves.


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b"abc\r\n"], [b"abc"]),  # the CR is stripped, not the line cut short
        ([b"\r\n"], []),  # a line that is only a CR is empty, hence skipped
        ([b"\n"], []),
        ([b"x" * 10 + b"\n"], [b"x" * 10]),  # exactly the limit, in one chunk
        ([b"x" * 10], [b"x" * 10]),  # exactly the limit, held as the tail
        ([b"a", b"b\nc\nd\n"], [b"ab", b"c", b"d"]),  # after a tail: several lines, in order
        ([b"a", b"b\nc\nd"], [b"ab", b"c", b"d"]),
    ],
)
def test_split_edges_at_limit_10(chunks: list[bytes], expected: list[bytes]) -> None:
    assert split_all(chunks, limit=10) == expected


@pytest.mark.parametrize("chunks", [[b"x" * 11 + b"\n"], [b"x" * 11], [b"ok\nxxxxxxxxxxx\nok\n"]])
def test_line_over_limit_says_which_limit(chunks: list[bytes]) -> None:
    with pytest.raises(MessageTooBig, match=r"^response line over 10 bytes$"):
        split_all(chunks, limit=10)


@pytest.mark.parametrize(("size", "view"), [(4095, False), (4096, True), (5000, True)])
def test_a_long_single_line_comes_back_as_a_view(size: int, view: bool) -> None:
    chunk = b"v" * size + b"\n"
    [line] = LineSplitter(1 << 20).feed_views(chunk)
    assert isinstance(line, memoryview) is view
    assert bytes(line) == b"v" * size
    one = LineSplitter(1 << 20).one_line(chunk)
    assert isinstance(one, memoryview) is view
    assert one is not None
    assert bytes(one) == b"v" * size


def test_one_line_fast_path_bounds() -> None:
    assert LineSplitter(10).one_line(b"x" * 10 + b"\n") == b"x" * 10  # at the line limit
    assert LineSplitter(10).one_line(b"x" * 11 + b"\n") is None  # over it
    assert LineSplitter(1 << 20).one_line(b"x" * 4095 + b"\n") == b"x" * 4095


@pytest.mark.parametrize(
    ("chunk", "tail", "lines"),
    [
        (b"a\nb\n", b"", ["a", "b"]),
        (b"a\nb\n", b"t", None),  # something buffered first
        (b"a\nb", b"", None),
        (b"a\r\nb\n", b"", None),
        (b"a\n\nb\n", b"", None),
        (b"\xff\nb\n", b"", None),
        (b"", b"", None),
        (b"abcdefghi\n", b"", ["abcdefghi"]),  # the whole chunk at the limit
        (b"abcd\nefghij\n", b"", None),  # over it
    ],
)
def test_text_lines_fast_path(chunk: bytes, tail: bytes, lines: list[str] | None) -> None:
    splitter = LineSplitter(10)
    if tail:
        splitter.feed_views(tail)
    assert splitter.text_lines(chunk) == lines
