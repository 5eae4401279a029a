"""Fill request message fields from path variables, query parameters and the JSON body.

Follows grpc-gateway: path variables and query parameters are strings converted to the field's
type; fields are named by proto name or JSON name, nested with dots (`a.b=1`), repeated by
repeating the key (`x=1&x=2`); unknown query parameters are ignored; the body field and the path
variables cannot be set from the query.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Iterable
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

_TRUE = {"true", "t", "1", "True", "TRUE", "T"}
_FALSE = {"false", "f", "0", "False", "FALSE", "F"}
_INT_TYPES = {
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT32,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED32,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED32,
    FieldDescriptor.TYPE_SFIXED64,
}
# Well-known message types whose JSON form is a string (or a wrapped scalar) accepted from a URL.
_STRING_MESSAGES = {
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
}
_WRAPPERS = {
    f"google.protobuf.{name}Value"
    for name in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
}


class FieldError(ValueError):
    """A request field cannot be set from the given value (answered with INVALID_ARGUMENT)."""


def find_field(descriptor: Any, name: str) -> FieldDescriptor | None:
    field: FieldDescriptor | None = descriptor.fields_by_name.get(name)
    if field is not None:
        return field
    return next((field for field in descriptor.fields if field.json_name == name), None)


def _resolve(message: Message, path: str) -> tuple[Message, FieldDescriptor] | None:
    """The message holding the last field of a dotted `path`, and that field; None if unknown."""
    names = path.split(".")
    for name in names[:-1]:
        field = find_field(message.DESCRIPTOR, name)
        if field is None or field.message_type is None or _is_repeated(field):
            return None
        message = getattr(message, field.name)
    field = find_field(message.DESCRIPTOR, names[-1])
    return None if field is None else (message, field)


def _is_repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def _enum_value(enum: EnumDescriptor, text: str) -> int:
    value = enum.values_by_name.get(text)
    if value is not None:
        return int(value.number)
    try:
        number = int(text)
    except ValueError:
        raise FieldError(f"{text!r} is not a value of enum {enum.full_name}") from None
    if number not in enum.values_by_number:
        raise FieldError(f"{number} is not a value of enum {enum.full_name}")
    return number


def _scalar(field: FieldDescriptor, text: str) -> Any:
    kind = field.type
    try:
        if kind in _INT_TYPES:
            return int(text)
        if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            number = float(text)
            if math.isnan(number) and text != "NaN":
                raise ValueError(text)
            return number
    except ValueError:
        raise FieldError(f"field {field.name}: {text!r} is not a number") from None
    if kind == FieldDescriptor.TYPE_BOOL:
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise FieldError(f"field {field.name}: {text!r} is not a boolean")
    if kind == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        return _enum_value(field.enum_type, text)
    if kind == FieldDescriptor.TYPE_BYTES:
        padded = text + "=" * (-len(text) % 4)
        try:
            if "-" in text or "_" in text:
                return base64.urlsafe_b64decode(padded)
            return base64.b64decode(padded, validate=True)
        except (binascii.Error, ValueError):
            raise FieldError(f"field {field.name}: {text!r} is not base64") from None
    return text


def _set_message(field: FieldDescriptor, target: Message, text: str) -> None:
    assert field.message_type is not None
    name = field.message_type.full_name
    if name in _WRAPPERS:
        value = _scalar(field.message_type.fields_by_name["value"], text)
        target.value = value  # type: ignore[attr-defined]
        return
    if name not in _STRING_MESSAGES:
        raise FieldError(f"field {field.name} ({name}) cannot be set from a URL")
    try:
        json_format.ParseDict(text, target)  # type: ignore[arg-type]  # WKTs take their JSON string
    except json_format.ParseError as exc:
        raise FieldError(f"field {field.name}: {exc}") from None


def set_from_strings(message: Message, path: str, values: list[str], *, strict: bool) -> None:
    """Set the field at dotted `path` from URL strings; `strict` makes an unknown field an error."""
    resolved = _resolve(message, path)
    if resolved is None or (
        resolved[1].message_type is not None and resolved[1].message_type.GetOptions().map_entry
    ):
        if strict:
            raise FieldError(f"no field {path!r} in {message.DESCRIPTOR.full_name}")
        return
    holder, field = resolved
    if _is_repeated(field):
        container = getattr(holder, field.name)
        del container[:]
        for text in values:
            if field.message_type is not None:
                _set_message(field, container.add(), text)
            else:
                container.append(_scalar(field, text))
        return
    text = values[-1]
    if field.message_type is not None:
        _set_message(field, getattr(holder, field.name), text)
    else:
        setattr(holder, field.name, _scalar(field, text))


def merge_json(message: Message, body_field: str, value: Any) -> None:
    """Merge a decoded JSON body into the request (`body_field` "*" = the whole message)."""
    try:
        if body_field == "*":
            json_format.ParseDict(value, message, ignore_unknown_fields=True)
            return
        resolved = _resolve(message, body_field)
        if resolved is None:
            raise FieldError(f"no body field {body_field!r} in {message.DESCRIPTOR.full_name}")
        holder, field = resolved
        json_format.ParseDict({field.json_name: value}, holder, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise FieldError(str(exc)) from None


def is_shadowed(name: str, taken: Iterable[str]) -> bool:
    """Query parameter `name` would set a field already bound by the path or the body field."""
    return any(name == path or name.startswith(path + ".") for path in taken)
