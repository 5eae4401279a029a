"""A full-duplex HTTP/1.1 client connection: asyncio streams carrying an h11 state machine.

httpcore writes the whole request body before it reads any of the response, so a bidi call
through it would see no reply until the client half-closes. h11 itself has no such rule: a
client connection may read the response while its own side is still in SEND_BODY. Here one
task writes request events while another reads response events from the same connection.

The pool is deliberately small: one origin, idle connections kept for reuse (bounded count and
age), optionally a cap on connections in use. A connection goes back to the pool only when both
sides of h11 finished their message cleanly; any other ending closes it.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from dataclasses import dataclass
from typing import cast

import h11

READ_CHUNK_SIZE = 64 * 1024
# Bounds the buffered, not yet parsed response head (status line + headers).
MAX_HEAD_SIZE = 64 * 1024


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int

    @property
    def netloc(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


class ConnectTimeout(Exception):
    """The TCP (or TLS) connection to the upstream was not established in time."""


class PoolTimeout(Exception):
    """All allowed upstream connections stayed busy for the whole connect timeout."""


class ReadTimeout(Exception):
    """The upstream sent nothing for longer than the read timeout."""


class H11Connection:
    """One HTTP/1.1 connection; `send` and `next_event` may run concurrently in two tasks."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_SIZE)
        self.idle_since = time.monotonic()

    async def send(self, event: h11.Event) -> None:
        data = self._h11.send(event)
        if data:
            self._writer.write(data)
            await self._writer.drain()

    async def next_event(self, read_timeout: float | None) -> h11.Event | type[h11.PAUSED]:
        while True:
            event = self._h11.next_event()
            if event is not h11.NEED_DATA:
                return cast("h11.Event | type[h11.PAUSED]", event)
            try:
                data = await asyncio.wait_for(self._reader.read(READ_CHUNK_SIZE), read_timeout)
            except asyncio.TimeoutError:
                raise ReadTimeout from None
            self._h11.receive_data(data)

    def is_reusable(self) -> bool:
        return self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE

    def is_stale(self, keepalive_expiry: float) -> bool:
        # An idle connection the server already closed has EOF queued in its reader.
        return (
            self._reader.at_eof()
            or self._writer.is_closing()
            or time.monotonic() - self.idle_since > keepalive_expiry
        )

    def recycle(self) -> None:
        self._h11.start_next_cycle()
        self.idle_since = time.monotonic()

    def close(self) -> None:
        # abort(), not close(): an unfinished message must not be flushed or waited for.
        self._writer.transport.abort()


class ConnectionPool:
    def __init__(
        self,
        origin: Origin,
        *,
        ssl_context: ssl.SSLContext | None,
        connect_timeout: float | None,
        max_connections: int | None,
        max_keepalive_connections: int,
        keepalive_expiry: float,
    ) -> None:
        self._origin = origin
        self._ssl_context = ssl_context
        self._connect_timeout = connect_timeout
        self._slots = asyncio.Semaphore(max_connections) if max_connections is not None else None
        self._max_keepalive = max_keepalive_connections
        self._keepalive_expiry = keepalive_expiry
        self._idle: deque[H11Connection] = deque()

    async def acquire(self) -> H11Connection:
        if self._slots is not None:
            try:
                await asyncio.wait_for(self._slots.acquire(), self._connect_timeout)
            except asyncio.TimeoutError:
                raise PoolTimeout from None
        try:
            while self._idle:
                conn = self._idle.pop()
                if not conn.is_stale(self._keepalive_expiry):
                    return conn
                conn.close()
            return await self._open()
        except BaseException:
            self._release_slot()
            raise

    async def _open(self) -> H11Connection:
        origin = self._origin
        connect = asyncio.open_connection(
            origin.host,
            origin.port,
            ssl=self._ssl_context,
            server_hostname=origin.host if self._ssl_context is not None else None,
            limit=READ_CHUNK_SIZE,
        )
        try:
            reader, writer = await asyncio.wait_for(connect, self._connect_timeout)
        except asyncio.TimeoutError:
            raise ConnectTimeout from None
        return H11Connection(reader, writer)

    def release(self, conn: H11Connection) -> None:
        """Give a connection back: pooled when its exchange ended cleanly, else closed."""
        self._release_slot()
        if conn.is_reusable() and len(self._idle) < self._max_keepalive:
            conn.recycle()
            self._idle.append(conn)
        else:
            conn.close()

    def _release_slot(self) -> None:
        if self._slots is not None:
            self._slots.release()

    async def aclose(self) -> None:
        while self._idle:
            conn = self._idle.pop()
            conn.close()
        # Let the aborted transports run their connection_lost callbacks.
        await asyncio.sleep(0)
