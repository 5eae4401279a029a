"""Connections to one upstream origin: HTTP/1.1 one call per connection, HTTP/2 many per connection.

Which protocol: `http_version="1.1"` always speaks HTTP/1.1. `"2"` always speaks HTTP/2: cleartext
with prior knowledge (h2c) for http://, and for https:// a TLS handshake that must select "h2" by
ALPN. `"auto"` (the default) speaks HTTP/1.1 to http:// upstreams and offers both by ALPN to
https:// ones; once a connection selected h2, new calls go to the HTTP/2 connections.

HTTP/1.1: idle connections are kept for reuse (bounded count and age); `max_connections` caps the
connections in use, and a call waits up to the connect timeout for one (then `PoolTimeout`).
HTTP/2: a call takes a stream on the first connection with room (below the server's stream limit);
a new connection opens only when all are full, one at a time, so N streams use about
N / limit connections. `max_connections` caps the HTTP/2 connections, and a call waits up to the
connect timeout for a stream. A connection without streams for `keepalive_expiry` is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import deque
from dataclasses import dataclass
from typing import Literal

from wsproxy.upstream._call import UpstreamCall
from wsproxy.upstream._errors import ConnectTimeout, PoolTimeout
from wsproxy.upstream._h2 import H2Connection
from wsproxy.upstream._h11 import H11Connection
from wsproxy.upstream._socket import UpstreamSocket

logger = logging.getLogger("wsproxy.upstream")

HttpVersion = Literal["auto", "1.1", "2"]
HTTP_VERSIONS: tuple[HttpVersion, ...] = ("auto", "1.1", "2")


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


class NoH2Negotiated(ssl.SSLError):
    """http_version="2" over TLS, but the server did not select "h2" by ALPN."""


class UpstreamPool:
    def __init__(
        self,
        origin: Origin,
        *,
        ssl_context: ssl.SSLContext | None,
        http_version: HttpVersion,
        connect_timeout: float | None,
        max_connections: int | None,
        max_keepalive_connections: int,
        keepalive_expiry: float,
    ) -> None:
        self._origin = origin
        self._ssl_context = ssl_context
        self._http_version = http_version
        if ssl_context is not None and http_version != "1.1":
            ssl_context.set_alpn_protocols(["h2"] if http_version == "2" else ["h2", "http/1.1"])
        self._connect_timeout = connect_timeout
        self._max_connections = max_connections
        self._slots = asyncio.Semaphore(max_connections) if max_connections is not None else None
        self._max_keepalive = max_keepalive_connections
        self._keepalive_expiry = keepalive_expiry
        self._idle: deque[H11Connection] = deque()
        self._h2: list[H2Connection] = []
        self._h2_opening: asyncio.Future[None] | None = None
        self._h2_room = asyncio.Event()  # set whenever a stream closes
        self._use_h2 = http_version == "2"
        # "auto" over TLS learns the protocol from the first connection's ALPN; until then one
        # connection is opened at a time, so a burst of calls does not open one each.
        self._protocol_known = http_version != "auto" or ssl_context is None
        self._probe: asyncio.Future[None] | None = None
        self.connections_opened = 0  # for the bench and tests: how many connections were ever made

    @property
    def http2_connections(self) -> int:
        return len(self._h2)

    async def open_call(
        self, method: str, target: bytes, headers: list[tuple[bytes, bytes]], *, bodyless: bool
    ) -> UpstreamCall:
        """Start a call: the request head is written when this returns."""
        while not self._protocol_known and self._probe is not None:
            await asyncio.shield(self._probe)
        if not self._use_h2:
            conn = await self._acquire_h11()
            if conn is not None:
                conn.start(method, target, headers, bodyless=bodyless, on_release=self._release_h11)
                return conn
        h2conn = await self._acquire_h2()
        return h2conn.start_call(method, target, headers, bodyless=bodyless)

    # HTTP/1.1

    async def _acquire_h11(self) -> H11Connection | None:
        """An HTTP/1.1 connection, or None when the upstream turned out to speak HTTP/2."""
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
            probe = None
            if not self._protocol_known:
                probe = self._probe = asyncio.get_running_loop().create_future()
            try:
                sock = await self._connect()
                if _selected_h2(sock):
                    self._release_slot()
                    await self._add_h2(sock)
                    return None
                self._protocol_known = True
                return H11Connection(sock)
            finally:
                if probe is not None:
                    self._probe = None
                    probe.set_result(None)
        except BaseException:
            self._release_slot()
            raise

    def _release_h11(self, conn: H11Connection) -> None:
        self._release_slot()
        if conn.is_reusable() and len(self._idle) < self._max_keepalive:
            conn.recycle()
            self._idle.append(conn)
        else:
            conn.close()

    def _release_slot(self) -> None:
        if self._slots is not None:
            self._slots.release()

    # HTTP/2

    async def _acquire_h2(self) -> H2Connection:
        loop = asyncio.get_running_loop()
        deadline = None if self._connect_timeout is None else loop.time() + self._connect_timeout
        while True:
            conn = self._h2_with_room()
            if conn is not None:
                return conn
            if self._h2_opening is not None:
                await asyncio.shield(self._h2_opening)
                continue
            if self._max_connections is None or len(self._h2) < self._max_connections:
                await self._open_h2()
                continue
            self._h2_room.clear()
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise PoolTimeout
            try:
                await asyncio.wait_for(self._h2_room.wait(), remaining)
            except asyncio.TimeoutError:
                raise PoolTimeout from None

    def _h2_with_room(self) -> H2Connection | None:
        now = time.monotonic()
        for conn in list(self._h2):
            expired = now - conn.idle_since > self._keepalive_expiry
            if conn.open_streams == 0 and (expired or not conn.usable):
                self._h2.remove(conn)
                conn.close()
        for conn in self._h2:
            if conn.capacity() > 0:
                return conn
        return None

    async def _open_h2(self) -> None:
        """Open one more HTTP/2 connection; concurrent callers wait for it instead of opening more."""
        opening = self._h2_opening = asyncio.get_running_loop().create_future()
        try:
            sock = await self._connect()
            if self._ssl_context is not None and not _selected_h2(sock):
                sock.abort()
                raise NoH2Negotiated("the upstream did not select h2 by ALPN")
            await self._add_h2(sock)
        finally:
            self._h2_opening = None
            opening.set_result(None)

    async def _add_h2(self, sock: UpstreamSocket) -> None:
        conn = H2Connection(
            sock,
            scheme=self._origin.scheme,
            authority=self._origin.netloc,
            on_stream_closed=self._h2_stream_closed,
        )
        try:
            await conn.start(self._connect_timeout)
        except asyncio.TimeoutError:
            raise ConnectTimeout from None
        self._use_h2 = self._protocol_known = True
        self._h2.append(conn)

    def _h2_stream_closed(self, conn: H2Connection) -> None:
        self._h2_room.set()
        if not conn.usable and conn.open_streams == 0 and conn in self._h2:
            self._h2.remove(conn)
            conn.close()

    # Both

    async def _connect(self) -> UpstreamSocket:
        origin = self._origin
        connect = asyncio.get_running_loop().create_connection(
            UpstreamSocket,
            origin.host,
            origin.port,
            ssl=self._ssl_context,
            server_hostname=origin.host if self._ssl_context is not None else None,
        )
        try:
            _, sock = await asyncio.wait_for(connect, self._connect_timeout)
        except asyncio.TimeoutError:
            raise ConnectTimeout from None
        self.connections_opened += 1
        return sock

    async def aclose(self) -> None:
        while self._idle:
            self._idle.pop().close()
        for conn in self._h2:
            conn.close()
        self._h2.clear()
        # Let the aborted transports run their connection_lost callbacks.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0)


def _selected_h2(sock: UpstreamSocket) -> bool:
    ssl_object = sock.ssl_object()
    return ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2"
