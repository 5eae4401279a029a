"""The HTTP/1.1 upstream connection when the upstream resets it right after a complete answer."""

from __future__ import annotations

from typing import Any, cast

import h11
import pytest

from wsproxy.upstream._call import ResponseHead
from wsproxy.upstream._h11 import H11Connection
from wsproxy.upstream._socket import UpstreamSocket

RESPONSE = b'HTTP/1.1 200 OK\r\ncontent-length: 20\r\nconnection: close\r\n\r\n{"echo": {"hi": 1}}\n'


def _reset_after(received: bytes) -> UpstreamSocket:
    """A socket that received `received`, then the upstream's reset."""
    sock = UpstreamSocket()
    if received:
        sock.data_received(received)
    sock.connection_lost(ConnectionResetError(104, "Connection reset by peer"))
    return sock


def _connection_after_request(sock: UpstreamSocket) -> H11Connection:
    conn = H11Connection(sock)
    conn._h11.send(
        h11.Request(method="POST", target="/echo", headers=[("host", "up"), ("transfer-encoding", "chunked")])
    )
    return conn


async def test_a_complete_answer_before_the_reset_is_delivered() -> None:
    # uvicorn answers a unary call, closes without lingering, and the client's half-close arriving
    # late makes the reset: the answer received before it must still be read.
    conn = _connection_after_request(_reset_after(RESPONSE))
    head = await conn.next_event(None)
    assert isinstance(head, ResponseHead)
    assert head.status == 200
    assert await conn.next_event(None) == b'{"echo": {"hi": 1}}\n'
    assert await conn.next_event(None) is None


async def test_a_reset_that_cuts_the_answer_short_is_still_a_reset() -> None:
    conn = _connection_after_request(_reset_after(RESPONSE[:-5]))
    assert isinstance(await conn.next_event(None), ResponseHead)
    assert await conn.next_event(None) == b'{"echo": {"hi":'
    with pytest.raises(ConnectionResetError):
        await conn.next_event(None)


async def test_a_reset_with_nothing_received_is_a_reset() -> None:
    with pytest.raises(ConnectionResetError):
        await _connection_after_request(_reset_after(b"")).next_event(None)


class _Writes:
    """An UpstreamSocket stand-in that records each write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def writelines(self, pieces: list[bytes]) -> None:
        self.writes.append(b"".join(pieces))

    async def drain(self) -> None:
        pass


async def test_the_last_body_chunk_and_the_end_go_out_in_one_write() -> None:
    # A separate terminator could reach an upstream that already answered the first line and closed
    # (uvicorn, when the body has not ended): it answers with a reset, which discards the answer
    # still unread in our socket. That made a unary call through `wsproxy --upstream` end with 1014.
    writes = _Writes()
    conn = H11Connection(cast(Any, writes))
    conn._h11.send(
        h11.Request(method="POST", target="/echo", headers=[("host", "up"), ("transfer-encoding", "chunked")])
    )
    await conn.finish_body(b'{"hi": 1}\n')
    assert writes.writes == [b'a\r\n{"hi": 1}\n\r\n0\r\n\r\n']
