"""The fast JSON path for flat messages gives exactly what json_format gives, on random messages.

The proto is built here from a FileDescriptorProto: every scalar type, singular and repeated, an
enum, names whose JSON form differs (f_int32 -> fInt32), plus shapes that must not be fast.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

from wsproxy.gateway._fastjson import FastJSON, compile_decoder, compile_encoder

FDP = descriptor_pb2.FieldDescriptorProto
SCALARS = {
    "double": FDP.TYPE_DOUBLE,
    "float": FDP.TYPE_FLOAT,
    "int32": FDP.TYPE_INT32,
    "int64": FDP.TYPE_INT64,
    "uint32": FDP.TYPE_UINT32,
    "uint64": FDP.TYPE_UINT64,
    "sint32": FDP.TYPE_SINT32,
    "sint64": FDP.TYPE_SINT64,
    "fixed32": FDP.TYPE_FIXED32,
    "fixed64": FDP.TYPE_FIXED64,
    "sfixed32": FDP.TYPE_SFIXED32,
    "sfixed64": FDP.TYPE_SFIXED64,
    "bool": FDP.TYPE_BOOL,
    "string": FDP.TYPE_STRING,
    "bytes": FDP.TYPE_BYTES,
    "color": FDP.TYPE_ENUM,
}


def _build() -> descriptor_pool.DescriptorPool:
    file = descriptor_pb2.FileDescriptorProto(
        name="fastjson_test.proto", package="fastjson.test", syntax="proto3"
    )
    color = file.enum_type.add(name="Color")
    for number, name in enumerate(["COLOR_UNSPECIFIED", "RED", "GREEN"]):
        color.value.add(name=name, number=number)
    for message_name, with_bytes in (("Flat", True), ("FlatNoBytes", False)):
        flat = file.message_type.add(name=message_name)
        number = 0
        for repeated in (False, True):
            for kind_name, kind in SCALARS.items():
                if kind == FDP.TYPE_BYTES and not with_bytes:
                    continue
                number += 1
                field = flat.field.add(
                    name=f"{'r_' if repeated else 'f_'}{kind_name}",
                    number=number,
                    type=kind,
                    label=FDP.LABEL_REPEATED if repeated else FDP.LABEL_OPTIONAL,
                )
                if kind == FDP.TYPE_ENUM:
                    field.type_name = ".fastjson.test.Color"
    nested = file.message_type.add(name="Nested")
    nested.field.add(name="inner", number=1, type=FDP.TYPE_MESSAGE, type_name=".fastjson.test.Flat")
    optional = file.message_type.add(name="WithOptional")
    optional.field.add(name="maybe", number=1, type=FDP.TYPE_INT32, proto3_optional=True, oneof_index=0)
    optional.oneof_decl.add(name="_maybe")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return pool


POOL = _build()
Flat: Any = message_factory.GetMessageClass(POOL.FindMessageTypeByName("fastjson.test.Flat"))
FlatNoBytes: Any = message_factory.GetMessageClass(POOL.FindMessageTypeByName("fastjson.test.FlatNoBytes"))
FIELDS: list[Any] = list(Flat.DESCRIPTOR.fields)

INTS = {
    "int32": (-(2**31), 2**31 - 1),
    "sint32": (-(2**31), 2**31 - 1),
    "sfixed32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "fixed32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "sint64": (-(2**63), 2**63 - 1),
    "sfixed64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
    "fixed64": (0, 2**64 - 1),
}
FLOATS = [0.0, -0.0, 1.5, -2.25, 1e-45, 3.4e38, 1e300, 0.1, math.inf, -math.inf, math.nan]
STRINGS = ["", "hello", "héllo wörld", "日本", "emoji \U0001f600", 'quote"and\\back']


def _kind(field: Any) -> str:
    return str(field.name[2:])


def random_value(rng: random.Random, kind: str) -> Any:
    if kind in INTS:
        low, high = INTS[kind]
        return rng.choice([0, low, high, rng.randint(low, high), 1, -1 if low < 0 else 2])
    if kind in ("double", "float"):
        return rng.choice([*FLOATS, rng.uniform(-1e6, 1e6)])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "string":
        return rng.choice(STRINGS)
    if kind == "bytes":
        return bytes(rng.randrange(256) for _ in range(rng.randrange(6)))
    return rng.choice([0, 1, 2, 7])  # 7: an unknown value of an open enum


def random_message(rng: random.Random) -> Any:
    message = Flat()
    for field in FIELDS:
        if rng.random() < 0.3:
            continue
        kind = _kind(field)
        if field.is_repeated:
            getattr(message, field.name).extend(random_value(rng, kind) for _ in range(rng.randrange(4)))
        else:
            setattr(message, field.name, random_value(rng, kind))
    return message


@pytest.mark.parametrize("use_proto_names", [False, True])
def test_encoder_matches_json_format_in_declaration_order(use_proto_names: bool) -> None:
    rng = random.Random(1234)
    encode = compile_encoder(Flat.DESCRIPTOR, use_proto_names=use_proto_names)
    assert encode is not None
    for _ in range(400):
        message = random_message(rng)
        expected = json_format.MessageToDict(
            message, always_print_fields_with_no_presence=True, preserving_proto_field_name=use_proto_names
        )
        got = encode(message)
        assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True), message
        keys = [field.name if use_proto_names else field.json_name for field in FIELDS]
        assert list(got) == keys


TRICKY: list[Any] = [
    None,
    "12",
    "1.5",
    1.0,
    1.5,
    True,
    2**31,
    -(2**31) - 1,
    2**32,
    2**63,
    -(2**63) - 1,
    2**64,
    -1,
    "NaN",
    "RED",
    3,
    "PURPLE",
    "\ud800",
    [],
    {},
    1e39,
]


def json_candidate(rng: random.Random, field: Any, tricky_share: float) -> Any:
    """A JSON value for the field: usually acceptable as is, sometimes what json_format converts or refuses."""
    kind = _kind(field)
    if rng.random() < tricky_share:
        return rng.choice(TRICKY)
    value = random_value(rng, kind)
    if kind == "color":
        return rng.choice(["COLOR_UNSPECIFIED", "RED", "GREEN"])
    if kind == "bytes":
        return "AAEC"
    if isinstance(value, float) and not math.isfinite(value):
        return 1.25
    return value


def json_object(rng: random.Random) -> Any:
    value: dict[str, Any] = {}
    tricky_share = rng.choice([0.0, 0.02, 0.3])
    for field in FlatNoBytes.DESCRIPTOR.fields:
        if rng.random() < 0.5:
            continue
        key = field.json_name if rng.random() < 0.5 else field.name
        if field.is_repeated and rng.random() < 0.9:
            value[key] = [json_candidate(rng, field, tricky_share) for _ in range(rng.randrange(3))]
        else:
            value[key] = json_candidate(rng, field, tricky_share)
    roll = rng.random()
    if roll < 0.05:
        value["unknownField"] = 1
    elif roll < 0.1 and FlatNoBytes.DESCRIPTOR.fields:
        twice: Any = rng.choice(FlatNoBytes.DESCRIPTOR.fields)
        value[twice.name], value[twice.json_name] = 1, 1  # the same field twice
    return value


def parse_slow(value: Any) -> tuple[Any, str | None]:
    message = FlatNoBytes()
    try:
        json_format.ParseDict(value, message, ignore_unknown_fields=True)
    except Exception as exc:  # ParseError; upb's enum lookup even raises SystemError for a lone surrogate
        return None, f"{type(exc).__name__}: {exc}"
    return message, None


def test_decoder_agrees_with_json_format_or_declines_untouched() -> None:
    rng = random.Random(99)
    fast = FastJSON()
    taken = 0
    for _ in range(3000):
        value = json_object(rng)
        message = FlatNoBytes()
        if fast.decode_into(message, value):
            taken += 1
            expected, error = parse_slow(value)
            assert error is None, (value, error)
            assert message == expected, value
        else:
            assert message == FlatNoBytes(), value  # declined: nothing was set
    assert taken > 300  # the fast path is really used for ordinary input


def test_bytes_and_non_flat_types_use_json_format() -> None:
    assert compile_decoder(Flat.DESCRIPTOR) is None  # bytes: json_format's base64 rules
    assert compile_encoder(Flat.DESCRIPTOR, use_proto_names=False) is not None
    for name in ("Nested", "WithOptional"):
        descriptor = POOL.FindMessageTypeByName(f"fastjson.test.{name}")
        assert compile_decoder(descriptor) is None
        assert compile_encoder(descriptor, use_proto_names=False) is None


@pytest.mark.parametrize(
    "value", [*TRICKY, 0, -(2**31), 2**31 - 1, 2**32 - 1, 2**63 - 1, 2**64 - 1, 2**53, 3.5e38]
)
def test_each_field_alone_with_each_edge_value(value: Any) -> None:
    fast = FastJSON()
    for field in FlatNoBytes.DESCRIPTOR.fields:
        bodies = [{field.json_name: value}, {field.name: [value] if field.is_repeated else value}]
        for body in bodies:
            message = FlatNoBytes()
            expected, error = parse_slow(body)
            if fast.decode_into(message, body):
                assert (message, error) == (expected, None), body
            else:
                assert message == FlatNoBytes(), body
