"""Many calls on one WebSocket (`wsproxy.mux.v1`), with the single-socket call API.

    async with connect_mux("ws://host", token=jwt) as conn:
        echoed = await conn.unary("/v1/echo", {"message": "hi"}, method="POST")
        async with conn.connect("/v1/chat", method="POST") as call:   # a MuxCall, used like a Call
            await call.send({"text": "hi"})
            ...

One reader task per connection routes each frame to its call and never waits on one: a call's
unread lines are bounded by the credit this client grants (returned as the caller iterates), and
`send` waits for the server's credit, so a slow call never holds up the others. The framing is
wsproxy.mux._frames, shared with the server.

Each call asks for the `wsproxy.status.v1` contract by default (OPEN's "status": true): its STATUS
and TRAILERS frames queue with its lines, so the caller's decoder takes them in order.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any, TypedDict
from urllib.parse import urljoin, urlsplit

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from wsproxy import closecodes
from wsproxy._status import Control, parse_control
from wsproxy.client._decoder import ResponseDecoder
from wsproxy.client._errors import CallError, ConnectError, ConnectionLostError
from wsproxy.client._response import ResponseStream
from wsproxy.client._single import ConnectOptions, encode_message, open_websocket, with_method, with_timeout
from wsproxy.mux import _frames as _mux
from wsproxy.mux._frames import FrameType, MuxProtocolError

if TYPE_CHECKING:
    from typing_extensions import Unpack


class MuxCallOptions(TypedDict, total=False):
    """The keyword options of a call on a mux connection."""

    method: str | None
    headers: dict[str, str] | None
    raw: bool
    timeout: float | None
    status: bool


class MuxCall(ResponseStream):
    """One call on a mux connection: the same API as `Call` (send, close_send, iterate, result, close)."""

    def __init__(
        self, connection: MuxConnection, call_id: int, *, raw: bool = False, status: bool = False
    ) -> None:
        super().__init__(ResponseDecoder(raw=raw, status=status))
        self._connection = connection
        self.call_id = call_id
        # Lines and control frames received, not yet read.
        self._lines: collections.deque[str | bytes | Control] = collections.deque()
        self._credit = _mux.SendCredit()  # what we may send
        self._granted = _mux.ReceiveCredit()  # what the server may send
        self._wakeup: asyncio.Future[None] | None = None
        self._end: tuple[int | None, str] | None = None  # END (or the socket's end) arrived
        self._send_closed = False

    @property
    def subprotocol(self) -> str | None:
        return _mux.SUBPROTOCOL

    async def send(self, message: Any) -> None:
        """Send one request message: str as text, bytes as binary, anything else as JSON.

        Waits while the call has no flow-control credit (the app is not reading).

        Raises:
            ValueError: the message is empty (that is the half-close: use close_send()).
            RuntimeError: close_send() was already called.
            CallError: the call had already ended; the error says how.
        """
        if self._send_closed:
            raise RuntimeError("send() after close_send(): the request body has already ended")
        data = encode_message(message)
        payload = data.encode() if isinstance(data, str) else data
        await self._send_frame(FrameType.MESSAGE, payload)

    async def send_last(self, message: Any) -> None:
        """Send the last request message and the half-close, in one frame (what unary calls do)."""
        if self._send_closed:
            raise RuntimeError("send() after close_send(): the request body has already ended")
        data = encode_message(message)
        payload = data.encode() if isinstance(data, str) else data
        self._send_closed = True
        # It costs what MESSAGE and HALF_CLOSE would: the payload plus 1, and 1.
        await self._send_frame(FrameType.LAST_MESSAGE, payload, extra_cost=1)

    async def close_send(self) -> None:
        """End the request body while still receiving the response."""
        if self._send_closed:
            return
        self._send_closed = True
        with contextlib.suppress(CallError):  # already ended: the outcome surfaces when reading
            await self._send_frame(FrameType.HALF_CLOSE, b"")

    async def close(self) -> None:
        """Abandon the call (CANCEL); the app sees the client go away. The socket stays open."""
        if self._end is None and not self._ended:
            self._finish(closecodes.NORMAL, "")
            self._connection._forget(self)
            with contextlib.suppress(ConnectionClosed):
                await self._connection._write(_mux.encode(FrameType.CANCEL, self.call_id))
        self._ended = True

    async def _send_frame(self, kind: FrameType, payload: bytes, *, extra_cost: int = 0) -> None:
        while not self._credit.available and self._end is None:
            await self._wait()
        if self._end is not None:
            await self._raise_outcome()
        self._credit.spend(len(payload) + extra_cost)
        try:
            await self._connection._write(_mux.encode(kind, self.call_id, payload))
        except ConnectionClosed:
            await self._raise_outcome()

    async def _raise_outcome(self) -> None:
        """The call ended before a send: its outcome explains why better than "closed"."""
        while not self._ended:
            await self._advance()
        if self._error is not None:
            raise self._error
        raise CallError(
            "cannot send: the call has already ended", code=self.close_code, reason=self.close_reason
        )

    async def _advance(self) -> None:
        """Decode one received line (returning its credit) or control frame, or take the end, or wait."""
        if self._lines:
            line = self._lines.popleft()
            try:
                if isinstance(line, Control):
                    self._decoder.control(line)
                else:
                    self._ready.extend(self._decoder.line(line))
            except CallError as error:  # an {"error": ...} line, or a broken status contract
                self._ended, self._error = True, error
            if isinstance(line, Control):
                return  # control frames cost no credit
            increment = self._granted.consumed(len(line))
            if increment and self._end is None:
                with contextlib.suppress(ConnectionClosed):
                    await self._connection._write(_mux.encode_window(self.call_id, increment))
        elif self._end is not None:
            self._ended = True
            self.close_code, self.close_reason = self._end
            messages, self._error = self._decoder.close(*self._end)
            self._ready.extend(messages)
        else:
            await self._wait()

    async def _wait(self) -> None:
        self._wakeup = asyncio.get_running_loop().create_future()
        try:
            await self._wakeup
        finally:
            self._wakeup = None

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    # Called by the connection's reader.

    def _line(self, line: str | bytes) -> None:
        self._granted.received(len(line))  # raises FlowControlError: the server broke the rules
        self._lines.append(line)
        self._wake()

    def _control(self, control: Control) -> None:
        self._lines.append(control)
        self._wake()

    def _grant(self, increment: int) -> None:
        self._credit.grant(increment)
        self._wake()

    def _finish(self, code: int | None, reason: str) -> None:
        if self._end is None:
            self._end = (code, reason)
        self._wake()


class MuxConnection:
    """One WebSocket carrying many calls. Make calls with the same helpers as the module's."""

    def __init__(self, websocket: ClientConnection, url: str) -> None:
        self._websocket = websocket
        self._url = url
        self._calls: dict[int, MuxCall] = {}
        self._next_id = 1
        self._reader = asyncio.get_running_loop().create_task(self._read())
        self.close_code: int | None = None
        self.close_reason = ""

    @property
    def open_calls(self) -> int:
        return len(self._calls)

    @contextlib.asynccontextmanager
    async def connect(self, path: str, **options: Unpack[MuxCallOptions]) -> AsyncIterator[MuxCall]:
        """Open a call to `path` (with query; relative to the connection's URL) on this socket.

        Leaving the block before the call ended cancels it; the socket stays open.
        """
        call = await self.open(path, **options)
        try:
            yield call
        finally:
            await call.close()

    async def open(self, path: str, **options: Unpack[MuxCallOptions]) -> MuxCall:
        """Open a call and return it; close() it (or read it to the end) when done."""
        if self._reader.done():
            raise ConnectionLostError("the multiplexed connection is closed", code=self.close_code)
        timeout = options.get("timeout")
        target = with_timeout(self._target(path, options.get("method")), timeout)
        headers = list((options.get("headers") or {}).items())
        call_id = self._next_id
        self._next_id += 1
        status = options.get("status", True)
        call = MuxCall(self, call_id, raw=options.get("raw", False), status=status)
        call._start_deadline(timeout)
        self._calls[call_id] = call
        try:
            await self._write(_mux.encode_open(call_id, target, headers, status=status))
        except ConnectionClosed:
            call._finish(*close_of_connection(self))
        return call

    async def unary(self, path: str, message: Any = None, **options: Unpack[MuxCallOptions]) -> Any:
        """Send `message` (None: no message), half-close, and return the one response message."""
        async with self.connect(path, **options) as call:
            if message is not None:
                await call.send_last(message)
            else:
                await call.close_send()
            return await call.result()

    async def server_stream(
        self, path: str, message: Any = None, **options: Unpack[MuxCallOptions]
    ) -> AsyncIterator[Any]:
        """Send `message` (None: no message), half-close, and yield the response messages."""
        async with self.connect(path, **options) as call:
            if message is not None:
                await call.send_last(message)
            else:
                await call.close_send()
            async for item in call:
                yield item

    async def client_stream(
        self,
        path: str,
        messages: Iterable[Any] | AsyncIterable[Any],
        **options: Unpack[MuxCallOptions],
    ) -> Any:
        """Send every message, half-close, and return the one response message."""
        async with self.connect(path, **options) as call:
            if isinstance(messages, AsyncIterable):
                async for message in messages:
                    await call.send(message)
            else:
                for message in messages:
                    await call.send(message)
            await call.close_send()
            return await call.result()

    def bidi(
        self, path: str, **options: Unpack[MuxCallOptions]
    ) -> contextlib.AbstractAsyncContextManager[MuxCall]:
        """A bidirectional call: `async with conn.bidi(path) as call:` then send and iterate at will."""
        return self.connect(path, **options)

    async def close(self) -> None:
        """Close the socket; calls still open end with ConnectionLostError."""
        await self._websocket.close()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    def _target(self, path: str, method: str | None) -> str:
        if method is None and path.startswith("/") and not path.startswith("//"):
            return path  # already a request target on this host (the server checks its characters)
        url = with_method(urljoin(self._url, path), method)
        parts, base = urlsplit(url), urlsplit(self._url)
        if parts.netloc != base.netloc:
            raise ValueError(f"{path!r} is not on this connection's host {base.netloc}")
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    async def _write(self, frame: bytes) -> None:
        await self._websocket.send(frame)

    def _forget(self, call: MuxCall) -> None:
        self._calls.pop(call.call_id, None)

    async def _read(self) -> None:
        try:
            async for data in self._websocket:
                if isinstance(data, str):
                    raise MuxProtocolError("text frame on a wsproxy.mux.v1 socket")
                self._dispatch(_mux.decode(data, _mux.SERVER_FRAMES))
        except (MuxProtocolError, _mux.CallRefused) as error:
            # A server that breaks the framing or the flow control: nothing on this socket is safe.
            await self._websocket.close(_mux.PROTOCOL_ERROR, error.reason[:120])
        except ConnectionClosed:
            pass
        finally:
            self.close_code, self.close_reason = close_of_connection(self)
            code = self.close_code
            # A socket that closes under an open call is a lost call, whatever the socket's code.
            for call in self._calls.values():
                call._finish(None if code in (None, closecodes.NORMAL) else code, self.close_reason)
            self._calls.clear()

    def _dispatch(self, frame: _mux.Frame) -> None:
        call = self._calls.get(frame.call_id)
        if call is None:
            return  # a call we cancelled: frames in flight are dropped
        if frame.type is FrameType.LINE:
            try:
                text = frame.payload.decode()
            except UnicodeDecodeError:
                raise MuxProtocolError("LINE frame that is not UTF-8") from None
            call._line(text)
        elif frame.type is FrameType.LINE_BINARY:
            call._line(frame.payload)
        elif frame.type is FrameType.WINDOW:
            call._grant(_mux.parse_window(frame.payload))
        elif frame.type in _CONTROL_FRAMES:
            call._control(_control_of(frame))
        else:  # END
            del self._calls[frame.call_id]
            call._finish(*_mux.parse_end(frame.payload))


_CONTROL_FRAMES = {FrameType.STATUS: "status", FrameType.TRAILERS: "trailers"}


def _control_of(frame: _mux.Frame) -> Control:
    """The status or trailers a STATUS or TRAILERS frame carries. Raises MuxProtocolError."""
    try:
        control = parse_control(frame.payload)
    except ValueError:
        control = None
    if control is None or control.kind != _CONTROL_FRAMES[frame.type]:
        raise MuxProtocolError(f"{frame.type.name} frame without a {_CONTROL_FRAMES[frame.type]} object")
    return control


def close_of_connection(connection: MuxConnection) -> tuple[int | None, str]:
    websocket = connection._websocket
    if websocket.close_code is None:
        return None, ""
    return websocket.close_code, websocket.close_reason or ""


@contextlib.asynccontextmanager
async def connect_mux(url: str, **options: Unpack[ConnectOptions]) -> AsyncIterator[MuxConnection]:
    """Open one WebSocket to `url` (ws://, wss://, http:// or https://) for many calls.

    Takes connect()'s options that describe the connection: token, headers, origin, max_size (the
    largest frame accepted), open_timeout and compression; the method, raw, status and timeout
    options belong to each call.

    Raises:
        HTTPStatusError: the server refused the handshake with an HTTP status (`code` is None).
        ConnectError: the connection could not be opened, or the server does not speak wsproxy.mux.v1.
    """
    connection_options: ConnectOptions = {
        key: value for key, value in options.items() if key not in ("method", "raw", "status", "timeout")
    }  # type: ignore[assignment]
    websocket = await open_websocket(url, connection_options, extra_subprotocols=(_mux.SUBPROTOCOL,))
    if websocket.subprotocol != _mux.SUBPROTOCOL:
        await websocket.close()
        raise ConnectError(f"{url} did not accept the {_mux.SUBPROTOCOL} subprotocol (an older wsproxy?)")
    connection = MuxConnection(websocket, with_method(url, None))
    try:
        yield connection
    finally:
        await connection.close()
