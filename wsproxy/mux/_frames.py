"""The `wsproxy.mux.v1` framing: many calls on one WebSocket, without I/O.

Shared by the middleware's mux session and the Python client. Every mux frame is one binary
WebSocket message: a 5-byte header, then the payload.

    byte 0      frame type (see FrameType)
    bytes 1-4   call id, unsigned 32-bit big-endian, chosen by the client: 1, 2, 3, ... increasing
    bytes 5-    payload: raw bytes, never parsed by the framing (OPEN's is a small JSON object)

Client to server: OPEN starts a call (its payload says the path with query and optional per-call
headers), MESSAGE carries one request message (it becomes payload + "\\n" in the request body, as
a single-socket message does), HALF_CLOSE ends the request body, LAST_MESSAGE is both at once (a
unary call is OPEN + LAST_MESSAGE), CANCEL abandons the call.
Server to client: LINE carries one response line (LINE_BINARY when it is not UTF-8), END ends the
call with a close code and reason from the single-socket table (1000, 4000 + status, 1008, ...).
A call whose OPEN said `"status": true` also gets STATUS (the HTTP status and headers, before any
LINE) and, when the app sent trailers, TRAILERS (before END); their payload is wsproxy.status.v1's
JSON (wsproxy/_status.py), and like END they cost no credit.

Flow control, per call and per direction, in the manner of HTTP/2: each side starts with
INITIAL_WINDOW bytes of credit to send; a MESSAGE or LINE costs its payload length plus 1 (the
newline it stands for, so empty messages cost too); a side may send while its credit is above zero
(so one message may overdraw it), and WINDOW frames, in either direction, return credit as the
receiver consumes. A receiver therefore never holds more than INITIAL_WINDOW plus one message per
call, and a sender that breaks the rule is refused on that call (FlowControlError), never buffered.

Errors split the same way: a frame that cannot be attributed to a call (too short, unknown type, an
id that was never opened) is a MuxProtocolError for the whole socket (close 1002); a bad frame of a
known call is a CallRefused that ends only that call.
"""

from __future__ import annotations

import enum
import json
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from wsproxy._handshake import HOP_BY_HOP
from wsproxy.closecodes import truncate_reason

SUBPROTOCOL = "wsproxy.mux.v1"
HEADER_SIZE = 5
INITIAL_WINDOW = 65536
MAX_WINDOW = (1 << 31) - 1  # credit above this is a flow-control error, as in HTTP/2
MAX_CALL_ID = (1 << 32) - 1
MAX_OPEN_PAYLOAD = 16384
MAX_CALL_HEADERS = 64

PROTOCOL_ERROR = 1002  # RFC 6455: the socket-level answer to a frame that cannot be attributed
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013

_HEADER = struct.Struct("!BI")
_INCREMENT = struct.Struct("!I")
_CODE = struct.Struct("!H")
_TOKEN_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_FIELD_VALUE_RE = re.compile(r"^[^\x00-\x08\x0a-\x1f\x7f]*$")  # no CR, LF, NUL or other controls
_PATH_RE = re.compile(r"^/[\x21-\x7e]*$")  # printable ASCII, no spaces: a request target

# Per-call headers never replace these: they describe the connection, and the connection's
# handshake already decided Origin, cookie and Bearer policy.
CONNECTION_HEADERS = HOP_BY_HOP | {"host", "origin", "cookie"}


class FrameType(enum.IntEnum):
    OPEN = 0x01
    MESSAGE = 0x02
    HALF_CLOSE = 0x03
    LAST_MESSAGE = 0x06  # MESSAGE then HALF_CLOSE, in one frame
    CANCEL = 0x04
    WINDOW = 0x05  # both directions
    LINE = 0x11
    LINE_BINARY = 0x12
    END = 0x13
    STATUS = 0x14
    TRAILERS = 0x15


CLIENT_FRAMES = frozenset(
    {
        FrameType.OPEN,
        FrameType.MESSAGE,
        FrameType.HALF_CLOSE,
        FrameType.LAST_MESSAGE,
        FrameType.CANCEL,
        FrameType.WINDOW,
    }
)
SERVER_FRAMES = frozenset(
    {
        FrameType.LINE,
        FrameType.LINE_BINARY,
        FrameType.END,
        FrameType.WINDOW,
        FrameType.STATUS,
        FrameType.TRAILERS,
    }
)


class MuxProtocolError(Exception):
    """A frame that breaks the framing and cannot be pinned on one call: close the socket with 1002."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CallRefused(Exception):
    """A frame that ends only its call, with END `code` and `reason`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class FlowControlError(CallRefused):
    def __init__(self, reason: str) -> None:
        super().__init__(POLICY_VIOLATION, reason)


@dataclass(frozen=True, slots=True)
class Frame:
    type: FrameType
    call_id: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class OpenRequest:
    """What an OPEN frame asks for: the request target, the per-call headers, and whether the client
    wants the STATUS and TRAILERS frames."""

    path: str  # percent-encoded path, as on an HTTP request line
    query: str
    headers: tuple[tuple[str, str], ...]
    status: bool = False


# Encoding.


def encode(kind: FrameType, call_id: int, payload: bytes = b"") -> bytes:
    return _HEADER.pack(kind, call_id) + payload


def encode_open(
    call_id: int, target: str, headers: Iterable[tuple[str, str]] = (), *, status: bool = False
) -> bytes:
    body: dict[str, object] = {"path": target}
    pairs = [[name, value] for name, value in headers]
    if pairs:
        body["headers"] = pairs
    if status:
        body["status"] = True
    return encode(FrameType.OPEN, call_id, json.dumps(body, separators=(",", ":")).encode())


def encode_window(call_id: int, increment: int) -> bytes:
    return encode(FrameType.WINDOW, call_id, _INCREMENT.pack(increment))


def encode_end(call_id: int, code: int, reason: str = "") -> bytes:
    return encode(FrameType.END, call_id, _CODE.pack(code) + truncate_reason(reason).encode())


def encode_line(call_id: int, line: str | bytes) -> bytes:
    if isinstance(line, str):
        return encode(FrameType.LINE, call_id, line.encode())
    return encode(FrameType.LINE_BINARY, call_id, line)


# Decoding.


def decode(data: bytes, expected: frozenset[FrameType]) -> Frame:
    """Split one WebSocket message into a frame. Raises MuxProtocolError."""
    if len(data) < HEADER_SIZE:
        raise MuxProtocolError(f"mux frame of {len(data)} bytes: shorter than its header")
    kind, call_id = _HEADER.unpack_from(data)
    try:
        frame_type = FrameType(kind)
    except ValueError:
        raise MuxProtocolError(f"unknown mux frame type {kind:#04x}") from None
    if frame_type not in expected:
        raise MuxProtocolError(f"mux frame {frame_type.name} not allowed in this direction")
    if call_id == 0:
        raise MuxProtocolError("mux call id 0 is reserved")
    return Frame(frame_type, call_id, data[HEADER_SIZE:])


def parse_window(payload: bytes) -> int:
    if len(payload) != _INCREMENT.size:
        raise CallRefused(POLICY_VIOLATION, "WINDOW frame payload must be 4 bytes")
    (increment,) = _INCREMENT.unpack(payload)
    if increment == 0:
        raise FlowControlError("WINDOW increment of 0")
    return int(increment)


def parse_end(payload: bytes) -> tuple[int, str]:
    if len(payload) < _CODE.size:
        raise MuxProtocolError("END frame without a close code")
    (code,) = _CODE.unpack_from(payload)
    return int(code), payload[_CODE.size :].decode(errors="replace")


def parse_open(payload: bytes) -> OpenRequest:
    """The OPEN frame's JSON: {"path": "/v1/x?q=1", "headers": [["name", "value"], ...], "status": true}.

    Raises CallRefused (1008) with a reason that names what was wrong.
    """
    if len(payload) > MAX_OPEN_PAYLOAD:
        raise CallRefused(POLICY_VIOLATION, f"OPEN payload over {MAX_OPEN_PAYLOAD} bytes")
    try:
        body = json.loads(payload)
    except ValueError:
        raise CallRefused(POLICY_VIOLATION, "OPEN payload is not JSON") from None
    if not isinstance(body, dict):
        raise CallRefused(POLICY_VIOLATION, "OPEN payload must be a JSON object")
    target = body.get("path")
    if not isinstance(target, str) or not _PATH_RE.match(target):
        raise CallRefused(POLICY_VIOLATION, 'OPEN "path" must be a request target starting with "/"')
    path, _, query = target.partition("?")
    status = body.get("status", False)
    if not isinstance(status, bool):
        raise CallRefused(POLICY_VIOLATION, 'OPEN "status" must be true or false')
    return OpenRequest(path, query, _parse_headers(body.get("headers", [])), status)


def _parse_headers(raw: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, list) or len(raw) > MAX_CALL_HEADERS:
        raise CallRefused(
            POLICY_VIOLATION, f'OPEN "headers" must be a list of at most {MAX_CALL_HEADERS} pairs'
        )
    headers = []
    for pair in raw:
        if not (
            isinstance(pair, list)
            and len(pair) == 2
            and isinstance(pair[0], str)
            and isinstance(pair[1], str)
        ):
            raise CallRefused(POLICY_VIOLATION, 'OPEN "headers" items must be [name, value] strings')
        name, value = pair[0].lower(), pair[1]
        if not _TOKEN_RE.match(name) or not _FIELD_VALUE_RE.match(value) or not value.isascii():
            raise CallRefused(POLICY_VIOLATION, "OPEN header with an invalid name or value")
        if name in CONNECTION_HEADERS or name.startswith("sec-websocket-"):
            raise CallRefused(POLICY_VIOLATION, f"header {name!r} is the connection's, not a call's")
        headers.append((name, value))
    return tuple(headers)


def call_headers(
    connection: Sequence[tuple[bytes, bytes]], per_call: Sequence[tuple[str, str]]
) -> list[tuple[bytes, bytes]]:
    """The connection's handshake headers with the call's own ones replacing those of the same name."""
    if not per_call:
        return list(connection)
    names = {name.encode() for name, _ in per_call}
    kept = [(name, value) for name, value in connection if name.lower() not in names]
    return kept + [(name.encode(), value.encode()) for name, value in per_call]


def cost(payload_size: int) -> int:
    """The credit a MESSAGE or LINE of this payload size uses: its bytes plus the newline."""
    return payload_size + 1


# Flow control.


class SendCredit:
    """What this side may still send on one call. Send while `available`; grant() on WINDOW."""

    __slots__ = ("credit",)

    def __init__(self, initial: int = INITIAL_WINDOW) -> None:
        self.credit = initial

    @property
    def available(self) -> bool:
        return self.credit > 0

    def spend(self, payload_size: int) -> None:
        self.credit -= cost(payload_size)

    def grant(self, increment: int) -> None:
        """Raises FlowControlError when the credit would exceed MAX_WINDOW."""
        if self.credit + increment > MAX_WINDOW:
            raise FlowControlError("WINDOW increment overflows the credit")
        self.credit += increment


class ReceiveCredit:
    """What the peer may still send on one call, and when to return credit to it."""

    __slots__ = ("owed", "remaining", "window")

    def __init__(self, window: int = INITIAL_WINDOW) -> None:
        self.window = window
        self.remaining = window  # the peer's credit, as this side counts it
        self.owed = 0  # consumed but not yet returned

    def received(self, payload_size: int) -> None:
        """Account for one MESSAGE or LINE. Raises FlowControlError if the peer had no credit left."""
        if self.remaining <= 0:
            raise FlowControlError("flow control: message sent without credit")
        self.remaining -= cost(payload_size)

    def consumed(self, payload_size: int) -> int:
        """The receiver took one message: the WINDOW increment to send now, or 0 to wait for more.

        Credit goes back in batches of half a window, as HTTP/2 implementations do, so a stream of
        small messages does not cost one WINDOW frame each.
        """
        self.owed += cost(payload_size)
        if self.owed < self.window // 2:
            return 0
        increment, self.owed = self.owed, 0
        self.remaining += increment
        return increment


class CallIds:
    """The server's view of call ids: new ones must increase; frames of ended calls are ignored."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last = 0

    def open(self, call_id: int) -> None:
        if call_id <= self.last:
            raise MuxProtocolError(f"OPEN of call {call_id}: ids must increase (last was {self.last})")
        self.last = call_id

    def check_unknown(self, call_id: int) -> None:
        """A frame for a call that is not open: fine if it ended (a race), an error if never opened."""
        if call_id > self.last:
            raise MuxProtocolError(f"frame for call {call_id}, which was never opened")
