"""The gateway's pure parts, table-driven: path templates, the JSON value splitter, field filling, status map."""

from __future__ import annotations

from typing import Any, cast

import grpc
import pytest
from google.protobuf import timestamp_pb2, wrappers_pb2
from google.protobuf.descriptor_pb2 import FieldDescriptorProto, FileDescriptorProto

from wsproxy.gateway import TemplateError, compile_template, http_status
from wsproxy.gateway._fields import FieldError, merge_json, populate_query, set_from_strings
from wsproxy.gateway._jsonstream import JSONValueSplitter, ValueTooLarge


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("/v1/echo", "/v1/echo", {}),
        ("/v1/echo", "/v1/echo/", None),
        ("/v1/echo", "/v1/ech", None),
        ("/v1/{name}", "/v1/abc", {"name": "abc"}),
        ("/v1/{name}", "/v1/a/b", None),
        ("/v1/{name}", "/v1/a%2Fb%20c", {"name": "a/b c"}),
        ("/v1/{name=shelves/*/books/*}", "/v1/shelves/1/books/2", {"name": "shelves/1/books/2"}),
        ("/v1/{name=shelves/*/books/*}", "/v1/shelves/1/books", None),
        ("/v1/{parent=shelves/*}/books", "/v1/shelves/s1/books", {"parent": "shelves/s1"}),
        ("/v1/{book.name=shelves/*/books/*}", "/v1/shelves/a/books/b", {"book.name": "shelves/a/books/b"}),
        ("/v1/{name=files/**}", "/v1/files/a/b/c.txt", {"name": "files/a/b/c.txt"}),
        ("/v1/*/items", "/v1/x/items", {}),
        ("/v1/{name=shelves/*}:archive", "/v1/shelves/7:archive", {"name": "shelves/7"}),
        ("/v1/{name=shelves/*}:archive", "/v1/shelves/7", None),
        ("/v1/{a}/{b}", "/v1/x/y", {"a": "x", "b": "y"}),
    ],
)
def test_path_templates(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert compile_template(template).match(path) == expected


@pytest.mark.parametrize("template", ["v1/echo", "/v1/{name", "/v1/{a{b}}", "/v1//x", "/v1/a*b"])
def test_bad_templates_are_refused(template: str) -> None:
    with pytest.raises(TemplateError):
        compile_template(template)


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b'{"a":1}\n{"b":2}\n'], [b'{"a":1}', b'{"b":2}']),
        ([b'{"a":', b"1}", b"\n"], [b'{"a":1}']),
        ([b'{"a":"}{\\"x"}'], [b'{"a":"}{\\"x"}']),
        ([b'{"a":1}{"b":[1,{"c":"]"}]}'], [b'{"a":1}', b'{"b":[1,{"c":"]"}]}']),
        ([b'  1 2 "x y" true', b""], [b"1", b"2", b'"x y"', b"true"]),
        ([b'{"a":"\\\\"}', b'{"b":2}'], [b'{"a":"\\\\"}', b'{"b":2}']),
        ([b"\n\n  \r\n"], []),
        ([b'{"a":1'], [b'{"a":1']),  # unfinished: handed out at close, where it fails to parse
    ],
)
def test_json_splitter(chunks: list[bytes], expected: list[bytes]) -> None:
    splitter = JSONValueSplitter(max_value_size=1000)
    values = [value for chunk in chunks for value in splitter.feed(chunk)]
    tail = splitter.close()
    assert values + ([tail] if tail is not None else []) == expected


def test_json_splitter_byte_by_byte_matches_one_chunk() -> None:
    data = b'{"text":"a\\"b}"}\n[1,2]\n{"n":{"m":[{}]}}\n'
    splitter = JSONValueSplitter(max_value_size=1000)
    values = [value for byte in data for value in splitter.feed(bytes([byte]))]
    assert values == [b'{"text":"a\\"b}"}', b"[1,2]", b'{"n":{"m":[{}]}}']


def test_json_splitter_limits_one_value_not_the_stream() -> None:
    splitter = JSONValueSplitter(max_value_size=10)
    assert splitter.feed(b'{"a":123}\n' * 5) == [b'{"a":123}'] * 5
    with pytest.raises(ValueTooLarge):
        splitter.feed(b'{"a":"0123456789"')


def _message_class() -> type:
    """A message with every kind of field the URL can set, built from a descriptor (no protoc)."""
    from google.protobuf import descriptor_pool, message_factory

    file = FileDescriptorProto(name="units_test.proto", package="units", syntax="proto3")
    file.dependency.extend(["google/protobuf/timestamp.proto", "google/protobuf/wrappers.proto"])
    enum = file.enum_type.add(name="Color")
    enum.value.add(name="COLOR_UNSPECIFIED", number=0)
    enum.value.add(name="RED", number=1)
    inner = file.message_type.add(name="Inner")
    inner.field.add(name="depth", number=1, type=FieldDescriptorProto.TYPE_INT32, json_name="depth")
    outer = file.message_type.add(name="Outer")
    fields = [
        ("name", FieldDescriptorProto.TYPE_STRING, None, False),
        ("page_size", FieldDescriptorProto.TYPE_INT64, None, False),
        ("ratio", FieldDescriptorProto.TYPE_DOUBLE, None, False),
        ("on", FieldDescriptorProto.TYPE_BOOL, None, False),
        ("color", FieldDescriptorProto.TYPE_ENUM, ".units.Color", False),
        ("ids", FieldDescriptorProto.TYPE_INT32, None, True),
        ("inner", FieldDescriptorProto.TYPE_MESSAGE, ".units.Inner", False),
        ("when", FieldDescriptorProto.TYPE_MESSAGE, ".google.protobuf.Timestamp", False),
        ("limit", FieldDescriptorProto.TYPE_MESSAGE, ".google.protobuf.Int32Value", False),
        ("blob", FieldDescriptorProto.TYPE_BYTES, None, False),
    ]
    for number, (name, kind, type_name, repeated) in enumerate(fields, start=1):
        field = outer.field.add(name=name, number=number, type=kind)
        field.json_name = "".join(p if i == 0 else p.title() for i, p in enumerate(name.split("_")))
        field.label = FieldDescriptorProto.LABEL_REPEATED if repeated else FieldDescriptorProto.LABEL_OPTIONAL
        if type_name:
            field.type_name = type_name
    timestamp_pb2.Timestamp()  # the dependencies must be in the pool first
    wrappers_pb2.Int32Value()
    pool = descriptor_pool.Default()
    try:
        descriptor = pool.FindMessageTypeByName("units.Outer")
    except KeyError:
        pool.Add(file)
        descriptor = pool.FindMessageTypeByName("units.Outer")
    return message_factory.GetMessageClass(descriptor)


@pytest.mark.parametrize(
    ("path", "values", "attribute", "expected"),
    [
        ("name", ["x"], "name", "x"),
        ("page_size", ["9007199254740993"], "page_size", 9007199254740993),
        ("pageSize", ["3"], "page_size", 3),
        ("ratio", ["0.25"], "ratio", 0.25),
        ("on", ["true"], "on", True),
        ("on", ["0"], "on", False),
        ("color", ["RED"], "color", 1),
        ("color", ["1"], "color", 1),
        ("ids", ["1", "2", "3"], "ids", [1, 2, 3]),
        ("inner.depth", ["4"], "inner.depth", 4),
        ("when", ["2024-01-02T03:04:05Z"], "when.seconds", 1704164645),
        ("limit", ["7"], "limit.value", 7),
        ("blob", ["aGk="], "blob", b"hi"),
        ("blob", ["aGk"], "blob", b"hi"),
    ],
)
def test_fields_from_url_strings(path: str, values: list[str], attribute: str, expected: object) -> None:
    message = _message_class()()
    set_from_strings(message, path, values, strict=True)
    value: object = message
    for part in attribute.split("."):
        value = getattr(value, part)
    assert (list(value) if attribute == "ids" else value) == expected  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("page_size", "ten"),
        ("on", "yes"),
        ("color", "BLUE"),
        ("color", "7"),
        ("when", "yesterday"),
        ("inner", "x"),
        ("page_size", "99999999999999999999"),
        ("page_size", " 1"),
        ("page_size", "1_000"),
        ("ratio", "1e400"),
        ("ratio", "1_0"),
        ("blob", "a"),
    ],
)
def test_bad_url_values_are_field_errors(path: str, value: str) -> None:
    with pytest.raises(FieldError):
        set_from_strings(_message_class()(), path, [value], strict=True)


def test_a_singular_field_given_twice_is_refused() -> None:
    with pytest.raises(FieldError, match="too many values"):
        set_from_strings(_message_class()(), "name", ["a", "b"], strict=False)


def test_unknown_query_fields_are_ignored_but_unknown_path_fields_are_errors() -> None:
    message = _message_class()()
    set_from_strings(message, "nope.deeper", ["1"], strict=False)
    assert message == _message_class()()
    with pytest.raises(FieldError):
        set_from_strings(message, "nope", ["1"], strict=True)


def test_json_body_into_whole_message_or_one_field() -> None:
    message = _message_class()()
    merge_json(message, "*", {"name": "n", "pageSize": "5", "unknownField": 1})
    merge_json(message, "inner", {"depth": 2})
    assert (message.name, message.page_size, message.inner.depth) == ("n", 5, 2)
    with pytest.raises(FieldError):
        merge_json(message, "*", {"pageSize": "many"})
    with pytest.raises(FieldError):
        merge_json(message, "*", [1, 2])


def test_query_skips_fields_bound_by_the_path_or_body_by_proto_or_json_name() -> None:
    message = _message_class()()
    populate_query(message, [("inner.depth", "1"), ("pageSize", "2"), ("name", "n")], ["inner", "page_size"])
    assert (message.inner.depth, message.page_size, message.name) == (0, 0, "n")


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (grpc.StatusCode.OK, 200),
        (grpc.StatusCode.CANCELLED, 499),
        (grpc.StatusCode.UNKNOWN, 500),
        (grpc.StatusCode.INVALID_ARGUMENT, 400),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.ALREADY_EXISTS, 409),
        (grpc.StatusCode.PERMISSION_DENIED, 403),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
        (grpc.StatusCode.FAILED_PRECONDITION, 400),
        (grpc.StatusCode.ABORTED, 409),
        (grpc.StatusCode.OUT_OF_RANGE, 400),
        (grpc.StatusCode.UNIMPLEMENTED, 501),
        (grpc.StatusCode.INTERNAL, 500),
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.DATA_LOSS, 500),
        (grpc.StatusCode.UNAUTHENTICATED, 401),
    ],
)
def test_http_status_matches_grpc_gateway(code: grpc.StatusCode, status: int) -> None:
    assert http_status(code) == status


@pytest.mark.parametrize(
    ("headers", "client", "expected"),
    [
        ([], ("10.0.0.9", 1), "10.0.0.9"),
        ([(b"x-forwarded-for", b"1.1.1.1")], ("10.0.0.9", 1), "1.1.1.1, 10.0.0.9"),
        (
            [(b"x-forwarded-for", b"1.1.1.1"), (b"x-forwarded-for", b"2.2.2.2")],
            ("10.0.0.9", 1),
            "1.1.1.1, 2.2.2.2, 10.0.0.9",
        ),
        # uvicorn's proxy_headers already made the last forwarded address the client: not twice.
        ([(b"x-forwarded-for", b"1.1.1.1, 2.2.2.2")], ("2.2.2.2", 1), "1.1.1.1, 2.2.2.2"),
        ([(b"x-forwarded-for", b"1.1.1.1")], None, "1.1.1.1"),
    ],
)
def test_x_forwarded_for(
    headers: list[tuple[bytes, bytes]], client: tuple[str, int] | None, expected: str
) -> None:
    from wsproxy.gateway._metadata import request_metadata

    metadata = dict(request_metadata(headers, client))
    assert metadata["x-forwarded-for"] == expected


def test_x_forwarded_host_wins_over_host() -> None:
    from wsproxy.gateway._metadata import request_metadata

    both = [(b"host", b"inner:80"), (b"x-forwarded-host", b"outer.example")]
    assert dict(request_metadata(both, None))["x-forwarded-host"] == "outer.example"
    assert dict(request_metadata([(b"host", b"inner:80")], None))["x-forwarded-host"] == "inner:80"


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (b"10S", 10.0), (b"250m", 0.25), (b"2M", 120.0), (b"1H", 3600.0), (b"0S", None), (b"", None),
        (b"+5S", 5.0), (b"-0M", None), (b"123456789S", 123456789.0), (b"-1S", -1.0), (b"-5n", -5e-9),
        # timeoutDecode's product wraps in int64 nanoseconds: negative is a deadline already past.
        (b"99999999H", -8934885074191032320 / 1e9), (b"2562047H", None),
        (b"9223372036854775807n", None),  # 292 years: beyond grpcio's 2**31 s, so none
        (b"2147483648S", None), (b"2147483647S", 2147483647.0),
    ],
)  # fmt: skip
def test_grpc_timeout(header: bytes, seconds: float | None) -> None:
    from wsproxy.gateway._metadata import request_timeout

    assert request_timeout([(b"grpc-timeout", header)]) == seconds


@pytest.mark.parametrize(
    "header", [b"S", b"5", b"5s", b"5 S", b" 5S", b"1.5S", b"9223372036854775808n", b"0x5S"]
)
def test_grpc_timeout_malformed_is_invalid_argument(header: bytes) -> None:
    from wsproxy.gateway._metadata import request_timeout
    from wsproxy.gateway._status import GatewayError

    with pytest.raises(GatewayError) as caught:
        request_timeout([(b"grpc-timeout", header)])
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT


# --- Routing as grpc-gateway's ServeMux (runtime/mux.go, runtime/pattern.go at v2.30.0) ----------
@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("/v1/echo", "/v1/%65cho", {}),  # literals compare decoded (UnescapingModeLegacy)
        ("/v1/echo", "/v1%2Fecho", None),  # %2F never separates segments
        ("/v1/{name}", "/v1/", {"name": ""}),  # OpPush takes an empty component
        ("/v1/{name}/x", "/v1//x", {"name": ""}),
        ("/v1/{name}", "/v1", None),
        ("/v1/{path=**}", "/v1", {"path": ""}),  # OpPushM takes zero components
        ("/v1/{path=**}", "/v1/", {"path": ""}),
        ("/v1/{path=**}/end", "/v1/end", {"path": ""}),
        ("/v1/{path=**}/end", "/v1/a/b/end", {"path": "a/b"}),
        ("/v1/{path=**}", "/v1/a%2Fb/c%20d", {"path": "a%2Fb/c d"}),
        ("/v1/{name=rooms/*}:enter", "/v1/rooms/r1%3Aenter", {"name": "rooms/r1"}),
        ("/v1/{name=rooms/*}:enter", "/v1/rooms/:enter", None),
        ("/v1/{name=rooms/*}:enter", "/v1/rooms/r1", None),
        ("/v1/{name}", "/v1/a:b", {"name": "a:b"}),  # no verb in the template: the colon is the value's
        ("/v1/{name}:go", "/v1/a:b:go", {"name": "a:b"}),
    ],
)
def test_path_templates_match_decoded_segments(
    template: str, path: str, expected: dict[str, str] | None
) -> None:
    assert compile_template(template).match(path) == expected


def _routes(*rules: tuple[str, str]) -> list[Any]:
    from wsproxy.gateway._routes import Route

    return [Route(method, compile_template(template), "", cast(Any, None)) for method, template in rules]


@pytest.mark.parametrize(
    ("rules", "method", "path", "fallback", "expected"),
    [
        # ServeMux.Handle prepends: the last declared pattern is tried first.
        ([("GET", "/v1/things/{id}"), ("GET", "/v1/things/me")], "GET", "/v1/things/me", False, 1),
        ([("GET", "/v1/things/me"), ("GET", "/v1/things/{id}")], "GET", "/v1/things/me", False, 1),
        ([("GET", "/v1/things/{id}"), ("GET", "/v1/things/me")], "GET", "/v1/things/you", False, 0),
        # isPathLengthFallback: a form POST may be answered by a GET route, and only by a GET one.
        ([("GET", "/v1/x/{id}"), ("PUT", "/v1/x/{id}")], "POST", "/v1/x/1", True, 0),
        ([("POST", "/v1/x/{id}"), ("GET", "/v1/x/{id}")], "POST", "/v1/x/1", True, 0),
        ([("GET", "/v1/x/{id}")], "POST", "/v1/x/1", False, "method"),
        ([("PUT", "/v1/x/{id}")], "POST", "/v1/x/1", True, "method"),
        ([("GET", "/v1/x/{id}")], "GET", "/v1/y/1", False, "path"),
    ],
)
def test_find_route(
    rules: list[tuple[str, str]], method: str, path: str, fallback: bool, expected: int | str
) -> None:
    from wsproxy.gateway._routes import NoRoute, find_route

    if isinstance(expected, int):
        assert find_route(_routes(*rules), method, path, form_fallback=fallback)[0] == expected
        return
    with pytest.raises(NoRoute) as caught:
        find_route(_routes(*rules), method, path, form_fallback=fallback)
    assert caught.value.method_not_allowed == (expected == "method")


# strconv.ParseInt(s, 0, 32) and ParseUint(s, 0, 32), as Go 1.19+ answers them (None: a syntax or range error).
@pytest.mark.parametrize(
    ("text", "signed", "unsigned"),
    [
        ("0x10", 16, 16), ("0X1F", 31, 31), ("0o17", 15, 15), ("0O7", 7, 7), ("0b11", 3, 3), ("0B1", 1, 1),
        ("010", 8, 8), ("0_7", 7, 7), ("1_0", 10, 10), ("0x1_F", 31, 31), ("-0x10", -16, None),
        ("+5", 5, None), ("-0", 0, None), ("0", 0, 0), ("00", 0, 0), ("08", None, None), ("0x", None, None),
        ("0x_", None, None), ("1__0", None, None), ("_1", None, None), ("1_", None, None), ("0_x1", None, None),
        ("", None, None), (" 1", None, None), ("1 ", None, None), ("0x-1", None, None), ("+-1", None, None),
        ("٣", None, None), ("2147483647", 2147483647, 2147483647), ("2147483648", None, 2147483648),
        ("-2147483648", -2147483648, None), ("-2147483649", None, None), ("0x80000000", None, 2147483648),
    ],
)  # fmt: skip
def test_go_integer_base0(text: str, signed: int | None, unsigned: int | None) -> None:
    from wsproxy.gateway._strconv import go_integer_base0

    for (low, high), expected in (((-(2**31), 2**31 - 1), signed), ((0, 2**32 - 1), unsigned)):
        if expected is None:
            with pytest.raises(FieldError):
                go_integer_base0(text, low=low, high=high)
        else:
            assert go_integer_base0(text, low=low, high=high) == expected


@pytest.mark.parametrize(
    ("field", "text", "expected"),
    [
        ("page_size", "0x10", 16),  # runtime.Int64: base 0
        ("page_size", "1_0", 10),
        ("page_size", "010", 8),
        ("color", "0x1", 1),  # runtime.Enum: a name, or Int32 of a known number
        ("color", "RED", 1),
        ("ids", "1,0x2,-3", [1, 2, -3]),  # runtime.Int32Slice: split on ","
        ("limit", "0o17", 15),  # runtime.Int32Value: Int32, base 0
        ("name", "a,b", "a,b"),
    ],
)
def test_path_values_convert_as_convert_go(field: str, text: str, expected: Any) -> None:
    from wsproxy.gateway._fields import set_path_value

    message = _message_class()()
    set_path_value(message, field, text)
    value = getattr(message, field)
    if field == "limit":
        value = value.value
    assert (list(value) if isinstance(expected, list) else value) == expected


def test_nested_path_values_keep_the_querys_base_10() -> None:
    """gengateway template.go: IsNestedProto3 -> runtime.PopulateFieldFromPath (parseField, base 10)."""
    from wsproxy.gateway._fields import set_path_value

    message = _message_class()()
    set_path_value(message, "inner.depth", "10")
    assert message.inner.depth == 10
    with pytest.raises(FieldError):
        set_path_value(message, "inner.depth", "0x10")


@pytest.mark.parametrize(
    ("field", "text"), [("page_size", "08"), ("color", "0x7"), ("ids", "1,,2"), ("limit", "1.0")]
)
def test_bad_path_values_are_refused(field: str, text: str) -> None:
    from wsproxy.gateway._fields import set_path_value

    with pytest.raises(FieldError):
        set_path_value(_message_class()(), field, text)


@pytest.mark.parametrize(
    ("query", "ok"),
    [(b"a=1", True), (b"a;b=1", False), (b"a=1;2", False), (b"a=%3B", True), (b"a=%zz", False)],
)
def test_query_semicolons_as_net_url(query: bytes, ok: bool) -> None:
    from wsproxy.gateway._fields import parse_query

    if ok:
        assert parse_query(query)
    else:
        with pytest.raises(FieldError):
            parse_query(query)


@pytest.mark.parametrize(
    ("value", "decoded"),
    [
        ("AAEC", b"\x00\x01\x02"),
        ("AAE=", b"\x00\x01"),
        ("AAE", b"\x00\x01"),
        ("AA=", None),
        ("A", None),
        ("AA=A", None),
    ],
)
def test_bin_header_as_decode_bin_header(value: str, decoded: bytes | None) -> None:
    from wsproxy.gateway._metadata import request_metadata
    from wsproxy.gateway._status import GatewayError

    headers = [(b"grpc-metadata-x-bin", value.encode())]
    if decoded is None:
        with pytest.raises(GatewayError):
            request_metadata(headers, None)
    else:
        assert dict(request_metadata(headers, None))["x-bin"] == decoded
