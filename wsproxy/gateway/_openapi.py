"""An OpenAPI 3.1 document for the gateway's routes, built from the descriptors alone.

What grpc-gateway users get from protoc-gen-openapiv2, generated at run time from the same
`google.api.http` rules the gateway routes by, so the document cannot drift from the wire:

- one path per route template; a variable with a pattern (`{name=shelves/*}`) becomes `{name}`
  with that pattern as a regular expression, a `:verb` stays in the path;
- path parameters from the template, query parameters for every other field the route leaves to
  the query (nested fields dotted, repeated fields exploded, maps in `name[key]=value` form, which
  is OpenAPI's deepObject style), none when the body is "*";
- request and response schemas under the JSON names the wire uses (or the proto names with
  `use_proto_names`), 64-bit integers as strings, enums as their names, unset message fields as
  null, well-known types in their JSON forms;
- streaming routes take or answer `application/x-ndjson`: one JSON value per line, each answer
  line `{"result": ...}` or, last, `{"error": Status}`;
- every error as google.rpc.Status JSON (`default` response);
- the WebSocket upgrade, which OpenAPI cannot describe, as the `x-wsproxy-websocket` extension.

Custom HTTP methods (`custom { kind: "ARCHIVE" }`) have no place in an OpenAPI path item and are
listed under the path's `x-wsproxy-custom-methods` extension instead. Templates that differ only
in variable names share one path key (OpenAPI forbids two), each parameter naming its field in
`x-wsproxy-field`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from wsproxy._status import SUBPROTOCOL as STATUS_SUBPROTOCOL
from wsproxy.gateway._fields import normalize_path
from wsproxy.gateway._routes import Route

OPENAPI_VERSION = "3.1.0"
NDJSON = "application/x-ndjson"
STATUS_REF = "#/components/schemas/google.rpc.Status"
_OPENAPI_METHODS = frozenset({"GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"})
_VARIABLE = re.compile(r"\{([^}=]+)(?:=([^}]*))?\}")
_T = FieldDescriptor
_SCALARS: dict[int, dict[str, Any]] = {
    _T.TYPE_DOUBLE: {"type": "number", "format": "double"},
    _T.TYPE_FLOAT: {"type": "number", "format": "float"},
    _T.TYPE_INT32: {"type": "integer", "format": "int32"},
    _T.TYPE_SINT32: {"type": "integer", "format": "int32"},
    _T.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    _T.TYPE_UINT32: {"type": "integer", "format": "uint32", "minimum": 0, "maximum": 4294967295},
    _T.TYPE_FIXED32: {"type": "integer", "format": "uint32", "minimum": 0, "maximum": 4294967295},
    # protojson prints 64-bit integers as strings (JavaScript numbers lose precision past 2^53).
    _T.TYPE_INT64: {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"},
    _T.TYPE_SINT64: {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"},
    _T.TYPE_SFIXED64: {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"},
    _T.TYPE_UINT64: {"type": "string", "format": "uint64", "pattern": "^[0-9]+$"},
    _T.TYPE_FIXED64: {"type": "string", "format": "uint64", "pattern": "^[0-9]+$"},
    _T.TYPE_BOOL: {"type": "boolean"},
    _T.TYPE_STRING: {"type": "string"},
    _T.TYPE_BYTES: {"type": "string", "format": "byte", "contentEncoding": "base64"},
}
_WRAPPED = {
    "DoubleValue": _T.TYPE_DOUBLE,
    "FloatValue": _T.TYPE_FLOAT,
    "Int64Value": _T.TYPE_INT64,
    "UInt64Value": _T.TYPE_UINT64,
    "Int32Value": _T.TYPE_INT32,
    "UInt32Value": _T.TYPE_UINT32,
    "BoolValue": _T.TYPE_BOOL,
    "StringValue": _T.TYPE_STRING,
    "BytesValue": _T.TYPE_BYTES,
}
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {
        "type": "string",
        "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$",
        "description": "Seconds with an `s` suffix (`1.5s`); the query also takes Go durations (`1m30s`).",
    },
    "google.protobuf.FieldMask": {"type": "string", "description": "Comma-separated field paths."},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {"description": "Any JSON value."},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
        "additionalProperties": True,
    },
    **{f"google.protobuf.{name}": dict(_SCALARS[kind]) for name, kind in _WRAPPED.items()},
}
_STATUS_SCHEMA = {
    "type": "object",
    "description": "The error body: google.rpc.Status as JSON (grpc-gateway's errors).",
    "properties": {
        "code": {"type": "integer", "format": "int32", "description": "The gRPC status code."},
        "message": {"type": "string"},
        "details": {"type": "array", "items": _WELL_KNOWN["google.protobuf.Any"]},
    },
    "required": ["code", "message", "details"],
}
WEBSOCKET_EXTENSION = {
    "description": (
        "Behind wsproxy.WebSocketProxyMiddleware every operation can also be called over a WebSocket "
        "at the same path: the HTTP method goes in the `method` query parameter (GET when absent), each "
        "text frame sent is one JSON request message (an empty frame half-closes the request), each "
        "JSON line of the answer arrives as one text frame, and an error answered with an HTTP status "
        "closes with code 4000 + that status after its error frame. A bearer token may be sent as the "
        "`Sec-WebSocket-Protocol: Bearer, <token>` subprotocol. A client that also offers the "
        "`wsproxy.status.v1` subprotocol first gets the HTTP status and headers as a binary frame of "
        "JSON, and the trailers the same way before the close."
    ),
    "methodParameter": "method",
    "subprotocol": "Bearer",
    "statusSubprotocol": STATUS_SUBPROTOCOL,
}


class _Builder:
    def __init__(self, use_proto_names: bool) -> None:
        self._use_proto_names = use_proto_names
        self.schemas: dict[str, Any] = {"google.rpc.Status": _STATUS_SCHEMA}

    def _name(self, field: FieldDescriptor) -> str:
        return field.name if self._use_proto_names else field.json_name

    def message_ref(self, descriptor: Any) -> dict[str, Any]:
        name = descriptor.full_name
        if name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[name])
        if name not in self.schemas:
            self.schemas[name] = {}  # placeholder first: messages may refer to themselves
            self.schemas[name] = self._message_schema(descriptor)
        return {"$ref": f"#/components/schemas/{name}"}

    def _message_schema(self, descriptor: Any) -> dict[str, Any]:
        properties = {self._name(field): self.field_schema(field) for field in descriptor.fields}
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        oneofs = [
            oneof
            for oneof in descriptor.oneofs
            if not (len(oneof.fields) == 1 and oneof.name == "_" + oneof.fields[0].name)
        ]
        if oneofs:
            schema["description"] = "; ".join(
                f"At most one of {', '.join(self._name(field) for field in oneof.fields)} (oneof {oneof.name})."
                for oneof in oneofs
            )
        return schema

    def _enum_ref(self, enum: Any) -> dict[str, Any]:
        if enum.full_name not in self.schemas:
            self.schemas[enum.full_name] = {
                "type": "string",
                "enum": [value.name for value in enum.values],
                "description": "Printed by name; requests may also give the number.",
            }
        return {"$ref": f"#/components/schemas/{enum.full_name}"}

    def value_schema(self, field: FieldDescriptor) -> dict[str, Any]:
        """The schema of one value of the field (one element, for a repeated field)."""
        if field.message_type is not None:
            return self.message_ref(field.message_type)
        if field.enum_type is not None:
            return self._enum_ref(field.enum_type)
        return dict(_SCALARS[field.type])

    def field_schema(self, field: FieldDescriptor) -> dict[str, Any]:
        message = field.message_type
        if message is not None and message.GetOptions().map_entry:
            return {
                "type": "object",
                "additionalProperties": self.value_schema(message.fields_by_name["value"]),
            }
        if field.is_repeated:
            return {"type": "array", "items": self.value_schema(field)}
        schema = self.value_schema(field)
        if field.has_presence and field.containing_oneof is None:
            return {"anyOf": [schema, {"type": "null"}]}  # EmitUnpopulated prints an unset one as null
        return schema

    def query_parameters(self, descriptor: Any, taken: list[list[str]]) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = []
        self._query_fields(descriptor, "", taken, parameters, seen=(descriptor.full_name,))
        return parameters

    def _query_fields(
        self,
        descriptor: Any,
        prefix: str,
        taken: list[list[str]],
        out: list[dict[str, Any]],
        seen: tuple[str, ...],
    ) -> None:
        for field in descriptor.fields:
            path = prefix + field.name
            if any(path.split(".")[: len(bound)] == bound for bound in taken):
                continue
            message = field.message_type
            if message is not None and message.GetOptions().map_entry:
                out.append(
                    {
                        "name": path,
                        "in": "query",
                        "style": "deepObject",
                        "explode": True,
                        "schema": self.field_schema(field),
                    }
                )
            elif message is not None and message.full_name not in _WELL_KNOWN:
                if not field.is_repeated and message.full_name not in seen:
                    self._query_fields(message, path + ".", taken, out, (*seen, message.full_name))
            else:
                schema = self.field_schema(field)
                if message is not None and message.full_name in (
                    "google.protobuf.Struct",
                    "google.protobuf.Value",
                ):
                    schema = {"type": "string", "contentMediaType": "application/json"}
                elif "anyOf" in schema:
                    schema = schema["anyOf"][0]
                parameter: dict[str, Any] = {"name": path, "in": "query", "schema": schema}
                if field.is_repeated:
                    parameter.update(style="form", explode=True)
                out.append(parameter)


def _openapi_path(template: str, descriptor: Any) -> tuple[str, list[dict[str, Any]]]:
    """`/v1/{name=shelves/*}:verb` -> `/v1/{name}:verb` and its path parameters."""
    parameters: list[dict[str, Any]] = []

    def replace(found: re.Match[str]) -> str:
        name, pattern = found.group(1).strip(), found.group(2)
        field = _leaf(descriptor, name)
        schema: dict[str, Any] = {"type": "string"}
        if field is not None and not field.is_repeated and field.message_type is None:
            schema = dict(_SCALARS.get(field.type, {"type": "string"}))
            if field.enum_type is not None:
                schema = {"type": "string", "enum": [value.name for value in field.enum_type.values]}
        if pattern and pattern != "*":
            regex = "/".join(
                "[^/]+" if part == "*" else ".*" if part == "**" else re.escape(part)
                for part in pattern.split("/")
            )
            schema = {"type": "string", "pattern": f"^{regex}$"}
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
        return "{" + name + "}"

    return _VARIABLE.sub(replace, template), parameters


def _leaf(descriptor: Any, dotted: str) -> FieldDescriptor | None:
    field = None
    for name in dotted.split("."):
        if descriptor is None:
            return None
        field = descriptor.fields_by_name.get(name)
        if field is None:
            return None
        descriptor = field.message_type
    return field


def _body_schema(builder: _Builder, route: Route) -> dict[str, Any]:
    request = route.method.input_type
    if route.body == "*":
        return builder.message_ref(request)
    field = _leaf(request, route.body)
    return builder.field_schema(field) if field is not None else {}


def _response_schema(builder: _Builder, route: Route) -> dict[str, Any]:
    response = route.method.output_type
    if not route.response_body:
        return builder.message_ref(response)
    field = _leaf(response, route.response_body)
    if field is None:
        return {}
    schema = builder.field_schema(field)
    return schema["anyOf"][0] if "anyOf" in schema else schema  # an unset one prints its defaults


def _operation(
    builder: _Builder, route: Route, operation_id: str, path_parameters: list[Any]
) -> dict[str, Any]:
    method = route.method
    streams_in, streams_out = route.kind.streams_requests, route.kind.streams_responses
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "tags": [method.containing_service.name],
        "summary": f"{method.containing_service.full_name}.{method.name} ({route.kind.value.replace('_', ' ')})",
        "parameters": list(path_parameters),
    }
    if not streams_in and route.body != "*":
        request = method.input_type
        taken = [name.split(".") for name in (*(p["name"] for p in path_parameters), route.body) if name]
        taken = [normalize_path(request, path) for path in taken]
        operation["parameters"] += builder.query_parameters(request, taken)
    if route.body:
        schema = _body_schema(builder, route)
        if streams_in:
            operation["requestBody"] = {
                "description": "A stream of request messages: one JSON value per line (or simply concatenated).",
                "content": {NDJSON: {"schema": builder.message_ref(method.input_type)}},
            }
        else:
            operation["requestBody"] = {"content": {"application/json": {"schema": schema}}}
    answer = _response_schema(builder, route)
    if streams_out:
        line = {
            "type": "object",
            "description": 'One line per message, `{"result": ...}`; a failure mid-stream ends with `{"error": ...}`.',
            "properties": {"result": answer, "error": {"$ref": STATUS_REF}},
        }
        ok = {
            "description": "A stream of answers, one JSON object per line.",
            "content": {NDJSON: {"schema": line}},
        }
    else:
        ok = {"description": "The answer.", "content": {"application/json": {"schema": answer}}}
    operation["responses"] = {
        "200": ok,
        "default": {
            "description": "An error, with the HTTP status mapped from its gRPC code.",
            "content": {"application/json": {"schema": {"$ref": STATUS_REF}}},
        },
    }
    operation["x-wsproxy-websocket"] = {"method": route.http_method}
    return operation


def _share_path_key(path: str, operation: dict[str, Any], shapes: dict[str, str]) -> str:
    """OpenAPI forbids two path keys that differ only in variable names (`/v1/{name}`,
    `/v1/{book.name}`): the second uses the first's key and names, its parameters say which field
    they set (`x-wsproxy-field`). The URL is the same; only the labels differ."""
    shape = _VARIABLE.sub("{}", path)
    first = shapes.setdefault(shape, path)
    if first == path:
        return path
    names = [found.group(1) for found in _VARIABLE.finditer(first)]
    parameters = operation["parameters"]
    for index, name in enumerate(names):
        parameters[index] = {**parameters[index], "name": name, "x-wsproxy-field": parameters[index]["name"]}
    return first


def openapi_document(
    routes: Iterable[Route],
    *,
    info: Mapping[str, Any] | None = None,
    servers: list[dict[str, Any]] | None = None,
    use_proto_names: bool = False,
) -> dict[str, Any]:
    """An OpenAPI 3.1 document (as a JSON-ready dict) describing `routes`."""
    builder = _Builder(use_proto_names)
    paths: dict[str, dict[str, Any]] = {}
    counts: dict[str, int] = {}
    services: dict[str, None] = {}
    shapes: dict[str, str] = {}  # "/v1/{}" -> the first path key of that shape
    for route in routes:
        method = route.method
        services[method.containing_service.full_name] = None
        base_id = f"{method.containing_service.name}_{method.name}"
        counts[base_id] = counts.get(base_id, 0) + 1
        operation_id = base_id if counts[base_id] == 1 else f"{base_id}{counts[base_id]}"
        path, path_parameters = _openapi_path(route.path.template, method.input_type)
        operation = _operation(builder, route, operation_id, path_parameters)
        path = _share_path_key(path, operation, shapes)
        item = paths.setdefault(path, {})
        if route.http_method in _OPENAPI_METHODS:
            item.setdefault(route.http_method.lower(), operation)
        else:
            item.setdefault("x-wsproxy-custom-methods", {}).setdefault(route.http_method, operation)
    document: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        # title and version are required: defaults (as protoc-gen-openapiv2's) for what `info` leaves out
        "info": {"title": ", ".join(services) or "gateway", "version": "version not set", **(info or {})},
        "paths": paths,
        "components": {"schemas": dict(sorted(builder.schemas.items()))},
        "x-wsproxy-websocket": WEBSOCKET_EXTENSION,
    }
    if servers:
        document["servers"] = servers
    return document
