"""HTTP/2 client connections for `UpstreamApp`: many calls share one connection, one stream each.

Theory of operation. The `h2` library is the protocol (framing, HPACK, flow-control accounting);
this module is the asyncio shell around it. Each connection's socket (`_socket`) hands every
received block to h2 as it arrives, with no reader task, and routes every event to its stream's
small inbox (response head, data, end, reset), then writes whatever h2 wants sent (SETTINGS and
PING acks). Calls write their own frames (headers, data, end, reset, WINDOW_UPDATEs), those of
one turn of the loop together; `drain` holds a writer back while the socket is full.

Flow control is the backpressure, both ways:
- Upstream to client: a stream's received data is acknowledged (WINDOW_UPDATE) only when the
  call takes it from the inbox, which it does only after the previous chunk went to the client.
  A slow client leaves its stream's window closed, so the server stops sending on that stream
  only; the connection window is large, so other streams keep flowing.
- Client to upstream: `send_body` sends no more than the stream's and connection's send windows
  allow and waits for a WINDOW_UPDATE for the rest.

A connection takes new streams while it has fewer open than the server's
SETTINGS_MAX_CONCURRENT_STREAMS (at most `MAX_STREAMS_PER_CONNECTION`), and none after a GOAWAY
or an error. A call that ends before both sides finished resets its stream (RST_STREAM CANCEL),
so the server sees the client leave.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import copy
import logging
import time
from collections import deque
from collections.abc import Callable

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hyperframe.frame

from wsproxy.upstream._call import ResponseHead
from wsproxy.upstream._errors import ClosedEarly, MalformedResponse, ReadTimeout, StreamReset
from wsproxy.upstream._socket import UpstreamSocket

logger = logging.getLogger("wsproxy.upstream")

MAX_STREAMS_PER_CONNECTION = 1000
# A stream's receive window: what one stream may hold unforwarded. Above a message's size and a few
# in flight, so a busy stream never waits a round trip for a WINDOW_UPDATE (Go's server uses 1 MiB).
STREAM_WINDOW = 1024 * 1024
# The connection's receive window: large, so one stalled stream cannot stop the others. Memory is
# bounded by what streams hold, not by this number.
CONNECTION_WINDOW = 16 * 1024 * 1024
# Largest DATA frame the upstream may send: one frame per message up to this size (Go's server
# advertises 1 MiB), so the per-frame cost of h2 is paid once per message, not per 16 KiB.
MAX_FRAME_SIZE = 1024 * 1024
# Waiting DATA frames under SMALL bytes are joined into one body chunk of up to JOIN_UP_TO bytes;
# larger ones go on alone (the line splitter scans a one-line chunk at once, splits others slowly).
SMALL = 16 * 1024
JOIN_UP_TO = 64 * 1024
# Header names never sent on HTTP/2 (RFC 9113 section 8.2.2); `host` becomes :authority.
_NOT_ON_H2 = frozenset(
    {b"host", b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)


def _raw_data_repr(data: bytes | None) -> str:
    """hyperframe's `_raw_data_repr`, same output, hexlifying only the 10 bytes it shows.

    h2 formats every received frame for a trace log whether or not anything logs it
    (`H2Connection._receive_frame`), and hyperframe's repr of a DATA frame hexlifies the whole
    payload before it cuts it to 20 hex digits: at 64 KiB that was the largest single cost of a
    message through an HTTP/2 upstream. Patched once, at import, for the whole process.
    """
    if not data:
        return "None"
    shown = binascii.hexlify(data[:11]).decode("ascii")
    return "<hex:" + (shown[:20] + "..." if len(shown) > 20 else shown) + ">"


hyperframe.frame._raw_data_repr = _raw_data_repr

_END = object()
# The inbox holds a response head, (data, flow-controlled length) pairs, _END, or a failure.
_Event = ResponseHead | tuple[bytes, int] | BaseException | object


class H2Connection:
    """One HTTP/2 connection to the upstream, shared by up to `capacity()` concurrent calls."""

    def __init__(
        self,
        sock: UpstreamSocket,
        *,
        scheme: str,
        authority: str,
        on_stream_closed: Callable[[H2Connection], None],
    ) -> None:
        self._sock = sock
        self._scheme = scheme.encode()
        self._authority = authority.encode()
        self._on_stream_closed = on_stream_closed
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self._h2 = h2.connection.H2Connection(config=config)
        self._streams: dict[int, H2Call] = {}
        self._flush_handle: asyncio.Handle | None = None
        self._settings_received = asyncio.Event()
        self.usable = True  # False after GOAWAY, EOF or an error: no new streams
        self._failure: BaseException | None = None  # why the connection stopped
        self.idle_since = time.monotonic()

    async def start(self, timeout: float | None) -> None:
        """Send our preface and settings; wait for the server's SETTINGS (its stream limit)."""
        self._h2.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 0,
            },
        )
        self._h2.initiate_connection()
        # Changed settings (not initial values), so h2 applies them when the server acknowledges.
        self._h2.update_settings(
            {
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
                h2.settings.SettingCodes.MAX_FRAME_SIZE: MAX_FRAME_SIZE,
            }
        )
        # Take frames up to our advertised size at once, as Go does. h2 raises its limit only when the
        # server's ACK arrives, and checks a read's frames against the limit as the read began: an
        # ACK and a large DATA frame in one read would fail the connection (FRAME_SIZE_ERROR).
        self._h2.max_inbound_frame_size = MAX_FRAME_SIZE
        self._h2.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self._flush()
        self._sock.deliver_to(self._received, self._ended)
        try:
            await asyncio.wait_for(self._settings_received.wait(), timeout)
        except BaseException:
            self.close()
            raise
        if self._failure is not None:  # the server answered with something that is not HTTP/2
            raise _fresh(self._failure)

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    def capacity(self) -> int:
        """How many more streams this connection takes now."""
        if not self.usable:
            return 0
        limit = min(self._h2.remote_settings.max_concurrent_streams, MAX_STREAMS_PER_CONNECTION)
        return limit - len(self._streams)

    def start_call(
        self, method: str, target: bytes, headers: list[tuple[bytes, bytes]], *, bodyless: bool
    ) -> H2Call:
        try:
            stream_id = self._h2.get_next_available_stream_id()
        except h2.exceptions.NoAvailableStreamIDError as exc:  # 2**31 streams: time for a new connection
            self.usable = False
            raise StreamReset("no stream IDs left on the connection") from exc
        pseudo = [
            (b":method", method.encode()),
            (b":scheme", self._scheme),
            (b":authority", self._authority),
            (b":path", target),
        ]
        regular = [(name, value) for name, value in headers if name not in _NOT_ON_H2]
        call = H2Call(self, stream_id, ended_local=bodyless)
        try:
            self._h2.send_headers(stream_id, pseudo + regular, end_stream=bodyless)
        except h2.exceptions.ProtocolError as exc:  # the connection closed under us, or a bad header
            if self._h2.state_machine.state is h2.connection.ConnectionState.CLOSED:
                self.usable = False
            raise StreamReset(f"cannot open a stream: {exc}") from exc
        self._streams[stream_id] = call
        self._flush()
        return call

    # Used by H2Call.

    def _flush(self) -> None:
        self._flush_handle = None
        data = self._h2.data_to_send()
        if data:
            self._sock.write(data)

    def _flush_soon(self) -> None:
        """Write what h2 queued at the end of this turn of the loop: the frames of every call that
        runs in the turn (DATA, WINDOW_UPDATE) go out in one system call instead of one each."""
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    async def _drain(self) -> None:
        await self._sock.drain()

    def _forget(self, call: H2Call) -> None:
        if self._streams.pop(call.stream_id, None) is None:
            return
        if not self._streams:
            self.idle_since = time.monotonic()
        self._on_stream_closed(self)

    # Called by the socket.

    def _received(self, data: bytes) -> None:
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._flush()  # h2 queued a GOAWAY
            self._stop(MalformedResponse(f"HTTP/2 protocol error: {exc}"))
            return
        for event in events:
            self._dispatch(event)
        self._flush()

    def _ended(self, exc: BaseException | None) -> None:
        self._stop(exc or ClosedEarly("upstream closed the HTTP/2 connection"))

    def _stop(self, failure: BaseException) -> None:
        if self._failure is not None:
            return
        self.usable = False
        self._failure = failure
        self._settings_received.set()
        for call in list(self._streams.values()):
            call._fail(failure)
        self._sock.abort()

    def _dispatch(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RemoteSettingsChanged):
            self._settings_received.set()
            for each in self._streams.values():
                each._window_opened()  # INITIAL_WINDOW_SIZE may have grown
            return
        if isinstance(event, h2.events.ConnectionTerminated):
            self.usable = False
            last = event.last_stream_id if event.last_stream_id is not None else 0
            for open_id, open_call in list(self._streams.items()):
                if open_id > last or event.error_code:
                    open_call._fail(StreamReset(f"GOAWAY {event.error_code!r}"))
            return
        stream_id: int | None = getattr(event, "stream_id", None)
        if isinstance(event, h2.events.WindowUpdated) and not stream_id:
            for each in self._streams.values():
                each._window_opened()
            return
        call: H2Call | None = self._streams.get(stream_id) if stream_id else None
        if call is None:
            if isinstance(event, h2.events.DataReceived) and stream_id:
                # A stream we already let go of: give the connection window back at once.
                with contextlib.suppress(h2.exceptions.ProtocolError):
                    self._h2.acknowledge_received_data(event.flow_controlled_length, stream_id)
            return
        if isinstance(event, h2.events.ResponseReceived):
            call._push(_response_head(event.headers))
        elif isinstance(event, h2.events.DataReceived):
            call._push_data(event.data or b"", event.flow_controlled_length)
        elif isinstance(event, h2.events.StreamEnded):
            call._push(_END)
        elif isinstance(event, h2.events.StreamReset):
            call._fail(StreamReset(f"RST_STREAM {event.error_code!r}"))
        elif isinstance(event, h2.events.WindowUpdated):
            call._window_opened()
        # TrailersReceived, InformationalResponseReceived, PriorityUpdated: nothing to forward.

    def close(self) -> None:
        self._stop(ClosedEarly("connection closed"))


class H2Call:
    """One stream: a request/response exchange on a shared HTTP/2 connection."""

    reused = False  # a stream is never reused; a connection's GOAWAY refuses the streams it never took

    def __init__(self, conn: H2Connection, stream_id: int, *, ended_local: bool) -> None:
        self._conn = conn
        self.stream_id = stream_id
        self._inbox: deque[_Event] = deque()
        self._pending_ack = 0
        self._arrived: asyncio.Future[None] | None = None
        self._window: asyncio.Future[None] | None = None
        self._failure: BaseException | None = None
        self._ended_remote = False
        self._ended_local = ended_local

    async def send_body(self, data: bytes) -> None:
        h2conn = self._conn._h2
        view = memoryview(data)
        while view:
            if self._failure is not None:
                raise _fresh(self._failure)
            size = min(
                len(view),
                h2conn.local_flow_control_window(self.stream_id),
                h2conn.max_outbound_frame_size,
            )
            if size <= 0:
                self._window = asyncio.get_running_loop().create_future()
                await self._window
                continue
            try:
                h2conn.send_data(self.stream_id, data if size == len(data) else view[:size].tobytes())
            except h2.exceptions.ProtocolError as exc:  # the stream was closed or reset meanwhile
                raise StreamReset(str(exc)) from exc
            self._conn._flush_soon()
            view = view[size:]
            await self._conn._drain()

    async def finish_body(self, data: bytes) -> None:
        await self.send_body(data)  # (a stream of its own: no reset of the connection to race)
        await self.end_body()

    async def end_body(self) -> None:
        if self._failure is not None:
            raise _fresh(self._failure)
        try:
            self._conn._h2.end_stream(self.stream_id)
        except h2.exceptions.ProtocolError as exc:
            raise StreamReset(str(exc)) from exc
        self._ended_local = True
        self._conn._flush()
        await self._conn._drain()

    async def next_event(self, timeout: float | None) -> ResponseHead | bytes | None:
        self._acknowledge()
        while not self._inbox:
            if self._failure is not None:
                raise _fresh(self._failure)
            self._arrived = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._arrived, timeout)
            except asyncio.TimeoutError:
                raise ReadTimeout from None
        event = self._inbox.popleft()
        if event is _END:
            self._ended_remote = True
            return None
        if isinstance(event, BaseException):
            raise event
        if isinstance(event, tuple):
            data: bytes = event[0]
            size: int = event[1]
            inbox = self._inbox
            if inbox and type(inbox[0]) is tuple and len(data) < SMALL:
                # Small DATA frames that wait together go on as one body chunk: one send for all.
                pieces, total = [data], len(data)
                while inbox and type(inbox[0]) is tuple:
                    more = inbox[0]
                    assert isinstance(more, tuple)
                    if len(more[0]) >= SMALL or total + len(more[0]) > JOIN_UP_TO:
                        break
                    inbox.popleft()
                    pieces.append(more[0])
                    total += len(more[0])
                    size += more[1]
                data = b"".join(pieces)
            self._pending_ack += size
            return data
        assert isinstance(event, ResponseHead)
        return event

    def _acknowledge(self) -> None:
        # The chunk handed out last has gone on to the client: open the window by its size.
        if self._pending_ack and self._failure is None:
            size, self._pending_ack = self._pending_ack, 0
            try:
                self._conn._h2.acknowledge_received_data(size, self.stream_id)
            except h2.exceptions.ProtocolError:
                return
            self._conn._flush_soon()

    def release(self) -> None:
        if self._failure is None and not (self._ended_remote and self._ended_local):
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self._conn._h2.reset_stream(self.stream_id, h2.errors.ErrorCodes.CANCEL)
                self._conn._flush()
        self._failure = self._failure or ClosedEarly("call released")
        self._conn._forget(self)

    # Called by the connection's reader task.

    def _push(self, event: _Event) -> None:
        self._inbox.append(event)
        self._wake()

    def _push_data(self, data: bytes, flow_controlled_length: int) -> None:
        # Acknowledged when taken (padding included), in next_event.
        self._inbox.append((data, flow_controlled_length))
        self._wake()

    def _fail(self, failure: BaseException) -> None:
        if self._failure is None:
            self._failure = failure
        self._wake()
        self._window_opened()

    def _wake(self) -> None:
        if self._arrived is not None and not self._arrived.done():
            self._arrived.set_result(None)

    def _window_opened(self) -> None:
        if self._window is not None and not self._window.done():
            self._window.set_result(None)


def _fresh(failure: BaseException) -> BaseException:
    """A copy to raise: one connection failure ends many calls, and a shared exception object
    would collect every call's traceback."""
    return copy.copy(failure).with_traceback(None)


def _response_head(headers: list[tuple[bytes, bytes]]) -> ResponseHead | BaseException:
    status = None
    regular: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        if name == b":status":
            status = value
        elif not name.startswith(b":"):
            regular.append((name, value))
    if status is None or not status.isdigit():
        return MalformedResponse("HTTP/2 response without a valid :status")
    return ResponseHead(int(status), regular)
