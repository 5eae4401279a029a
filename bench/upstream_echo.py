"""A lean NDJSON echo upstream for the front's CPU rows: HTTP/1.1 and h2c on one port, as its own process.

    python -m bench.upstream_echo FD [--loop asyncio|uvloop]

FD is an inherited listening socket. What it answers must cost the front what a real gateway's
answer costs, and cost this process as little as possible (it shares a core with the load client):

- HTTP/1.1: a chunked request gets a chunked 200 whose body is the request body's bytes sent back
  verbatim, framing included, so each chunk the front wrote comes back as one chunk, terminator
  and all. A request without a chunked body gets an empty chunked 200. One request per connection
  (the front sends a streaming body with `Connection: close`); EOF closes it.
- HTTP/2 with prior knowledge (the connection starts with the preface): each stream's DATA goes
  back on the same stream as it arrives, within the front's flow-control windows, and the stream
  ends when the request's does. Built on the h2 library.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
from collections import deque

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from bench.harness import run_on
from wsproxy.upstream import _h2  # noqa: F401  (its cheap DATA frame repr: h2 formats every frame)

GO_WINDOW = 1 << 20
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_HEAD_CHUNKED = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n"


class _Echo(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._head = b""
        self._h1_echoing = False
        self._h2: _H2Echo | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        if self._h1_echoing:
            self.transport.write(data)
        elif self._h2 is not None:
            self._h2.received(data)
        else:
            self._head += data
            if len(self._head) >= len(_PREFACE) and self._head.startswith(_PREFACE):
                self._h2 = _H2Echo(self.transport)
                data, self._head = self._head, b""
                self._h2.received(data)
                return
            head, sep, rest = self._head.partition(b"\r\n\r\n")
            if not sep:
                return
            self._head = b""
            if b"transfer-encoding: chunked" in head.lower():
                self._h1_echoing = True
                self.transport.write(_HEAD_CHUNKED + rest)
            else:
                self.transport.write(_HEAD_CHUNKED + b"0\r\n\r\n")

    def eof_received(self) -> bool:
        return False  # close

    def connection_lost(self, exc: Exception | None) -> None:
        self._h2 = None


class _H2Echo:
    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None)
        )
        # As Go's net/http server: 1 MiB frames and windows, so the front is not held back by ours.
        self._conn.initiate_connection()
        self._conn.update_settings(
            {
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: GO_WINDOW,
                h2.settings.SettingCodes.MAX_FRAME_SIZE: GO_WINDOW,
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 250,
            }
        )
        self._conn.increment_flow_control_window(GO_WINDOW - 65535)
        # Accept 1 MiB frames at once, as Go's server does. h2 would wait for the front's SETTINGS ACK,
        # and it checks frame sizes against the limit as it stood when a read began: an ACK and the
        # front's first large DATA frame in one read ended the connection with FRAME_SIZE_ERROR.
        self._conn.max_inbound_frame_size = GO_WINDOW
        self._pending: dict[int, deque[bytes | None]] = {}  # data not yet sent; None: end the stream

    def received(self, data: bytes) -> None:
        conn = self._conn
        try:
            events = conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self._transport.write(conn.data_to_send())
            self._transport.close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                conn.send_headers(
                    event.stream_id, [(b":status", b"200"), (b"content-type", b"application/x-ndjson")]
                )
                self._pending[event.stream_id] = deque()
            elif isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                if event.data:
                    self._queue(event.stream_id, event.data)
            elif isinstance(event, h2.events.StreamEnded):
                self._queue(event.stream_id, None)
            elif isinstance(event, h2.events.StreamReset):
                self._pending.pop(event.stream_id, None)
            elif isinstance(event, h2.events.WindowUpdated):
                for stream_id in list(self._pending) if not event.stream_id else [event.stream_id]:
                    self._send(stream_id)
        self._transport.write(conn.data_to_send())

    def _queue(self, stream_id: int, data: bytes | None) -> None:
        pending = self._pending.get(stream_id)
        if pending is not None:
            pending.append(data)
            self._send(stream_id)

    def _send(self, stream_id: int) -> None:
        pending = self._pending.get(stream_id)
        conn = self._conn
        while pending:
            data = pending[0]
            try:
                if data is None:
                    conn.end_stream(stream_id)
                    del self._pending[stream_id]
                    return
                size = min(len(data), conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
                if size <= 0:
                    return
                conn.send_data(stream_id, data[:size])
            except h2.exceptions.StreamClosedError:
                del self._pending[stream_id]
                return
            if size < len(data):
                pending[0] = data[size:]
            else:
                pending.popleft()


async def _serve(fd: int) -> None:
    sock = socket.socket(fileno=fd)
    server = await asyncio.get_running_loop().create_server(_Echo, sock=sock)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.upstream_echo")
    parser.add_argument("fd", type=int, help="an inherited listening socket")
    parser.add_argument("--loop", default="asyncio", choices=["asyncio", "uvloop"])
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        run_on(args.loop, _serve(args.fd))
    return 0


if __name__ == "__main__":
    sys.exit(main())
