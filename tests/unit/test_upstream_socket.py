"""The upstream socket: everything received is read before the reset, and reading pauses past 64 KiB."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable
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


# Writing: on asyncio's own socket transport, writelines writes the pieces with one writev.


async def _socket_pair() -> tuple[UpstreamSocket, socket.socket]:
    """An UpstreamSocket under asyncio's socket transport, and the peer's end (an AF_UNIX pair)."""
    ours, peer = socket.socketpair()
    _, sock = await asyncio.get_running_loop().connect_accepted_socket(UpstreamSocket, ours)
    return sock, peer


def _read_all(peer: socket.socket, size: int) -> bytes:
    peer.settimeout(5)
    got = bytearray()
    while len(got) < size:
        block = peer.recv(size - len(got))
        assert block, "the peer saw EOF early"
        got += block
    return bytes(got)


async def test_writelines_on_asyncios_transport_writes_the_pieces_directly() -> None:
    sock, peer = await _socket_pair()
    assert sock._writev_fd >= 0
    assert sock.transport is not None
    sock.writelines((b"10\r\n", b"x" * 16, b"\r\n"))
    assert sock.transport.get_write_buffer_size() == 0  # nothing went through the transport
    assert _read_all(peer, 22) == b"10\r\n" + b"x" * 16 + b"\r\n"
    sock.abort()
    peer.close()


async def test_what_the_socket_does_not_take_is_queued_in_order_behind_it() -> None:
    sock, peer = await _socket_pair()
    assert sock.transport is not None
    pieces = [bytes([65 + n % 26]) * (64 * 1024 + n) for n in range(40)]
    for n in range(0, len(pieces), 2):  # some writes fill the socket, later ones go behind the queue
        sock.writelines((b"<", pieces[n], pieces[n + 1], b">"))
    assert sock.transport.get_write_buffer_size() > 0
    expected = b"".join(b"<" + pieces[n] + pieces[n + 1] + b">" for n in range(0, len(pieces), 2))
    reading = asyncio.get_running_loop().run_in_executor(None, _read_all, peer, len(expected))
    await sock.drain()
    assert await reading == expected
    sock.abort()
    peer.close()


async def test_a_failed_direct_write_is_reported_by_the_transport() -> None:
    sock, peer = await _socket_pair()
    peer.close()
    sock.writelines((b"1\r\n", b"x", b"\r\n"))
    sock.writelines((b"1\r\n", b"y", b"\r\n"))
    await asyncio.sleep(0)
    with pytest.raises((BrokenPipeError, ConnectionResetError)):
        await sock.drain()


class _Raw:
    def fileno(self) -> int:
        return 99


class _JoiningTransport(_Transport):
    """A transport whose writelines is asyncio's default (a join, then write), over a plain socket."""

    writelines = asyncio.WriteTransport.writelines

    def get_extra_info(self, name: str) -> Any:
        return {"socket": _Raw()}.get(name)


class _TlsTransport(_JoiningTransport):
    def get_extra_info(self, name: str) -> Any:
        return {"socket": _Raw(), "ssl_object": object()}.get(name)


class _VectoredTransport(_JoiningTransport):
    def writelines(self, pieces: Iterable[bytes | bytearray | memoryview]) -> None:  # as uvloop's
        self.writes.extend(bytes(piece) for piece in pieces)


def test_direct_writes_only_to_a_plain_socket_under_a_joining_writelines() -> None:
    for transport_type, direct in [
        (_JoiningTransport, True),
        (_TlsTransport, False),
        (_VectoredTransport, False),
    ]:
        sock, transport = UpstreamSocket(), transport_type()
        sock.connection_made(cast(asyncio.Transport, transport))
        assert (sock._writev_fd == 99) is direct, transport_type
        if not direct:
            sock.writelines((b"1\r\n", b"x", b"\r\n"))
            assert b"".join(transport.writes) == b"1\r\nx\r\n"
