"""JSON <-> protobuf for flat messages, without json_format's per-field machinery, same output.

Theory of operation: json_format walks descriptors and dispatches on field types for every
message, which costs several microseconds even for a two-field message — as much as the rest of
an in-process call. Most streamed messages are flat: singular or repeated scalars, strings, bytes
and enums, no nested messages, maps, oneofs or presence. For such a type a plan is compiled once
per descriptor (cached), and applied with plain getattr/setattr.

Both directions are conservative. Decoding takes the fast path only when every key names a field
once and every value already has exactly the Python type and range json_format would accept
unchanged; anything else (strings for numbers, nulls, unknown keys, lone surrogates, out of range)
returns False untouched, and the caller runs json_format, which produces the same message or its
usual error. Encoding reproduces json_format's values (int64 as strings, enum names, base64 bytes,
shortest float32, "NaN"/"Infinity") in declaration order, only with `emit_unpopulated` (grpc-gateway's
default). tests/unit/test_gateway_fastjson.py checks both against json_format on random messages.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.internal import type_checkers
from google.protobuf.message import Message

F = FieldDescriptor
_INT_RANGES = {
    F.TYPE_INT32: (-(2**31), 2**31 - 1),
    F.TYPE_SINT32: (-(2**31), 2**31 - 1),
    F.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    F.TYPE_UINT32: (0, 2**32 - 1),
    F.TYPE_FIXED32: (0, 2**32 - 1),
    F.TYPE_INT64: (-(2**63), 2**63 - 1),
    F.TYPE_SINT64: (-(2**63), 2**63 - 1),
    F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    F.TYPE_UINT64: (0, 2**64 - 1),
    F.TYPE_FIXED64: (0, 2**64 - 1),
}
_INT64 = {F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64, F.TYPE_UINT64, F.TYPE_FIXED64}
_FLOAT_MAX = 3.4028234663852886e38
_EXACT_DOUBLE = 2**53

Accept = Callable[[Any], bool]
Convert = Callable[[Any], Any]
Decoder = Callable[[Message, Any], bool]
Encoder = Callable[[Message], dict[str, Any]]


def _flat_fields(descriptor: Any) -> list[FieldDescriptor] | None:
    """The fields of a flat message type, or None if the type is not flat."""
    if descriptor.full_name.startswith("google.protobuf.") or descriptor.GetOptions().map_entry:
        return None
    if descriptor.extension_ranges:  # json_format prints set extensions too
        return None
    fields = list(descriptor.fields)
    for field in fields:
        if field.message_type is not None or field.containing_oneof is not None:
            return None
        if field.has_presence and not field.is_repeated:
            return None
        if field.type == F.TYPE_ENUM and (
            field.enum_type.is_closed or field.enum_type.full_name == "google.protobuf.NullValue"
        ):
            return None
        if field.type == F.TYPE_GROUP:
            return None
    return fields


# -- decoding --


def _accept_string(value: Any) -> bool:
    if type(value) is not str:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")  # json.loads lets lone surrogates through; json_format refuses them
    except UnicodeEncodeError:
        return False
    return True


def _scalar_acceptor(field: Any) -> tuple[Accept, Convert | None] | None:
    kind = field.type
    if kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]
        return (lambda value: type(value) is int and low <= value <= high), None
    if kind == F.TYPE_BOOL:
        return (lambda value: type(value) is bool), None
    if kind == F.TYPE_STRING:
        return _accept_string, None
    if kind == F.TYPE_DOUBLE:
        return (
            lambda value: (
                (type(value) is float and math.isfinite(value))
                or (type(value) is int and -_EXACT_DOUBLE <= value <= _EXACT_DOUBLE)
            )
        ), None
    if kind == F.TYPE_FLOAT:
        return (
            lambda value: (
                (type(value) is float or type(value) is int)
                and math.isfinite(value)
                and -_FLOAT_MAX <= value <= _FLOAT_MAX
                and (type(value) is float or -_EXACT_DOUBLE <= value <= _EXACT_DOUBLE)
            )
        ), None
    if kind == F.TYPE_ENUM:
        by_name = {value.name: value.number for value in field.enum_type.values}
        return (lambda value: type(value) is str and value in by_name), by_name.__getitem__
    return None  # bytes: json_format's base64 rules are not worth repeating here


def compile_decoder(descriptor: Any) -> Decoder | None:
    fields = _flat_fields(descriptor)
    if fields is None:
        return None
    slots: dict[str, tuple[str, Accept, Convert | None, bool]] = {}
    for field in fields:
        acceptor = _scalar_acceptor(field)
        if acceptor is None:
            return None
        slot = (field.name, acceptor[0], acceptor[1], bool(field.is_repeated))
        slots[field.name] = slot
        slots[field.json_name] = slot

    def decode(message: Message, value: Any) -> bool:
        if type(value) is not dict:
            return False
        seen: set[str] = set()
        for key, item in value.items():
            slot = slots.get(key)
            if slot is None or slot[0] in seen:
                return False
            seen.add(slot[0])
            accept = slot[1]
            if slot[3]:
                if type(item) is not list or not all(accept(element) for element in item):
                    return False
            elif not accept(item):
                return False
        for key, item in value.items():
            name, _, convert, repeated = slots[key]
            if repeated:
                getattr(message, name).extend(item if convert is None else [convert(e) for e in item])
            else:
                setattr(message, name, item if convert is None else convert(item))
        return True

    return decode


# -- encoding --


def _identity(value: Any) -> Any:
    return value


def _double(value: float) -> Any:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _float(value: float) -> Any:
    return type_checkers.ToShortestFloat(value) if math.isfinite(value) else _double(value)


def _bytes(value: bytes) -> str:
    return base64.b64encode(value).decode("utf-8")


def _converter(field: Any) -> Convert:
    kind = field.type
    if kind in _INT64:
        return str
    if kind == F.TYPE_DOUBLE:
        return _double
    if kind == F.TYPE_FLOAT:
        return _float
    if kind == F.TYPE_BYTES:
        return _bytes
    if kind == F.TYPE_ENUM:
        names = {value.number: value.name for value in field.enum_type.values}
        return lambda number: names.get(number, number)
    return _identity


def compile_encoder(descriptor: Any, *, use_proto_names: bool) -> Encoder | None:
    """For `emit_unpopulated` output only: every field is printed, in declaration order."""
    fields = _flat_fields(descriptor)
    if fields is None:
        return None
    slots = [
        (
            field.name if use_proto_names else field.json_name,
            field.name,
            None if _converter(field) is _identity else _converter(field),
            bool(field.is_repeated),
        )
        for field in fields
    ]

    def encode(message: Message) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, name, convert, repeated in slots:
            value = getattr(message, name)
            if repeated:
                out[key] = list(value) if convert is None else [convert(element) for element in value]
            else:
                out[key] = value if convert is None else convert(value)
        return out

    return encode


class FastJSON:
    """Per-descriptor decoders and encoders, compiled on first use (None: use json_format)."""

    def __init__(self, *, use_proto_names: bool = False) -> None:
        self._use_proto_names = use_proto_names
        self._decoders: dict[str, Decoder | None] = {}
        self._encoders: dict[str, Encoder | None] = {}

    def decode_into(self, message: Message, value: Any) -> bool:
        """Set `message` from a JSON object and return True, or return False having changed nothing."""
        name = message.DESCRIPTOR.full_name
        try:
            decoder = self._decoders[name]
        except KeyError:
            decoder = self._decoders[name] = compile_decoder(message.DESCRIPTOR)
        return decoder is not None and decoder(message, value)

    def to_json(self, message: Message) -> dict[str, Any] | None:
        """The emit-unpopulated JSON object of a flat message in declaration order, or None."""
        name = message.DESCRIPTOR.full_name
        try:
            encoder = self._encoders[name]
        except KeyError:
            encoder = self._encoders[name] = compile_encoder(
                message.DESCRIPTOR, use_proto_names=self._use_proto_names
            )
        return None if encoder is None else encoder(message)
