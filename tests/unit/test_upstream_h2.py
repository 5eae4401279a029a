"""The HTTP/2 upstream connection against an h2 server driven by hand: what arrives in one read."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import h2.config
import h2.connection
import h2.events
import h2.settings

from wsproxy.upstream._call import ResponseHead
from wsproxy.upstream._h2 import MAX_FRAME_SIZE, H2Connection
from wsproxy.upstream._socket import UpstreamSocket


class _Transport:
    """What UpstreamSocket uses of an asyncio transport, recording writes."""

    def __init__(self) -> None:
        self.written = bytearray()

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.written += data

    def abort(self) -> None:
        pass

    def get_extra_info(self, name: str) -> Any:
        return None


def _taken(transport: _Transport) -> bytes:
    data = bytes(transport.written)
    transport.written.clear()
    return data


async def test_the_servers_settings_ack_and_a_large_data_frame_in_one_read_are_both_taken() -> None:
    sock, transport = UpstreamSocket(), _Transport()
    sock.connection_made(cast(asyncio.Transport, transport))
    conn = H2Connection(sock, scheme="http", authority="up", on_stream_closed=lambda _: None)
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
    server.initiate_connection()
    starting = asyncio.ensure_future(conn.start(timeout=1.0))
    await asyncio.sleep(0)
    server.receive_data(_taken(transport))  # our preface and SETTINGS; the server's ACK waits unsent
    ack = server.data_to_send()
    server.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: MAX_FRAME_SIZE})
    sock.data_received(server.data_to_send())
    await starting
    call = conn.start_call("POST", b"/echo", [], bodyless=True)
    for event in server.receive_data(_taken(transport)):
        if isinstance(event, h2.events.RequestReceived):
            server.send_headers(event.stream_id, [(b":status", b"200")])
    line = b"x" * (64 * 1024) + b"\n"  # over the 16 KiB every connection starts with
    server.send_data(call.stream_id, line)
    sock.data_received(ack + server.data_to_send())  # the ACK and the frame it allows, in one read

    assert await call.next_event(1.0) == ResponseHead(200, [])
    assert await call.next_event(1.0) == line
