"""Fill request message fields from path variables, query parameters and the JSON body.

Follows grpc-gateway v2's runtime/query.go (DefaultQueryParser) and runtime/convert.go: path
variables and query values are strings parsed the way Go's strconv and time packages parse them
(so `99999999999` for an int32, `1_000` or ` 1` are refused, `100ms` is a Duration); fields are
named by proto name or JSON name, nested with dots (`a.b=1`); a repeated field takes every value of
its key, a map field takes `key[k]=v`, and a singular field given twice is an error; a second
member of a oneof is an error; unknown names are ignored; the body field and the path variables
cannot be set from the query. Every refusal is a FieldError, answered with INVALID_ARGUMENT.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

from google.protobuf import json_format
from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from wsproxy.gateway._strconv import FieldError as FieldError
from wsproxy.gateway._strconv import go_duration_nanos, go_integer_base0

# strconv.ParseBool
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_T = FieldDescriptor
_INT_RANGES = {
    _T.TYPE_INT32: (-(2**31), 2**31 - 1),
    _T.TYPE_SINT32: (-(2**31), 2**31 - 1),
    _T.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    _T.TYPE_INT64: (-(2**63), 2**63 - 1),
    _T.TYPE_SINT64: (-(2**63), 2**63 - 1),
    _T.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    _T.TYPE_UINT32: (0, 2**32 - 1),
    _T.TYPE_FIXED32: (0, 2**32 - 1),
    _T.TYPE_UINT64: (0, 2**64 - 1),
    _T.TYPE_FIXED64: (0, 2**64 - 1),
}
_SIGNED = re.compile(r"[+-]?[0-9]+")  # strconv.ParseInt(s, 10, n): no spaces, no underscores
_UNSIGNED = re.compile(r"[0-9]+")  # strconv.ParseUint(s, 10, n): no sign at all
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SPECIAL_FLOATS = {"inf": math.inf, "+inf": math.inf, "-inf": -math.inf, "infinity": math.inf}
_SPECIAL_FLOATS |= {"+infinity": math.inf, "-infinity": -math.inf, "nan": math.nan}
_FLOAT32_MAX = 3.4028234663852886e38
# time.ParseDuration: a sequence of decimal numbers, each with a unit; "0" alone is allowed.
_MAP_KEY = re.compile(r"(.*)\[(.*)\]")  # valuesKeyRegexp: labels[key]=value
_WRAPPERS = {
    f"google.protobuf.{name}Value"
    for name in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
}


def find_field(descriptor: Any, name: str) -> FieldDescriptor | None:
    """fields.ByName, then fields.ByJSONName, as grpc-gateway looks a name up."""
    field: FieldDescriptor | None = descriptor.fields_by_name.get(name)
    if field is not None:
        return field
    return next((field for field in descriptor.fields if field.json_name == name), None)


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and bool(field.message_type.GetOptions().map_entry)


def _real_oneof(field: FieldDescriptor) -> Any:
    oneof = field.containing_oneof
    if oneof is None or getattr(oneof, "is_synthetic", False) or _is_proto3_optional(field):
        return None
    return oneof


def _is_proto3_optional(field: FieldDescriptor) -> bool:
    oneof = field.containing_oneof
    return oneof is not None and len(oneof.fields) == 1 and oneof.name == "_" + field.name


def normalize_path(descriptor: Any, names: list[str]) -> list[str]:
    """runtime.normalizeFieldPath: JSON names -> proto names, as far as the message knows them."""
    normalized: list[str] = []
    for index, name in enumerate(names):
        field = find_field(descriptor, name)
        if field is None:
            return names
        normalized.append(field.name)
        if index == len(names) - 1:
            break
        if field.message_type is None or field.is_repeated:
            return names
        descriptor = field.message_type
    return normalized


def _enum_value(enum: EnumDescriptor, text: str) -> int:
    value = enum.values_by_name.get(text)
    if value is not None:
        return int(value.number)
    if _SIGNED.fullmatch(text) and int(text) in enum.values_by_number:
        return int(text)
    raise FieldError(f"{text!r} is not a valid value of enum {enum.full_name}")


def _integer(kind: int, text: str) -> int:
    low, high = _INT_RANGES[kind]
    if not (_UNSIGNED if low == 0 else _SIGNED).fullmatch(text):
        raise FieldError(f"{text!r} is not an integer")
    number = int(text)
    if not low <= number <= high:
        raise FieldError(f"{text!r} is out of range [{low}, {high}]")
    return number


def _float(text: str, *, bits: int) -> float:
    special = _SPECIAL_FLOATS.get(text.lower())
    if special is not None:
        return special
    if not _DECIMAL.fullmatch(text):
        raise FieldError(f"{text!r} is not a number")
    number = float(text)
    if math.isinf(number) or (bits == 32 and abs(number) > _FLOAT32_MAX):
        raise FieldError(f"{text!r} is out of range for a {bits}-bit float")
    return number


def _bytes(text: str) -> bytes:
    """runtime.Bytes: standard base64, else URL-safe; unpadded input is also accepted."""
    padded = text + "=" * (-len(text) % 4)
    for altchars in (None, b"-_"):
        try:
            return base64.b64decode(padded, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
    raise FieldError(f"{text!r} is not base64")


def _scalar(field: FieldDescriptor, text: str) -> Any:
    kind = field.type
    if kind in _INT_RANGES:
        return _integer(kind, text)
    if kind in (_T.TYPE_DOUBLE, _T.TYPE_FLOAT):
        return _float(text, bits=64 if kind == _T.TYPE_DOUBLE else 32)
    if kind == _T.TYPE_BOOL:
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise FieldError(f"{text!r} is not a boolean")
    if kind == _T.TYPE_ENUM:
        assert field.enum_type is not None
        return _enum_value(field.enum_type, text)
    if kind == _T.TYPE_BYTES:
        return _bytes(text)
    return text


def _set_message(field: FieldDescriptor, target: Message, text: str) -> None:
    """runtime.parseMessage: the well-known types a URL string can carry."""
    assert field.message_type is not None
    name = field.message_type.full_name
    if name in _WRAPPERS:
        target.value = _scalar(field.message_type.fields_by_name["value"], text)  # type: ignore[attr-defined]
    elif name == "google.protobuf.Duration":
        nanos = go_duration_nanos(text)
        seconds = abs(nanos) // 10**9
        sign = -1 if nanos < 0 else 1
        target.seconds, target.nanos = sign * seconds, sign * (abs(nanos) % 10**9)  # type: ignore[attr-defined]
    elif name == "google.protobuf.FieldMask":
        del target.paths[:]  # type: ignore[attr-defined]
        target.paths.extend(text.split(","))  # type: ignore[attr-defined]  # passed through, as given
    elif name == "google.protobuf.Timestamp":
        try:
            json_format.ParseDict(text, target)  # type: ignore[arg-type]  # RFC 3339
        except json_format.ParseError as exc:
            raise FieldError(str(exc)) from None
    elif name in ("google.protobuf.Struct", "google.protobuf.Value"):
        try:
            json_format.ParseDict(json.loads(text), target)
        except (ValueError, json_format.ParseError) as exc:
            raise FieldError(f"not a JSON {name.rpartition('.')[2]}: {exc}") from None
    else:
        raise FieldError(f"unsupported message type: {name!r}")


def _convert(field: FieldDescriptor, text: str, target: Message | None = None) -> Any:
    try:
        if not text.isascii():
            text.encode("utf-8")  # a lone surrogate would fail later, in serialization or in upb
        if field.message_type is not None:
            assert target is not None
            _set_message(field, target, text)
            return target
        return _scalar(field, text)
    except FieldError as exc:
        raise FieldError(f"parsing field {field.name!r}: {exc}") from None
    except UnicodeEncodeError:
        raise FieldError(f"parsing field {field.name!r}: not valid UTF-8") from None


def set_from_strings(message: Message, path: str, values: list[str], *, strict: bool) -> None:
    """runtime.populateFieldValueFromPath: set the field at dotted `path` from URL strings.

    `strict` (path variables) makes an unknown field an error; query parameters are ignored then.
    """
    names = path.split(".")
    holder = message
    field: FieldDescriptor | None = None
    for index, name in enumerate(names):
        field = find_field(holder.DESCRIPTOR, name)
        if field is None:
            if strict:
                raise FieldError(f"no field {path!r} in {message.DESCRIPTOR.full_name}")
            return
        oneof = _real_oneof(field)
        if oneof is not None:
            chosen = holder.WhichOneof(oneof.name)
            if chosen is not None and (field.message_type is None or chosen != field.name):
                raise FieldError(f"field already set for oneof {oneof.name!r}")
        if index == len(names) - 1:
            break
        if field.message_type is None or field.is_repeated:
            raise FieldError(f"invalid path: {name!r} is not a message")
        holder = getattr(holder, field.name)
    assert field is not None
    if _is_map(field):
        _set_map_entry(field, getattr(holder, field.name), values)
    elif field.is_repeated:
        container = getattr(holder, field.name)
        for text in values:
            if field.message_type is not None:
                _convert(field, text, container.add())
            else:
                container.append(_convert(field, text))
    elif len(values) > 1:
        raise FieldError(f"too many values for field {field.name!r}: {', '.join(values)}")
    elif field.message_type is not None:
        _convert(field, values[0], getattr(holder, field.name))
    else:
        setattr(holder, field.name, _convert(field, values[0]))


def set_path_value(message: Message, path: str, text: str) -> None:
    """A path variable, as grpc-gateway's generated handler sets it.

    A top-level field takes runtime/convert.go's conversion: integers by strconv.ParseInt(val, 0, n)
    (so `0x10`, `0o17`, `010`, `1_0`), enums by name or such a number, the well-known wrappers,
    Timestamp and Duration by protojson, and a repeated field is split on ",". A nested field
    (`{nested.amount}`) goes through runtime.PopulateFieldFromPath, the query's rules.
    """
    field = None if "." in path else find_field(message.DESCRIPTOR, path)
    if field is None or _is_map(field):
        set_from_strings(message, path, [text], strict=True)
        return
    oneof = _real_oneof(field)
    if oneof is not None and message.WhichOneof(oneof.name) not in (None, field.name):
        raise FieldError(f"field already set for oneof {oneof.name!r}")
    try:
        if field.is_repeated:
            container = getattr(message, field.name)
            if field.message_type is not None:
                for piece in text.split(","):
                    _path_message(field, container.add(), piece)
            else:
                container.extend(_path_scalar(field, piece) for piece in text.split(","))
        elif field.message_type is not None:
            _path_message(field, getattr(message, field.name), text)
        else:
            setattr(message, field.name, _path_scalar(field, text))
    except FieldError as exc:
        raise FieldError(f"type mismatch, parameter: {path}, error: {exc}") from None


def _path_scalar(field: FieldDescriptor, text: str) -> Any:
    """runtime.Int32, Uint64, Enum... : _scalar's rules, but integers in base 0."""
    if field.type in _INT_RANGES:
        low, high = _INT_RANGES[field.type]
        return go_integer_base0(text, low=low, high=high)
    if field.type == _T.TYPE_ENUM:
        assert field.enum_type is not None
        value = field.enum_type.values_by_name.get(text)
        if value is not None:
            return int(value.number)
        number = go_integer_base0(text, low=-(2**31), high=2**31 - 1)
        if number not in field.enum_type.values_by_number:
            raise FieldError(f"{text} is not valid")
        return number
    return _convert(field, text)


def _path_message(field: FieldDescriptor, target: Message, text: str) -> None:
    """runtime.Timestamp and runtime.Duration (protojson's form), runtime.Int32Value etc."""
    assert field.message_type is not None
    name = field.message_type.full_name
    if name in ("google.protobuf.Timestamp", "google.protobuf.Duration"):
        try:
            json_format.ParseDict(text.strip('"'), target)  # type: ignore[arg-type]
        except json_format.ParseError as exc:
            raise FieldError(str(exc)) from None
    elif name in _WRAPPERS:
        target.value = _path_scalar(field.message_type.fields_by_name["value"], text)  # type: ignore[attr-defined]
    else:
        _convert(field, text, target)


def _set_map_entry(field: FieldDescriptor, container: Any, values: list[str]) -> None:
    """runtime.populateMapField: exactly one key (from `name[key]`) and one value."""
    if len(values) != 2:
        raise FieldError(f"map field {field.name!r} takes one value per key, as {field.name}[key]=value")
    assert field.message_type is not None
    key_field, value_field = (field.message_type.fields_by_name[name] for name in ("key", "value"))
    key = _convert(key_field, values[0])
    if value_field.message_type is not None:
        _convert(value_field, values[1], container[key])
    else:
        container[key] = _convert(value_field, values[1])


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def parse_query(raw: bytes) -> list[tuple[str, str]]:
    """url.ParseQuery, strict as Go's: a bad %-escape or a `;` anywhere in a pair is an error, not a guess."""
    pairs: list[tuple[str, str]] = []
    for part in raw.decode("utf-8", "replace").split("&"):
        if not part:
            continue
        if ";" in part:
            raise FieldError("invalid semicolon separator in query")
        key, _, value = part.partition("=")
        if _BAD_ESCAPE.search(part):
            raise FieldError(f"invalid URL escape in query parameter {key!r}")
        try:
            key, value = (unquote(text.replace("+", " "), errors="strict") for text in (key, value))
        except UnicodeDecodeError:
            raise FieldError(f"query parameter {key!r} is not valid UTF-8") from None
        pairs.append((key, value))
    return pairs


def populate_query(message: Message, pairs: Iterable[tuple[str, str]], taken: Iterable[str]) -> None:
    """runtime.DefaultQueryParser.Parse: every query parameter not bound by the path or the body."""
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    filters = [path.split(".") for path in taken if path]
    for key, values in grouped.items():
        found = _MAP_KEY.fullmatch(key)
        if found is not None:
            key, values = found.group(1), [found.group(2), *values]
        field_path = normalize_path(message.DESCRIPTOR, key.split("."))
        if any(field_path[: len(prefix)] == prefix for prefix in filters):
            continue
        set_from_strings(message, ".".join(field_path), values, strict=False)


class _JSONNull:
    """A JSON `null` read from a request body (None there means the body has ended)."""

    def __repr__(self) -> str:
        return "null"


JSON_NULL: Any = _JSONNull()


def merge_json(message: Message, body_field: str, value: Any) -> None:
    """Merge a decoded JSON body into the request (`body_field` "*" = the whole message).

    A `null` body is refused for a message, as protojson.Unmarshal does ("unexpected token null"),
    and leaves any other body field unset, as encoding/json does (runtime/marshal_jsonpb.go).
    """
    try:
        if body_field == "*":
            if value is JSON_NULL:
                raise FieldError(f"{message.DESCRIPTOR.full_name}: unexpected token null")
            json_format.ParseDict(value, message, ignore_unknown_fields=True)
            return
        holder, field = message, None
        for name in body_field.split("."):
            if field is not None:
                holder = getattr(holder, field.name)
            field = find_field(holder.DESCRIPTOR, name)
            if field is None:
                raise FieldError(f"no body field {body_field!r} in {message.DESCRIPTOR.full_name}")
        assert field is not None
        if value is JSON_NULL:
            if field.message_type is not None and not field.is_repeated and not _is_map(field):
                if field.message_type.full_name != "google.protobuf.Value":
                    raise FieldError(f"{field.message_type.full_name}: unexpected token null")
                value = None
            else:
                return
        json_format.ParseDict({field.json_name: value}, holder, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise FieldError(str(exc)) from None
    except RecursionError:
        raise FieldError("request body is nested too deeply") from None
    except (TypeError, ValueError, AttributeError) as exc:  # e.g. a JSON value of the wrong shape
        raise FieldError(f"request body does not fit {message.DESCRIPTOR.full_name}: {exc}") from None
    except SystemError as exc:  # upb's enum lookup fails this way on a lone surrogate
        raise FieldError(f"request body does not fit {message.DESCRIPTOR.full_name}: {exc}") from None
