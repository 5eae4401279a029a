"""The upstream socket: everything received is read before the reset, and reading pauses past 64 KiB."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from wsproxy.upstream._socket import UpstreamSocket


class _Transport:
    """What UpstreamSocket uses of an asyncio transport, recording pauses and writes."""

    def __init__(self) -> None:
        self.paused = False
        self.writes: list[bytes] = []

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def get_extra_info(self, name: str) -> Any:
        return None


def connected() -> tuple[UpstreamSocket, _Transport]:
    sock, transport = UpstreamSocket(), _Transport()
    sock.connection_made(cast(asyncio.Transport, transport))
    return sock, transport


async def test_every_block_received_before_a_reset_is_read_then_the_reset_is_raised() -> None:
    sock, _ = connected()
    sock.data_received(b"HTTP/1.1 200 OK\r\n")
    sock.data_received(b"content-length: 0\r\n\r\n")
    sock.connection_lost(ConnectionResetError(104, "Connection reset by peer"))
    assert await sock.read() == b"HTTP/1.1 200 OK\r\n"
    assert await sock.read() == b"content-length: 0\r\n\r\n"
    with pytest.raises(ConnectionResetError):
        await sock.read()
    with pytest.raises(ConnectionResetError):
        await sock.drain()


async def test_eof_reads_as_empty_once_the_blocks_are_read() -> None:
    sock, _ = connected()
    sock.data_received(b"x")
    assert sock.eof_received() is True  # plain TCP: our side stays open, as with StreamReader
    assert not sock.at_eof()
    assert await sock.read() == b"x"
    assert sock.at_eof()
    assert await sock.read() == b""


async def test_reading_pauses_while_more_than_64_kib_wait_and_resumes_when_taken() -> None:
    sock, transport = connected()
    sock.data_received(b"a" * (64 * 1024))
    assert not transport.paused
    sock.data_received(b"b")
    assert transport.paused
    await sock.read()
    assert not transport.paused


async def test_a_read_waits_for_the_next_block() -> None:
    sock, _ = connected()
    reading = asyncio.ensure_future(sock.read())
    await asyncio.sleep(0)
    assert not reading.done()
    sock.data_received(b"late")
    assert await reading == b"late"


async def test_a_consumer_gets_the_blocks_already_received_then_each_new_one_and_the_end() -> None:
    sock, transport = connected()
    sock.data_received(b"a" * (64 * 1024 + 1))
    assert transport.paused
    blocks: list[bytes] = []
    ends: list[BaseException | None] = []
    sock.deliver_to(blocks.append, ends.append)
    assert not transport.paused  # a consumer takes every block as it comes: nothing waits
    sock.data_received(b"b")
    sock.eof_received()
    sock.connection_lost(None)
    assert blocks == [b"a" * (64 * 1024 + 1), b"b"]
    assert ends == [None]  # once


async def test_a_large_block_for_a_waiting_reader_does_not_pause_reading() -> None:
    sock, transport = connected()
    reading = asyncio.ensure_future(sock.read())
    await asyncio.sleep(0)
    sock.data_received(b"m" * (64 * 1024 + 10))  # one 64 KiB message with its chunk framing
    assert not transport.paused
    sock.data_received(b"n")  # a second block before the reader ran: now more than 64 KiB wait
    assert transport.paused
    assert len(await reading) == 64 * 1024 + 10
    assert not transport.paused
