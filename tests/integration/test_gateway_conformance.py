"""grpc-gateway v2 conformance, one row per behaviour: (request, expected status, headers, body).

Each row names the Go source it pins, file and function: github.com/grpc-ecosystem/grpc-gateway/v2
at v2.30.0 (`runtime/...`, and `gengateway template.go` for
protoc-gen-grpc-gateway/internal/gengateway/template.go, the generated handlers), with the versions
its go.mod pins: google.golang.org/grpc v1.83.0 (`grpc-go ...`) and google.golang.org/protobuf
v1.36.11 (`protobuf-go ...`). Where wsproxy differs on purpose, the row says `differs:` and why
(docs/gateway.md's compatibility table lists the same). The server is tests/support/protos/conformance,
served by a real grpcio server (or in-process) behind the gateway on uvicorn.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.conformance_service import EMPTY, UNPRINTABLE, serve_gateway_in_thread
from tests.support.servers import Running

# The versions every row cites: grpc-gateway's tag, and the grpc-go and protobuf-go its go.mod pins.
CITED_VERSIONS = ("grpc-gateway v2.30.0", "grpc-go v1.83.0", "protobuf-go v1.36.11")

NESTED_EMPTY = {"name": "", "amount": "0", "color": "COLOR_UNSPECIFIED"}


def everything(**changes: Any) -> dict[str, Any]:
    """EMPTY with some fields changed; new keys (oneof members, optional) go where protojson puts them."""
    order = [*EMPTY]
    order.insert(order.index("timestamp"), "optionalInt32")
    order.insert(order.index("optionalInt32"), "choiceNested")
    order.insert(order.index("choiceNested"), "choiceText")
    merged = {**EMPTY, **changes}
    return {key: merged[key] for key in order if key in merged}


def status(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "details": []}


def has_code(code: int) -> Callable[[Any], bool]:
    return lambda body: isinstance(body, dict) and body.get("code") == code and "message" in body


@dataclass(frozen=True)
class Row:
    id: str
    cite: str  # the grpc-gateway v2 source (file: function) this row pins, or "differs: <why>"
    method: str
    url: str
    status: int
    body: Any = None  # the whole JSON answer (key order included), or a predicate
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    expect_headers: dict[str, str | None] = field(default_factory=dict)  # None: must be absent
    lines: bool = False  # an NDJSON stream: body is the list of lines


# A row in a few lines, so the table reads as a table.
# fmt: off
ROWS = [
    # --- 1. Error bodies and the status table -------------------------------------------------
    Row("unknown-path", "runtime/mux.go: ServeMux.ServeHTTP; runtime/errors.go: DefaultRoutingErrorHandler", "GET",
        "/v2/nothing", 404, status(5, "Not Found")),
    Row("wrong-method", "runtime/errors.go: DefaultRoutingErrorHandler (405 -> Unimplemented -> 501)", "DELETE",
        "/v1/everything/x", 501, status(12, "Method Not Allowed")),
    *[
        Row(f"status-{code}", "runtime/errors.go: HTTPStatusFromCode, DefaultHTTPErrorHandler", "GET",
            f"/v1/fail/{code}?message=boom", http, status(code, "boom"))
        for code, http in [
            (1, 499), (2, 500), (3, 400), (4, 504), (5, 404), (6, 409), (7, 403), (8, 429), (9, 400), (10, 409),
            (11, 400), (12, 501), (13, 500), (14, 503), (15, 500),
        ]
    ],
    Row("unauthenticated-www-authenticate", "runtime/errors.go: DefaultHTTPErrorHandler (WWW-Authenticate)", "GET",
        "/v1/fail/16?message=Bearer%20realm%3D%22api%22", 401, status(16, 'Bearer realm="api"'),
        expect_headers={"www-authenticate": 'Bearer realm="api"', "content-type": "application/json"}),
    Row("no-www-authenticate-otherwise", "runtime/errors.go: DefaultHTTPErrorHandler", "GET",
        "/v1/fail/7?message=no", 403, status(7, "no"), expect_headers={"www-authenticate": None}),
    Row("error-details", "runtime/errors.go: DefaultHTTPErrorHandler (status.Convert(err).Proto())", "GET",
        "/v1/fail/9?message=m&with_details=true", 400,
        {"code": 9, "message": "m", "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "TEST_REASON", "domain": "conformance.test"}]}),
    # --- 2. Streaming envelope and mid-stream errors --------------------------------------------
    Row("stream-results", 'runtime/handler.go: ForwardResponseStream ({"result": ...} + \\n)', "GET",
        "/v1/stream?count=2&template.string_value=s", 200,
        [{"result": everything(stringValue="s")}, {"result": everything(stringValue="s", int32Value=1)}], lines=True),
    Row("stream-error-mid-stream", "runtime/handler.go: handleForwardResponseStreamError (errorChunk)", "GET",
        "/v1/stream?count=1&fail_code=10", 200, [{"result": everything()}, {"error": status(10, "failed after 1")}],
        lines=True),
    Row("stream-error-first",
        "grpc-go stream.go: clientStream.Header (\"Do not return the error\"), so the generated request func "
        "returns the stream and runtime/handler.go: handleForwardResponseStreamError writes the first Recv's "
        "error as an errorChunk line with HTTPStatusFromCode",
        "GET", "/v1/stream?count=0&fail_code=5", 404, [{"error": status(5, "failed after 0")}], lines=True),
    Row("stream-error-first-status-table", "runtime/handler.go: handleForwardResponseStreamError (HTTPStatusFromCode)",
        "GET", "/v1/stream?count=0&fail_code=16", 401, [{"error": status(16, "failed after 0")}], lines=True,
        expect_headers={"www-authenticate": None}),
    Row("bidi-error-first", "differs: gengateway template.go bidi handleSend drops the error and grpc-gateway answers "
        "200 with no lines; as in bidi-malformed-keeps-replies we end the stream with the error line, here the "
        "first, so it carries the mapped status (runtime/handler.go: handleForwardResponseStreamError)", "POST",
        "/v1/chat", 400, [{"error": has_code(3)}], content=b'{"int32Value":"x"}\n', lines=True),
    Row("stream-response-body",
        "gengateway template.go: XXX_ResponseBody; runtime/handler.go: ForwardResponseStream", "GET",
        "/v1/stream/nested?count=1&template.nested.name=n", 200, [{"result": {**NESTED_EMPTY, "name": "n"}}],
        lines=True),
    Row("bidi-lines",
        "gengateway template.go: bidi-streaming-request-func; runtime/handler.go: ForwardResponseStream", "POST",
        "/v1/chat", 200,
        [{"result": everything(stringValue="a")}, {"result": everything(stringValue="b", int64Value="1")}],
        content=b'{"stringValue":"a"}\n{"stringValue":"b"}\n', lines=True),
    Row("bidi-malformed-keeps-replies",
        "differs: gengateway template.go bidi handleSend half-closes and drops the error; we half-close and " "end the stream with the error line, so the client learns its message was refused",
        "POST", "/v1/chat", 200, [{"result": everything(stringValue="a")}, {"error": has_code(3)}],
        content=b'{"stringValue":"a"}\n{"int32Value":"x"}\n{"stringValue":"c"}\n', lines=True),
    Row("client-stream", "gengateway template.go: client-streaming-request-func (CloseAndRecv)", "POST",
        "/v1/collect", 200, everything(stringValue="a,b", int64Value="2"),
        content=b'{"stringValue":"a"} {"stringValue":"b"}'),
    Row("client-stream-malformed",
        "gengateway template.go: client-streaming-request-func (Decode -> InvalidArgument)", "POST", "/v1/collect",
        400, has_code(3), content=b'{"stringValue":"a"}\n{"int32Value":true}\n'),
    # --- 3. Query parameters: every scalar, enums, repeated, nested, maps, oneofs, WKTs ---------
    Row("query-scalars", "runtime/query.go: DefaultQueryParser.Parse, parseField", "GET",
        "/v1/everything/s?double_value=1.5&float_value=-2.5&int32_value=-2147483648" "&int64_value=9223372036854775807&uint32_value=4294967295&uint64_value=18446744073709551615" "&sint32_value=-7&sint64_value=-9223372036854775808&fixed32_value=7&fixed64_value=8" "&sfixed32_value=-9&sfixed64_value=-10&bool_value=T&bytes_value=aGk%3D&color=COLOR_GREEN",
        200,
        everything(stringValue="s", doubleValue=1.5, floatValue=-2.5, int32Value=-2147483648, int64Value="9223372036854775807", uint32Value=4294967295, uint64Value="18446744073709551615", sint32Value=-7, sint64Value="-9223372036854775808", fixed32Value=7, fixed64Value="8", sfixed32Value=-9, sfixed64Value="-10", boolValue=True, bytesValue="aGk=", color="COLOR_GREEN")),
    Row("query-json-names", "runtime/query.go: populateFieldValueFromPath (fields.ByJSONName)", "GET",
        "/v1/everything/s?int32Value=3&repeatedString=a", 200,
        everything(stringValue="s", int32Value=3, repeatedString=["a"])),
    Row("query-plus-sign-int", "runtime/query.go: parseField (strconv.ParseInt accepts a sign)", "GET",
        "/v1/everything/s?int32_value=%2B5", 200, everything(stringValue="s", int32Value=5)),
    *[
        Row(f"query-bad-{name}-{value}", "runtime/query.go: parseField (strconv errors -> InvalidArgument)", "GET",
            f"/v1/everything/s?{name}={value}", 400, has_code(3))
        for name, value in [
            ("int32_value", "2147483648"), ("int32_value", "-2147483649"), ("int32_value", "99999999999"),
            ("int64_value", "9223372036854775808"), ("uint32_value", "-1"), ("uint64_value", "-1"),
            ("uint64_value", "18446744073709551616"), ("fixed32_value", "4294967296"), ("sint32_value", "1.5"),
            ("int32_value", "%201"), ("int32_value", "1_000"), ("int32_value", "0x10"), ("int32_value", ""),
            ("float_value", "1e39"), ("double_value", "1e400"), ("double_value", "1_0"), ("bool_value", "yes"),
            ("bool_value", ""), ("bytes_value", "%25%25"), ("color", "COLOR_BLUE"), ("color", "9"),
        ]
    ],
    Row("query-float-specials", "runtime/query.go: parseField (strconv.ParseFloat: inf, nan)", "GET",
        "/v1/everything/s?double_value=-Inf&float_value=nan", 200,
        everything(stringValue="s", doubleValue="-Infinity", floatValue="NaN")),
    Row("query-bytes-url-safe", "runtime/convert.go: Bytes (StdEncoding, then URLEncoding)", "GET",
        "/v1/everything/s?bytes_value=-_8%3D", 200, everything(stringValue="s", bytesValue="+/8=")),
    Row("query-enum-number", "runtime/query.go: parseField (enum by number)", "GET", "/v1/everything/s?color=1", 200,
        everything(stringValue="s", color="COLOR_RED")),
    Row("query-repeated", "runtime/query.go: populateRepeatedField", "GET",
        "/v1/everything/s?repeated_int32=1&repeated_int32=-2&repeated_color=COLOR_RED&repeated_color=2", 200,
        everything(stringValue="s", repeatedInt32=[1, -2], repeatedColor=["COLOR_RED", "COLOR_GREEN"])),
    Row("query-singular-twice", "runtime/query.go: populateFieldValueFromPath (too many values)", "GET",
        "/v1/everything/s?int32_value=1&int32_value=2", 400, has_code(3)),
    Row("query-nested", "runtime/query.go: populateFieldValueFromPath (dotted path)", "GET",
        "/v1/everything/s?nested.name=n&nested.amount=5&nested.color=COLOR_RED", 200,
        everything(stringValue="s", nested={"name": "n", "amount": "5", "color": "COLOR_RED"})),
    Row("query-path-through-scalar", "runtime/query.go: populateFieldValueFromPath (is not a message)", "GET",
        "/v1/everything/s?int32_value.x=1", 400, has_code(3)),
    Row("query-unknown-ignored", "runtime/query.go: populateFieldValueFromPath (field not found: ignored)", "GET",
        "/v1/everything/s?nope=1&nested.nope=2&methodType=x", 200, everything(stringValue="s")),
    Row("query-map", "runtime/query.go: valuesKeyRegexp, populateMapField", "GET",
        "/v1/everything/s?labels%5Bk1%5D=v1&labels[k2]=v2&numbers[7]=-8", 200,
        everything(stringValue="s", labels={"k1": "v1", "k2": "v2"}, numbers={"7": "-8"})),
    Row("query-map-no-key", "runtime/query.go: populateMapField (one key, one value)", "GET",
        "/v1/everything/s?labels=v", 400, has_code(3)),
    Row("query-map-bad-key", "runtime/query.go: populateMapField (parsing map key)", "GET",
        "/v1/everything/s?numbers[x]=1", 400, has_code(3)),
    Row("query-oneof", "runtime/query.go: populateFieldValueFromPath", "GET", "/v1/everything/s?choice_text=t", 200,
        everything(stringValue="s", choiceText="t")),
    Row("query-oneof-twice", "runtime/query.go: populateFieldValueFromPath (field already set for oneof)", "GET",
        "/v1/everything/s?choice_text=t&choice_nested.name=n", 400, has_code(3)),
    Row("query-optional", "protobuf-go encoding/protojson: unpopulatedFieldRanger (set optional printed)", "GET",
        "/v1/everything/s?optional_int32=0", 200, everything(stringValue="s", optionalInt32=0)),
    Row("query-timestamp", "runtime/query.go: parseMessage (time.RFC3339Nano)", "GET",
        "/v1/everything/s?timestamp=2024-01-02T03:04:05.5%2B01:00", 200,
        everything(stringValue="s", timestamp="2024-01-02T02:04:05.500Z")),
    Row("query-timestamp-bad", "runtime/query.go: parseMessage", "GET", "/v1/everything/s?timestamp=yesterday", 400,
        has_code(3)),
    *[
        Row(f"query-duration-{text}", "runtime/query.go: parseMessage (time.ParseDuration)", "GET",
            f"/v1/everything/s?duration={text}", 200, everything(stringValue="s", duration=shown))
        for text, shown in [
            ("100ms", "0.100s"), ("1m30s", "90s"), ("-1.5h", "-5400s"), ("0", "0s"),
            ("1h2m3.004005006s", "3723.004005006s"), ("1.5s", "1.500s"),
        ]
    ],
    *[
        Row(f"query-duration-bad-{text}", "runtime/query.go: parseMessage (time.ParseDuration errors)", "GET",
            f"/v1/everything/s?duration={text}", 400, has_code(3))
        for text in ["1d", "s", "1", "9999999h", ""]
    ],
    Row("query-fieldmask", "runtime/query.go: parseMessage (FieldMask: split on ',')", "GET",
        "/v1/everything/s?field_mask=nested.name,string_value", 200,
        everything(stringValue="s", fieldMask="nested.name,stringValue")),
    Row("query-wrappers", "runtime/query.go: parseMessage (wrappers)", "GET",
        "/v1/everything/s?int32_wrapper=-1&int64_wrapper=5&string_wrapper=&bool_wrapper=false" "&double_wrapper=2.5&bytes_wrapper=aGk%3D",
        200,
        everything(stringValue="s", int32Wrapper=-1, int64Wrapper="5", stringWrapper="", boolWrapper=False, doubleWrapper=2.5, bytesWrapper="aGk=")),
    Row("query-wrapper-range", "runtime/query.go: parseMessage (Int32Value: strconv.ParseInt(v, 10, 32))", "GET",
        "/v1/everything/s?int32_wrapper=2147483648", 400, has_code(3)),
    Row("query-struct-value", "runtime/query.go: parseMessage (Struct, Value: protojson.Unmarshal)", "GET",
        "/v1/everything/s?struct_value=%7B%22a%22%3A%5B1%2Cnull%5D%7D&value=%22x%22", 200,
        everything(stringValue="s", structValue={"a": [1, None]}, value="x")),
    Row("query-struct-bad", "runtime/query.go: parseMessage (Struct)", "GET",
        "/v1/everything/s?struct_value=%5B1%5D", 400, has_code(3)),
    Row("query-bad-escape", "gengateway template.go: req.ParseForm error -> InvalidArgument", "GET",
        "/v1/everything/s?int32_value=%zz", 400, has_code(3)),
    Row("query-semicolon", "gengateway template.go: req.ParseForm (net/url.ParseQuery: invalid semicolon separator)",
        "GET", "/v1/everything/s?a;b=1", 400, has_code(3)),
    Row("query-semicolon-in-value",
        "gengateway template.go: req.ParseForm (net/url.ParseQuery refuses a pair with ';' anywhere in it)", "GET",
        "/v1/everything/s?string_value=a;b", 400, has_code(3)),
    # --- 4. Path templates and escaping ---------------------------------------------------------
    Row("path-escaped", "runtime/pattern.go: Pattern.MatchAndEscape (segment unescaped)", "GET",
        "/v1/everything/a%20b", 200, everything(stringValue="a b")),
    Row("path-escaped-slash",
        "differs: google/api/http.proto says a single-segment variable decodes %2F; grpc-gateway's default " "UnescapingModeLegacy splits on it first and answers 404",
        "GET", "/v1/everything/a%2Fb", 200, everything(stringValue="a/b")),
    Row("path-double-star", "runtime/pattern.go: Pattern.MatchAndEscape (OpPushM)", "GET", "/v1/files/a/b/c.txt",
        200, everything(stringValue="a/b/c.txt")),
    Row("path-double-star-keeps-2f",
        "differs: grpc-gateway's default UnescapingModeLegacy decodes the whole path first (a/b/c); we keep %2F in "
        "a multi-segment variable, as google/api/http.proto says and grpc-gateway's own "
        "UnescapingModeAllExceptSlash does, so an encoded slash stays distinguishable from a separator",
        "GET", "/v1/files/a/b%2Fc", 200, everything(stringValue="a/b%2Fc")),
    Row("path-double-star-empty", "runtime/pattern.go: Pattern.MatchAndEscape (OpPushM takes zero components)",
        "GET", "/v1/files", 200, everything()),
    Row("path-empty-last-segment", "runtime/pattern.go: Pattern.MatchAndEscape (OpPush takes an empty component)",
        "GET", "/v1/everything/", 200, everything()),
    Row("path-empty-inner-segment", "runtime/pattern.go: Pattern.MatchAndEscape (OpPush takes an empty component)",
        "GET", "/v1/everything//nested?nested.name=n", 200, {**NESTED_EMPTY, "name": "n"}),
    Row("path-trailing-slash", "runtime/pattern.go: Pattern.MatchAndEscape (components left over: ErrNotMatch)",
        "GET", "/v1/metadata/", 404, status(5, "Not Found")),
    Row("path-escaped-literal", "runtime/mux.go: ServeMux.ServeHTTP (UnescapingModeLegacy routes on r.URL.Path, "
        "decoded)", "GET", "/v1/%65verything/x", 200, everything(stringValue="x")),
    Row("path-escaped-verb", "runtime/mux.go: ServeMux.ServeHTTP (the verb found on the decoded last component)",
        "POST", "/v1/rooms/r1%3Aenter", 200, everything(stringValue="rooms/r1"), content=b"{}"),
    Row("path-last-declared-wins", "runtime/mux.go: ServeMux.Handle (prepends: the last registered pattern is "
        "tried first)", "GET", "/v1/everything/me", 200, everything(stringValue="Me")),
    Row("path-earlier-route-elsewhere", "runtime/mux.go: ServeMux.ServeHTTP (falls through to the next pattern)",
        "GET", "/v1/everything/mine", 200, everything(stringValue="mine")),
    Row("path-verb", "runtime/mux.go: ServeMux.ServeHTTP (verb suffix)", "POST", "/v1/rooms/r1:enter", 200,
        everything(stringValue="rooms/r1"), content=b"{}"),
    Row("path-wrong-verb", "runtime/mux.go: ServeMux.ServeHTTP", "POST", "/v1/rooms/r1:leave", 404,
        status(5, "Not Found"), content=b"{}"),
    Row("path-custom-method", "runtime/mux.go: ServeMux.Handle (any method token)", "PURGE", "/v1/everything/p", 200,
        everything(stringValue="p")),
    Row("path-nested-fields", "runtime/query.go: PopulateFieldFromPath (nested path parameters)", "GET",
        "/v1/by-nested/n/42", 200, everything(nested={"name": "n", "amount": "42", "color": "COLOR_UNSPECIFIED"})),
    Row("path-bad-int", "gengateway template.go: type mismatch, parameter -> InvalidArgument", "GET",
        "/v1/by-nested/n/many", 400, has_code(3)),
    Row("path-out-of-range", "runtime/convert.go: Int32 (strconv.ParseInt(val, 0, 32): out of range)", "PUT",
        "/v1/everything/99999999999", 400, has_code(3), content=b"{}"),
    *[
        Row(f"path-int-base0-{text}", "runtime/convert.go: Int32 (strconv.ParseInt(val, 0, 32))", "PUT",
            f"/v1/everything/{text}", 200, everything(int32Value=value, nested=NESTED_EMPTY), content=b"{}")
        for text, value in [("0x10", 16), ("0o17", 15), ("0b11", 3), ("010", 8), ("1_0", 10), ("-0x10", -16),
                            ("+7", 7), ("0x7fffffff", 2147483647)]
    ],
    *[
        Row(f"path-int-base0-bad-{text}", "runtime/convert.go: Int32 (strconv.ParseInt syntax errors)", "PUT",
            f"/v1/everything/{text}", 400, has_code(3), content=b"{}")
        for text in ["08", "0x", "1__0", "_1", "1_", "0x80000000", "1.0"]
    ],
    Row("path-repeated-split", "gengateway template.go: ConvertFuncExpr with GetRepeatedPathParamSeparator; "
        "runtime/convert.go: Int32Slice, EnumSlice (strings.Split on ',')", "GET", "/v1/list/1,0x2,-3/COLOR_RED,2",
        200, everything(repeatedInt32=[1, 2, -3], repeatedColor=["COLOR_RED", "COLOR_GREEN"])),
    Row("path-repeated-bad-element", "runtime/convert.go: Int32Slice (each element by Int32)", "GET",
        "/v1/list/1,,3/1", 400, has_code(3)),
    Row("path-nested-base10", "gengateway template.go: IsNestedProto3 -> runtime/query.go: PopulateFieldFromPath "
        "(parseField: strconv.ParseInt(value, 10, 64))", "GET", "/v1/by-nested/n/0x10", 400, has_code(3)),
    # --- 4b. Form POSTs: the path-length fallback and X-HTTP-Method-Override -----------------------
    Row("form-post-falls-back-to-get", "runtime/mux.go: ServeMux.ServeHTTP (isPathLengthFallback: a GET pattern "
        "for a POST of a form; r.ParseForm puts the body's values before the query's)", "POST",
        "/v1/everything/s?repeated_string=q", 200,
        everything(stringValue="s", int32Value=5, repeatedString=["b", "q"]),
        content=b"int32_value=5&repeated_string=b", headers={"Content-Type": "application/x-www-form-urlencoded"}),
    Row("form-post-no-get-route", "runtime/mux.go: ServeMux.ServeHTTP (only POST -> GET falls back; else 405 -> 501)",
        "POST", "/v1/things/t1", 501, status(12, "Method Not Allowed"), content=b"a=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"}),
    Row("form-post-bad-form", "runtime/mux.go: ServeMux.ServeHTTP (r.ParseForm error -> InvalidArgument)", "POST",
        "/v1/everything/s", 400, has_code(3), content=b"int32_value=%zz",
        headers={"Content-Type": "application/x-www-form-urlencoded"}),
    Row("form-post-charset-no-fallback", "runtime/mux.go: isPathLengthFallback (Content-Type compared exactly)",
        "POST", "/v1/everything/s", 501, status(12, "Method Not Allowed"), content=b"a=1",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}),
    Row("method-override", "runtime/mux.go: ServeMux.ServeHTTP (X-HTTP-Method-Override, upper-cased, for a form "
        "POST)", "POST", "/v1/everything/p", 200, everything(stringValue="p", int32Value=3), content=b"int32_value=3",
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-HTTP-Method-Override": "purge"}),
    Row("method-override-needs-form", "runtime/mux.go: ServeMux.ServeHTTP (override only when isPathLengthFallback)",
        "POST", "/v1/everything/p", 501, status(12, "Method Not Allowed"), content=b"{}",
        headers={"X-HTTP-Method-Override": "GET"}),
    # --- 5. Body rules, response_body, additional_bindings --------------------------------------
    Row("body-star-ignores-query", 'gengateway template.go: binding.HasQueryParam (false for body "*")', "POST",
        "/v1/everything?int32_value=5", 200, everything(stringValue="b"),
        content=b'{"stringValue":"b","unknownField":1}'),
    Row("body-field-plus-path-and-query", "gengateway template.go: QueryParamFilter (body and path fields)", "PUT",
        "/v1/everything/7?nested.name=q&string_value=s", 200,
        everything(stringValue="s", int32Value=7, nested={**NESTED_EMPTY, "name": "b"}), content=b'{"name":"b"}'),
    Row("body-empty", "gengateway template.go: Decode io.EOF tolerated", "POST", "/v1/everything", 200, everything(),
        content=b""),
    Row("body-not-json", "gengateway template.go: Decode error -> InvalidArgument", "POST", "/v1/everything", 400,
        has_code(3), content=b'{"stringValue":'),
    Row("body-int-range", "protobuf-go encoding/protojson: unmarshalInt (out of range)", "POST", "/v1/everything",
        400, has_code(3), content=b'{"int32Value":3000000000}'),
    Row("body-wrong-type", "protobuf-go encoding/protojson: decoder.unmarshalMessage (unexpectedTokenError)", "PUT",
        "/v1/everything/1", 400, has_code(3), content=b"[1,2]"),
    Row("body-null", "runtime/marshal_jsonpb.go: decodeJSONPb -> protobuf-go encoding/protojson: "
        "decoder.unmarshalMessage (unexpected token null)", "POST", "/v1/everything", 400, has_code(3),
        content=b"null"),
    Row("body-field-null", "runtime/marshal_jsonpb.go: decodeNonProtoField -> protojson.Unmarshal of a message "
        "(unexpected token null)", "PUT", "/v1/everything/1", 400, has_code(3), content=b"null"),
    Row("client-stream-null", "gengateway template.go: client-streaming-request-func (Decode -> InvalidArgument)",
        "POST", "/v1/collect", 400, has_code(3), content=b'{"stringValue":"a"}\nnull\n'),
    Row("response-body-message",
        "gengateway template.go: XXX_ResponseBody; runtime/handler.go: ForwardResponseMessage", "GET",
        "/v1/everything/x/nested?nested.name=a", 200, {**NESTED_EMPTY, "name": "a"}),
    Row("response-body-unset-message", "gengateway template.go: XXX_ResponseBody (nil message prints its defaults)",
        "GET", "/v1/everything/x/nested", 200, NESTED_EMPTY),
    Row("response-body-repeated", "runtime/marshal_jsonpb.go: marshalNonProtoField (slice)", "GET",
        "/v1/everything/x/tags?repeated_string=a&repeated_string=b", 200, ["a", "b"]),
    Row("response-body-int64",
        "differs: runtime/marshal_jsonpb.go marshalNonProtoField prints a bare int64 field with encoding/json, " "as a number; we keep protojson's string, as everywhere else (JavaScript loses precision past 2^53)",
        "GET", "/v1/everything/x/int64?int64_value=9007199254740993", 200, "9007199254740993"),
    Row("patch-mask-from-query", "runtime/query.go: parseMessage (FieldMask paths passed through)", "PATCH",
        "/v1/things/t1?update_mask=display_name,size", 200,
        {"thing": {"name": "things/t1", "displayName": "display_name,size", "size": 0}, "updateMask": None},
        content=b'{"displayName":"x"}'),
    Row("patch-mask-camel-kept", "runtime/query.go: parseMessage (FieldMask paths not rewritten)", "PATCH",
        "/v1/things/t1?updateMask=displayName", 200,
        {"thing": {"name": "things/t1", "displayName": "displayName", "size": 0}, "updateMask": None}, content=b"{}"),
    Row("patch-mask-from-body", "runtime/fieldmask.go: FieldMaskFromRequestBody (AllowPatchFeature)", "PATCH",
        "/v1/things/t1", 200,
        {"thing": {"name": "things/t1", "displayName": "display_name,size", "size": 3}, "updateMask": None},
        content=b'{"size":3,"displayName":"x"}'),
    Row("patch-mask-unknown-body-field", "runtime/fieldmask.go: FieldMaskFromRequestBody (could not find field)",
        "PATCH", "/v1/things/t1", 400, has_code(3), content=b'{"colour":3}'),
    # --- 6. Metadata, both directions -----------------------------------------------------------
    Row("md-authorization", "runtime/context.go: annotateContext (authorization, and grpcgateway- as permanent)",
        "GET", "/v1/metadata", 200,
        lambda body: ({"authorization=Bearer t", "grpcgateway-authorization=Bearer t"} <= set(body["received"])),
        headers={"Authorization": "Bearer t"}),
    Row("md-prefix-and-permanent", "runtime/mux.go: DefaultHeaderMatcher; runtime/context.go: isPermanentHTTPHeader",
        "GET", "/v1/metadata", 200,
        lambda body: ({"trace-id=abc", "grpcgateway-user-agent=tester"} <= set(body["received"]) and not any(item.startswith("x-custom") for item in body["received"])),
        headers={"Grpc-Metadata-Trace-Id": "abc", "User-Agent": "tester", "X-Custom": "no"}),
    Row("md-binary", "runtime/context.go: decodeBinHeader", "GET", "/v1/metadata", 200,
        lambda body: "blob-bin=AAEC" in body["received"], headers={"Grpc-Metadata-Blob-Bin": "AAEC"}),
    Row("md-binary-unpadded", "runtime/context.go: decodeBinHeader (RawStdEncoding when unpadded)", "GET",
        "/v1/metadata", 200, lambda body: "blob-bin=AAE=" in body["received"],
        headers={"Grpc-Metadata-Blob-Bin": "AAE"}),
    Row("md-binary-malformed", "runtime/context.go: annotateContext (invalid binary header -> InvalidArgument)",
        "GET", "/v1/metadata", 400, has_code(3), headers={"Grpc-Metadata-Blob-Bin": "!!!!"}),
    Row("md-binary-unpadded-with-padding", "runtime/context.go: decodeBinHeader (RawStdEncoding refuses '=')",
        "GET", "/v1/metadata", 400, has_code(3), headers={"Grpc-Metadata-Blob-Bin": "AA="}),
    Row("md-forwarded", "runtime/context.go: annotateContext (X-Forwarded-Host, X-Forwarded-For)", "GET",
        "/v1/metadata", 200,
        lambda body: ({"x-forwarded-host=api.example", "x-forwarded-for=10.0.0.1, 127.0.0.1"} <= set(body["received"])),
        headers={"X-Forwarded-Host": "api.example", "X-Forwarded-For": "10.0.0.1"}),
    Row("md-host", "runtime/context.go: annotateContext (req.Host as x-forwarded-host)", "GET", "/v1/metadata", 200,
        lambda body: (any(item.startswith("x-forwarded-host=127.0.0.1:") for item in body["received"]) and "x-forwarded-for=127.0.0.1" in body["received"])),
    Row("md-timeout-bad", "runtime/context.go: annotateContext (invalid grpc-timeout)", "GET", "/v1/metadata", 400,
        has_code(3), headers={"Grpc-Timeout": "soon"}),
    Row("md-reserved-dropped", "grpc-go internal/transport/http_util.go: isReservedHeader (the client leaves these out)",
        "GET", "/v1/metadata", 200,
        lambda body: not any(item.startswith(("grpc-status=", "grpc-message=", "te=")) for item in body["received"]),
        headers={"Grpc-Metadata-Grpc-Status": "5", "Grpc-Metadata-Grpc-Message": "forged", "Grpc-Metadata-Te": "x"}),
    Row("md-bin-without-name", "differs: runtime/context.go passes `-bin` on (grpc-go sends it); grpcio refuses such a "
        "key and the call would fail, so we leave it out",
        "GET", "/v1/metadata", 200, lambda body: not any(item.startswith("-bin=") for item in body["received"]),
        headers={"Grpc-Metadata--Bin": "AA=="}),
    *[
        Row(f"md-timeout-past-{value}", "runtime/context.go: timeoutDecode (int64 nanoseconds, wrapping) -> "
            "context.WithTimeout already done -> grpc-go stream.go: newAttemptLocked (cs.ctx.Err())", "GET",
            "/v1/metadata", 504, status(4, "context deadline exceeded"), headers={"Grpc-Timeout": value})
        for value in ["-1S", "99999999H", "-5n"]
    ],
    *[
        Row(f"md-timeout-ok-{value}", "runtime/context.go: timeoutDecode (strconv.ParseInt(digits, 10, 64))", "GET",
            "/v1/metadata", 200, lambda body: "received" in body, headers={"Grpc-Timeout": value})
        for value in ["123456789S", "+5S", "0S", "-0M", "9223372036854775807n"]
    ],
    *[
        Row(f"md-timeout-bad-{name}", "runtime/context.go: timeoutDecode errors -> annotateContext InvalidArgument",
            "GET", "/v1/metadata", 400, has_code(3), headers={"Grpc-Timeout": value})
        for name, value in [("short", "S"), ("unit", "5s"), ("space", "5 S"), ("int64", "9223372036854775808n")]
    ],
    Row("md-response-headers", "runtime/handler.go: handleForwardResponseServerMetadata (Grpc-Metadata-)", "GET",
        "/v1/metadata?reply_headers=color%3Dblue", 200, lambda body: "received" in body,
        expect_headers={"grpc-metadata-color": "blue"}),
    Row("md-response-headers-on-error", "runtime/errors.go: DefaultHTTPErrorHandler (server metadata)", "GET",
        "/v1/metadata?reply_headers=color%3Dred&fail_code=9", 400, status(9, "metadata failure"),
        expect_headers={"grpc-metadata-color": "red"}),
    Row("md-no-trailers-without-te", "runtime/handler.go: requestAcceptsTrailers", "GET",
        "/v1/metadata?reply_trailers=t%3D1", 200, lambda body: "received" in body,
        expect_headers={"grpc-trailer-t": None}),
    # --- 7. JSON output ---------------------------------------------------------------------------
    Row("json-unprintable", "runtime/handler.go: ForwardResponseMessage (Marshal error -> HTTPError -> Unknown); "
        "protobuf-go encoding/protojson: FieldMask paths must round-trip to lowerCamelCase",
        "GET", "/v1/everything/s?field_mask=displayName", 500, lambda body: body == UNPRINTABLE),
    Row("json-empty-message",
        "protobuf-go encoding/protojson: encoder.marshalMessage (EmitUnpopulated, " "order.IndexNameFieldOrder, unpopulatedFieldRanger)",
        "POST", "/v1/everything", 200, EMPTY, content=b"{}"),
    Row("json-wkt-and-nested", "protobuf-go encoding/protojson: well_known_types.go", "POST", "/v1/everything", 200,
        everything(nested=NESTED_EMPTY, timestamp="1970-01-01T00:00:00Z", duration="0s", fieldMask="", int32Wrapper=0, structValue={}, repeatedNested=[NESTED_EMPTY], choiceNested=NESTED_EMPTY),
        content=b'{"nested":{},"timestamp":"1970-01-01T00:00:00Z","duration":"0s","fieldMask":"",' b'"int32Wrapper":0,"structValue":{},"repeatedNested":[{}],"choiceNested":{}}'),
    Row("json-unicode", "protobuf-go encoding/protojson: strings kept as UTF-8", "POST", "/v1/everything", 200,
        everything(stringValue="é ☃"), content='{"stringValue":"é ☃"}'.encode()),
]
# fmt: on


@pytest.fixture(scope="module", params=["channel", "inprocess"])
def gateway(request: pytest.FixtureRequest) -> Iterator[Running]:
    """Both gateway bindings answer every row alike: over a grpc.aio channel, and in-process."""
    with serve_gateway_in_thread(binding=request.param) as running:
        yield running


@pytest.fixture(scope="module")
def http(gateway: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.http, timeout=30) as client:
        yield client


def _matches(expected: Any, actual: Any) -> bool:
    if callable(expected):
        return bool(expected(actual))
    if isinstance(expected, dict) and isinstance(actual, dict):
        return list(expected) == list(actual) and all(_matches(expected[k], actual[k]) for k in expected)
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(map(_matches, expected, actual))
    return bool(expected == actual and type(expected) is type(actual)) or (
        isinstance(expected, (int, float))
        and isinstance(actual, (int, float))
        and expected == actual
        and not isinstance(expected, bool)
        and not isinstance(actual, bool)
    )


def test_every_row_cites_its_source() -> None:
    for row in ROWS:
        cited = row.cite.startswith("differs: ") or "protobuf-go" in row.cite
        assert cited or ".go" in row.cite or ".proto" in row.cite, row.id
    assert len({row.id for row in ROWS}) == len(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_conformance(http: httpx.Client, row: Row) -> None:
    response = http.request(row.method, row.url, content=row.content, headers=row.headers)
    assert response.status_code == row.status, (row.cite, response.text)
    assert response.headers["content-type"] == "application/json"
    if row.lines:
        assert response.text.endswith("\n")
        body: Any = [json.loads(line) for line in response.text.splitlines()]
    else:
        body = json.loads(response.text)
    assert _matches(row.body, body), (row.cite, body)
    for name, value in row.expect_headers.items():
        assert response.headers.get(name) == value, (row.cite, name, response.headers)


def test_docs_compatibility_table_matches_the_rows() -> None:
    """docs/gateway.md's table names only rows that exist, and every `differs:` row is a `differs` there."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "gateway.md").read_text()
    table = doc.split("## Compatibility with grpc-gateway v2", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    ids = {row.id for row in ROWS}
    named: set[str] = set()
    for line in lines:
        rows_cell = line.rstrip(" |").rsplit("|", 1)[1]
        for name in re.findall(r"`([a-z0-9*-]+)`", rows_cell):
            if name.endswith("*"):
                assert any(i.startswith(name[:-1]) for i in ids), name
                named |= {i for i in ids if i.startswith(name[:-1])}
            else:
                assert name in ids, name
                named.add(name)
    for row in ROWS:
        if row.cite.startswith("differs: "):
            line = next((line for line in lines if f"`{row.id}`" in line), "")
            assert "| differs" in line, f"{row.id} differs but docs/gateway.md does not say so"
    assert len(named) > len(ROWS) // 2


def test_declaration_order_is_byte_exact(http: httpx.Client) -> None:
    """protojson prints fields in declaration order; json.loads keeps it, so check the raw bytes too."""
    text = http.post("/v1/everything", content=b'{"floatValue":1,"doubleValue":2}').text
    assert text.startswith('{"stringValue":"","doubleValue":2,"floatValue":1,"int32Value":0,')


def test_integral_floats_are_spelled_as_protojson_does(http: httpx.Client) -> None:
    """protobuf-go internal/encoding/json appendFloat: strconv 'f' format, so 0 and 3, never 0.0 or 3.0."""
    body = b'{"doubleValue":3,"doubleWrapper":-2,"nested":{},"floatValue":0.5}'
    text = http.post("/v1/everything", content=body).text
    assert '"doubleValue":3,"floatValue":0.5,' in text
    assert '"doubleWrapper":-2,' in text


# --- No bad client input is ever a 5xx ------------------------------------------------------------
FIELD_NAMES = [key for key in EMPTY] + [
    "string_value",
    "int32_value",
    "nested.amount",
    "labels[k]",
    "numbers[1]",
    "choice_text",
    "choice_nested.name",
    "optional_int32",
    "template.nested.amount",
    "count",
    "update_mask",
]
URL_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
PATHS = ["/v1/everything/s", "/v1/stream", "/v1/things/t", "/v1/by-nested/a/b", "/v1/everything/1"]


def _quote(text: str) -> str:
    return httpx.QueryParams({"x": text}).__str__()[2:]


RAW = ["%zz", "%ED%A0%80", "%FF"]  # sent as they are: a bad escape, a UTF-8 surrogate, a lone byte


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(PATHS),
    pairs=st.lists(
        st.tuples(
            st.sampled_from(FIELD_NAMES),
            URL_TEXT
            | st.sampled_from(["99999999999", "-1", "1e400", "NaN", "1h", "{", "[1]", "a,b", "AAE", *RAW]),
        ),
        max_size=4,
    ),
    # "." and ".." are dot segments: the client resolves them (RFC 3986 5.2.4) before sending, and the
    # path left may be another route's, answered 501 for this method as grpc-gateway does.
    segment=URL_TEXT.filter(lambda text: text not in (".", "..")),
)
def test_malformed_query_and_path_values_are_never_5xx(
    http: httpx.Client, path: str, pairs: list[tuple[str, str]], segment: str
) -> None:
    query = "&".join(f"{_quote(name)}={value if value in RAW else _quote(value)}" for name, value in pairs)
    method = {"/v1/things/t": "PATCH", "/v1/everything/1": "PUT"}.get(path, "GET")
    url = path.replace("/s", "/" + (_quote(segment) or "s")) if path.endswith("/s") else path
    response = http.request(method, f"{url}?{query}", content=b"{}" if method != "GET" else None)
    if response.status_code == 500 and any(name in ("fieldMask", "field_mask") for name, _ in pairs):
        # Echoed back, a mask path with capitals has no JSON form: the `json-unprintable` row.
        assert response.json() == UNPRINTABLE
        return
    assert response.status_code < 500, (url, query, response.text)
    assert response.headers["content-type"] == "application/json"


SURROGATES = st.sampled_from(["\ud800", "a\udfff", "COLOR_RED\udc00"])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | SURROGATES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    target=st.sampled_from(
        [
            ("POST", "/v1/everything"),
            ("PUT", "/v1/everything/1"),
            ("PATCH", "/v1/things/t"),
            ("POST", "/v1/collect"),
            ("POST", "/v1/chat"),
        ]
    ),
    body=st.dictionaries(
        st.sampled_from([*EMPTY, "choiceText", "optionalInt32", "name", "size"]), JSON_VALUES, max_size=4
    )
    .map(json.dumps)
    .map(str.encode)
    | st.binary(max_size=40),
)
def test_malformed_bodies_are_never_5xx(http: httpx.Client, target: tuple[str, str], body: bytes) -> None:
    response = http.request(target[0], target[1], content=body)
    assert response.status_code < 500, (target, body, response.text)
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("POST", "/v1/everything", b"[" * 100_000),  # deeper than any recursion limit
        ("POST", "/v1/everything", b'{"structValue":' + b'{"a":' * 5000 + b"1" + b"}" * 5001),
        ("POST", "/v1/everything", b'{"stringValue":"\\ud800"}'),  # a lone surrogate
        ("POST", "/v1/everything", b'{"color":"\\ud800"}'),  # upb raised SystemError on this one
        ("POST", "/v1/everything", b'{"doubleValue":"\\ud800"}'),  # the error message quotes it
        ("POST", "/v1/everything", b'{"repeatedColor":["\\udfff"]}'),
        ("POST", "/v1/chat", b'{"nested":{"color":"\\ud800"}}'),
        ("POST", "/v1/collect", b'{"color":"\\ud800"}'),
        ("GET", "/v1/everything/s?string_value=%ED%A0%80", None),  # a surrogate in UTF-8 form
        ("GET", "/v1/everything/s?labels[%FF]=x", None),
        ("GET", "/v1/everything/s?color=%ED%A0%80", None),
        ("POST", "/v1/everything", b'{"bytesValue":"not base64!"}'),
        ("POST", "/v1/collect", b"\xff\xfe"),
    ],
)
def test_hostile_bodies_are_400(http: httpx.Client, method: str, url: str, body: bytes | None) -> None:
    response = http.request(method, url, content=body)
    answer = response.json()
    if url == "/v1/chat":  # a stream: its error is an {"error": ...} line
        answer = answer["error"]
    assert (response.status_code, answer["code"]) == (400, 3), response.text


def test_bin_metadata_round_trip_is_bytes(http: httpx.Client) -> None:
    raw = bytes(range(5))
    header = base64.b64encode(raw).decode()
    received = http.get("/v1/metadata", headers={"Grpc-Metadata-Raw-Bin": header}).json()["received"]
    assert f"raw-bin={header}" in received


# --- Trailers: uvicorn has no ASGI trailers extension, so these drive the gateway in-process --------
async def _asgi_call(url: str, headers: list[tuple[bytes, bytes]], *, trailers_extension: bool) -> list[Any]:
    from tests.support.conformance_service import SERVICE, grpc_backend
    from wsproxy.gateway import Gateway

    path, _, query = url.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
        "extensions": {"http.response.trailers": {}} if trailers_extension else {},
    }
    sent: list[Any] = []
    requests = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> Any:
        if requests:
            return requests.pop(0)
        await asyncio.Event().wait()  # the client stays until the answer is complete

    async def send(message: Any) -> None:
        sent.append(message)

    async with grpc_backend() as channel:
        await Gateway(channel, [SERVICE])(scope, receive, send)
    return sent


@pytest.mark.parametrize(
    ("url", "status"),
    [("/v1/metadata?reply_trailers=t%3D1", 200), ("/v1/metadata?reply_trailers=t%3D1&fail_code=5", 404)],
)
async def test_trailers_with_te_trailers(url: str, status: int) -> None:
    """runtime/handler.go ForwardResponseMessage and runtime/errors.go DefaultHTTPErrorHandler:
    trailer metadata as Grpc-Trailer-<key> when the request says TE: trailers."""
    sent = await _asgi_call(url, [(b"te", b"trailers")], trailers_extension=True)
    assert [message["type"] for message in sent] == [
        "http.response.start",
        "http.response.body",
        "http.response.trailers",
    ]
    assert (sent[0]["status"], sent[0]["trailers"]) == (status, True)
    assert sent[2]["headers"] == [(b"grpc-trailer-t", b"1")]


@pytest.mark.parametrize(
    ("headers", "extension"), [([], True), ([(b"te", b"trailers")], False), ([(b"te", b"gzip")], True)]
)
async def test_no_trailers_unless_asked_and_possible(
    headers: list[tuple[bytes, bytes]], extension: bool
) -> None:
    sent = await _asgi_call("/v1/metadata?reply_trailers=t%3D1", headers, trailers_extension=extension)
    assert [message["type"] for message in sent] == ["http.response.start", "http.response.body"]
    assert "trailers" not in sent[0]


# --- The same through wsproxy, on every uvicorn WebSocket implementation -------------------------
async def test_over_websocket_a_malformed_bidi_message_keeps_the_replies(ws_impl: str) -> None:
    from websockets.asyncio.client import connect

    from tests.support.conformance_service import SERVICE, grpc_backend
    from tests.support.servers import drain, serve
    from wsproxy import WebSocketProxyMiddleware
    from wsproxy.gateway import Gateway

    async with grpc_backend() as channel:
        app: Any = WebSocketProxyMiddleware(Gateway(channel, [SERVICE]))
        async with serve(app, ws=ws_impl) as running, connect(running.ws + "/v1/chat?method=POST") as ws:
            await ws.send('{"stringValue":"a"}')
            first = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
            await ws.send('{"int32Value":"not a number"}')
            frames, code, _ = await asyncio.wait_for(drain(ws), timeout=10)
    assert first["result"]["stringValue"] == "a"
    assert [json.loads(frame)["error"]["code"] for frame in frames] == [3]
    assert code == 1000  # the error is the stream's last line, after a 200: a normal close


async def _h2_get(port: int, target: str, headers: list[tuple[str, str]]) -> tuple[int, bytes, list[Any]]:
    """One GET over h2c (prior knowledge) read with h2, which hands back trailers (httpx does not)."""
    import h2.config
    import h2.connection
    import h2.events

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    connection = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    )
    connection.initiate_connection()
    request = [
        (":method", "GET"),
        (":path", target),
        (":scheme", "http"),
        (":authority", "127.0.0.1"),
        *headers,
    ]
    connection.send_headers(1, request, end_stream=True)
    writer.write(connection.data_to_send())
    status, body, trailers = 0, b"", []
    try:
        while True:
            data = await asyncio.wait_for(reader.read(65536), timeout=10)
            assert data, "the server closed the connection"
            for event in connection.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(cast(Any, event.headers))[":status"])
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
                    connection.acknowledge_received_data(event.flow_controlled_length, 1)
                elif isinstance(event, h2.events.TrailersReceived):
                    trailers = list(event.headers)
                elif isinstance(event, h2.events.StreamEnded):
                    return status, body, trailers
            writer.write(connection.data_to_send())
    finally:
        writer.close()


@pytest.mark.parametrize(("query", "status"), [("", 200), ("&fail_code=5", 404)])
async def test_trailers_on_hypercorn(query: str, status: int) -> None:
    """The same on a real server that has the trailers extension (hypercorn, which has it for HTTP/2)."""
    import os

    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    from tests.support.conformance_service import SERVICE, grpc_backend
    from tests.support.servers import bind_loopback
    from wsproxy.gateway import Gateway

    sock = bind_loopback()
    sock.listen(128)
    config = Config()
    config.bind = [f"fd://{os.dup(sock.fileno())}"]  # hypercorn closes the socket it is given
    config.loglevel = "WARNING"
    stop = asyncio.Event()
    async with grpc_backend() as channel:
        app: Any = Gateway(channel, [SERVICE])
        task = asyncio.create_task(hypercorn_serve(app, config, shutdown_trigger=stop.wait))
        try:
            port = sock.getsockname()[1]
            url = f"/v1/metadata?reply_trailers=t%3D1{query}"
            got, body, trailers = await _h2_get(port, url, [("te", "trailers")])
            without = await _h2_get(port, url, [])
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            sock.close()
    assert got == status
    answer = json.loads(body)
    assert answer["code"] == 5 if status != 200 else "received" in answer
    assert trailers == [("grpc-trailer-t", "1")]
    assert without[2] == []


HEADER_NAMES = st.sampled_from(
    ["Grpc-Timeout", "Authorization", "X-Forwarded-For", "X-Forwarded-Host", "TE", "Cookie", "Content-Type"]
) | st.from_regex(r"Grpc-Metadata-[A-Za-z0-9._-]{0,12}(-Bin)?", fullmatch=True)
HEADER_VALUES = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=16) | st.sampled_from(
    ["99999999H", "0n", "1S", "-1S", "AAE", "!!!!", "trailers", "Bearer"]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(headers=st.dictionaries(HEADER_NAMES, HEADER_VALUES.map(str.strip), max_size=4))
def test_malformed_headers_are_never_5xx(http: httpx.Client, headers: dict[str, str]) -> None:
    response = http.get("/v1/metadata", headers=headers)
    if response.status_code == 504:
        # A Grpc-Timeout already past (negative, or overflowing Go's int64 nanoseconds), as in
        # grpc-gateway: the `md-timeout-past-*` rows.
        from wsproxy.gateway._metadata import timeout_seconds

        timeout = next(value for name, value in headers.items() if name.lower() == "grpc-timeout")
        assert (timeout_seconds(timeout) or 0) < 0, headers
        assert response.json() == status(4, "context deadline exceeded")
        return
    assert response.status_code < 500, (headers, response.text)
    assert response.headers["content-type"] == "application/json"
