"""Response messages -> JSON bytes, as grpc-gateway v2's default marshaler prints them.

grpc-gateway prints with protobuf-go's protojson and `EmitUnpopulated: true`
(runtime/marshaler_registry.go). Python's json_format gets the values right but not the shape:
it lists set fields first (so a stream's first line and later lines could differ in order), and
leaves out unset fields that have presence. protojson instead walks the fields in declaration
order (order.IndexNameFieldOrder) and, in its unpopulatedFieldRanger, prints an unset field with
presence (a message field, a proto2 optional) as `null`, and leaves out unset members of oneofs,
including proto3 `optional` fields (their synthetic oneof). This module arranges json_format's
dict that way, with the per-descriptor plan computed once.

`response_body` (HttpRule.response_body) picks one field of the response to print instead of the
whole message, as the generated XXX_ResponseBody does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from wsproxy.gateway._fastjson import FastJSON

# Built once: json.dumps with options builds a new encoder per call (1.6 µs of a 4 µs dumps).
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

# Messages whose JSON form is not an object of their fields (or whose content is arranged elsewhere).
_SPECIAL = frozenset(
    f"google.protobuf.{name}"
    for name in [
        "Any",
        "Timestamp",
        "Duration",
        "FieldMask",
        "Struct",
        "Value",
        "ListValue",
        "Empty",
        "DoubleValue",
        "FloatValue",
        "Int64Value",
        "UInt64Value",
        "Int32Value",
        "UInt32Value",
        "BoolValue",
        "StringValue",
        "BytesValue",
    ]
)


@dataclass(frozen=True)
class _Slot:
    key: str
    field: FieldDescriptor
    nested: Any  # a message (or map value) whose JSON object is arranged too
    container: str  # "", "list" or "map"
    map_key_kind: str  # "number", "bool" or "string" (how map keys sort)
    null_when_unset: bool
    floats: bool  # values are double/float (or their wrappers): spelled as protojson spells them


def _plan(descriptor: Any, use_proto_names: bool) -> tuple[_Slot, ...]:
    slots = []
    for field in descriptor.fields:
        message = field.message_type
        container, key_kind = "", "string"
        if message is not None and message.GetOptions().map_entry:
            key_type = message.fields_by_name["key"].cpp_type
            if key_type == FieldDescriptor.CPPTYPE_BOOL:
                key_kind = "bool"
            elif key_type != FieldDescriptor.CPPTYPE_STRING:
                key_kind = "number"
            container, message = "map", message.fields_by_name["value"].message_type
        elif field.is_repeated:
            container = "list"
        nested = message if message is not None and message.full_name not in _SPECIAL else None
        null_when_unset = field.has_presence and field.containing_oneof is None and not field.is_repeated
        value_field = field.message_type.fields_by_name["value"] if container == "map" else field
        floats = value_field.cpp_type in _FLOAT_TYPES or (
            message is not None and message.full_name in _FLOAT_WRAPPERS
        )
        slots.append(
            _Slot(
                field.name if use_proto_names else field.json_name,
                field,
                nested,
                container,
                key_kind,
                null_when_unset,
                floats,
            )
        )
    return tuple(slots)


_FLOAT_TYPES = (FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT)
_FLOAT_WRAPPERS = frozenset({"google.protobuf.DoubleValue", "google.protobuf.FloatValue"})


def _go_float(value: Any) -> Any:
    """protojson writes an integral double as Go's strconv 'f' does: `0`, `3`, not Python's `0.0`.
    Below 2^53 the integer is exact, so int() prints the same digits; other values keep repr()."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _go_floats(item: Any) -> Any:
    if isinstance(item, list):
        return [_go_float(element) for element in item]
    if isinstance(item, dict):
        return {key: _go_float(element) for key, element in item.items()}
    return _go_float(item)


_MAP_KEY_ORDER: dict[str, Any] = {
    "string": lambda entry: entry[0],
    "number": lambda entry: int(entry[0]),
    "bool": lambda entry: entry[0] == "true",
}


class MessageEncoder:
    """Encodes messages of any type; `emit_unpopulated` and `use_proto_names` as in protojson."""

    def __init__(self, *, emit_unpopulated: bool = True, use_proto_names: bool = False) -> None:
        self._emit_unpopulated = emit_unpopulated
        self._use_proto_names = use_proto_names
        self._plans: dict[str, tuple[_Slot, ...]] = {}
        # Flat types (scalars only: no presence, so no nulls to add) skip json_format: same output.
        self._fast = FastJSON(use_proto_names=use_proto_names) if emit_unpopulated else None

    def to_json(self, message: Message, response_body: str = "") -> Any:
        """The JSON value of `message` (or of its `response_body` field), as Python objects."""
        if response_body:
            return self._field_value(message, response_body)
        if self._fast is not None:
            fast = self._fast.to_json(message)
            if fast is not None:
                return fast
        as_dict = json_format.MessageToDict(
            message,
            always_print_fields_with_no_presence=self._emit_unpopulated,
            preserving_proto_field_name=self._use_proto_names,
        )
        return self._arrange(as_dict, message.DESCRIPTOR)

    def encode(self, message: Message, response_body: str = "") -> bytes:
        return _JSON.encode(self.to_json(message, response_body)).encode()

    def _field_value(self, message: Message, path: str) -> Any:
        *parents, last = path.split(".")
        for name in parents:
            message = getattr(message, name)
        field = message.DESCRIPTOR.fields_by_name[last]
        if field.message_type is not None and not field.is_repeated:
            return self.to_json(getattr(message, last))  # an unset message prints its defaults, as in Go
        whole = self.to_json(message)
        key = last if self._use_proto_names else field.json_name
        if key in whole:
            return whole[key]
        full = json_format.MessageToDict(
            message, always_print_fields_with_no_presence=True, preserving_proto_field_name=True
        )
        return full.get(last)

    def _arrange(self, value: dict[str, Any], descriptor: Any) -> dict[str, Any]:
        plan = self._plans.get(descriptor.full_name)
        if plan is None:
            plan = self._plans[descriptor.full_name] = _plan(descriptor, self._use_proto_names)
        arranged: dict[str, Any] = {}
        if "@type" in value:
            arranged["@type"] = value["@type"]
        for slot in plan:
            if slot.key in value:
                item = value[slot.key]
                if slot.container == "map":
                    # order.GenericKeyOrder: protojson sorts map keys (numbers by value).
                    entries = sorted(item.items(), key=_MAP_KEY_ORDER[slot.map_key_kind])
                    if slot.nested is not None:
                        entries = [(key, self._arrange(element, slot.nested)) for key, element in entries]
                    item = dict(entries)
                elif slot.nested is not None:
                    if slot.container == "list":
                        item = [self._arrange(element, slot.nested) for element in item]
                    else:
                        item = self._arrange(item, slot.nested)
                if slot.floats:
                    item = _go_floats(item)
                arranged[slot.key] = item
            elif slot.null_when_unset and self._emit_unpopulated:
                arranged[slot.key] = None
        for key, item in value.items():  # extensions, kept after the fields as protojson does
            arranged.setdefault(key, item)
        return arranged
