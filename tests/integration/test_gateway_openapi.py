"""The gateway's OpenAPI 3.1 document: valid (openapi-spec-validator), served where asked, and true to
the wire (real answers validate against the schemas it states)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import jsonschema  # type: ignore[import-untyped]  # comes with openapi-spec-validator
import pytest
from openapi_spec_validator import validate

from tests.support.conformance_service import EMPTY, SERVICE, serve_gateway_in_thread
from tests.support.servers import Running
from wsproxy.gateway import Gateway, openapi_document


def _library_service() -> Any:
    from tests.support.library import library_pb2

    return library_pb2.DESCRIPTOR.services_by_name["LibraryService"]


def _echo_service() -> Any:
    from example_service.app import SERVICE as ECHO

    return ECHO


@pytest.fixture(scope="module")
def served() -> Iterator[Running]:
    info = {"title": "Conformance", "version": "1.2.3"}
    with serve_gateway_in_thread(openapi_path="/api/openapi.json", openapi_info=info) as running:
        yield running


@pytest.fixture(scope="module")
def http(served: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.http, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def document(http: httpx.Client) -> dict[str, Any]:
    response = http.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    return dict(response.json())


async def _document_of(service: Any, **options: Any) -> dict[str, Any]:
    async with grpc.aio.insecure_channel("127.0.0.1:1") as channel:
        return Gateway(channel, [service], **options).openapi()


@pytest.mark.parametrize("service", [SERVICE, _library_service(), _echo_service()], ids=lambda s: s.name)
@pytest.mark.parametrize("use_proto_names", [False, True])
async def test_documents_validate(service: Any, use_proto_names: bool) -> None:
    document = await _document_of(service, use_proto_names=use_proto_names)
    assert document["openapi"] == "3.1.0"
    validate(document)  # raises with the first problem


def test_served_at_the_chosen_path_with_the_given_info(document: dict[str, Any]) -> None:
    validate(document)
    assert document["info"] == {"title": "Conformance", "version": "1.2.3"}


def test_not_served_by_default_or_at_other_paths(http: httpx.Client) -> None:
    assert http.post("/api/openapi.json").status_code == 404
    assert http.get("/openapi.json").status_code == 404


def test_off_by_default() -> None:
    with serve_gateway_in_thread() as running:
        response = httpx.get(running.http + "/openapi.json")
    assert (response.status_code, response.json()["code"]) == (404, 5)


def test_paths_methods_and_parameters(document: dict[str, Any]) -> None:
    paths = document["paths"]
    # PUT /v1/everything/{int32_value} has the same shape: it shares the key (see the shape test).
    assert set(paths["/v1/everything/{string_value}"]) == {"get", "put", "x-wsproxy-custom-methods"}
    assert set(paths["/v1/everything/{string_value}"]["x-wsproxy-custom-methods"]) == {"PURGE"}
    enter = paths["/v1/{string_value}:enter"]["post"]
    assert enter["parameters"] == [
        {
            "name": "string_value",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": "^rooms/[^/]+$"},
        }
    ]  # body "*": nothing from the query
    put = paths["/v1/everything/{string_value}"]["put"]
    names = [parameter["name"] for parameter in put["parameters"]]
    assert (put["parameters"][0]["in"], put["parameters"][0]["x-wsproxy-field"]) == ("path", "int32_value")
    assert put["parameters"][0]["schema"] == {"type": "integer", "format": "int32"}
    assert "int32_value" not in names[1:]  # bound by the path
    assert "nested.name" not in names  # bound by the body
    assert {"string_value", "repeated_int32", "labels", "timestamp"} <= set(names)
    labels = next(p for p in put["parameters"] if p["name"] == "labels")
    assert (labels["style"], labels["explode"]) == ("deepObject", True)
    files = paths["/v1/files/{string_value}"]["get"]["parameters"][0]
    assert files["schema"] == {"type": "string", "pattern": "^.*$"}
    ids = [op["operationId"] for item in paths.values() for op in item.values() if "operationId" in op]
    assert len(ids) == len(set(ids))


def test_streaming_routes_are_ndjson(document: dict[str, Any]) -> None:
    stream = document["paths"]["/v1/stream"]["get"]["responses"]["200"]["content"]
    assert list(stream) == ["application/x-ndjson"]
    line = stream["application/x-ndjson"]["schema"]
    assert line["properties"]["result"] == {"$ref": "#/components/schemas/conformance.v1.Everything"}
    assert line["properties"]["error"] == {"$ref": "#/components/schemas/google.rpc.Status"}
    chat = document["paths"]["/v1/chat"]["post"]
    assert list(chat["requestBody"]["content"]) == ["application/x-ndjson"]
    assert list(chat["responses"]["200"]["content"]) == ["application/x-ndjson"]
    collect = document["paths"]["/v1/collect"]["post"]
    assert list(collect["responses"]["200"]["content"]) == ["application/json"]
    assert document["x-wsproxy-websocket"]["methodParameter"] == "method"
    assert document["x-wsproxy-websocket"]["statusSubprotocol"] == "wsproxy.status.v1"


def test_schema_names_and_int64_as_the_wire_prints_them(document: dict[str, Any]) -> None:
    everything = document["components"]["schemas"]["conformance.v1.Everything"]["properties"]
    wire_order = [*EMPTY]
    assert [name for name in everything if name in EMPTY] == wire_order
    assert everything["int64Value"]["type"] == "string"
    assert everything["nested"] == {
        "anyOf": [{"$ref": "#/components/schemas/conformance.v1.Nested"}, {"type": "null"}]
    }
    assert document["paths"]["/v1/everything/{string_value}/nested"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"] == {"$ref": "#/components/schemas/conformance.v1.Nested"}


def _validator(document: dict[str, Any], name: str) -> jsonschema.Draft202012Validator:
    root = {"components": document["components"], "$ref": f"#/components/schemas/{name}"}
    return jsonschema.Draft202012Validator(root)


@pytest.mark.parametrize(
    ("method", "url", "content"),
    [
        ("POST", "/v1/everything", b"{}"),
        (
            "GET",
            "/v1/everything/s?int64_value=-5&nested.amount=3&labels[a]=b&duration=1m&choice_text=x",
            None,
        ),
        (
            "GET",
            "/v1/everything/s?timestamp=2024-01-02T03:04:05Z&value=%5B1%5D&struct_value=%7B%7D&optional_int32=1",
            None,
        ),
        (
            "POST",
            "/v1/everything",
            b'{"repeatedNested":[{"color":"COLOR_RED"}],"int64Wrapper":"7","bytesValue":"AA=="}',
        ),
    ],
)
def test_real_answers_validate_against_the_document(
    http: httpx.Client, document: dict[str, Any], method: str, url: str, content: bytes | None
) -> None:
    answer = http.request(method, url, content=content)
    assert answer.status_code == 200, answer.text
    _validator(document, "conformance.v1.Everything").validate(answer.json())


def test_errors_and_stream_lines_validate(http: httpx.Client, document: dict[str, Any]) -> None:
    error = http.get("/v1/fail/5?message=gone&with_details=true").json()
    _validator(document, "google.rpc.Status").validate(error)
    line_schema = document["paths"]["/v1/stream"]["get"]["responses"]["200"]["content"][
        "application/x-ndjson"
    ]
    root = {"components": document["components"], **line_schema["schema"]}
    lines = http.get("/v1/stream?count=2&fail_code=9").text.splitlines()
    assert len(lines) == 3
    for line in lines:
        jsonschema.Draft202012Validator(root).validate(json.loads(line))


def test_a_wrong_answer_would_fail_validation(document: dict[str, Any]) -> None:
    """The check above can fail: an int64 as a JSON number, or a missing Status field, is refused."""
    with pytest.raises(jsonschema.ValidationError):
        _validator(document, "conformance.v1.Everything").validate({**EMPTY, "int64Value": 5})
    with pytest.raises(jsonschema.ValidationError):
        _validator(document, "google.rpc.Status").validate({"code": 5, "message": "x"})


def test_openapi_document_is_a_pure_function_of_routes() -> None:
    async def routes() -> Any:
        async with grpc.aio.insecure_channel("127.0.0.1:1") as channel:
            return Gateway(channel, [SERVICE]).routes

    import asyncio

    document = openapi_document(asyncio.run(routes()), servers=[{"url": "https://api.example"}])
    validate(document)
    assert document["servers"] == [{"url": "https://api.example"}]
    assert document["info"]["title"] == "conformance.v1.ConformanceService"


async def test_templates_of_one_shape_share_a_path_key() -> None:
    """/v1/{name=shelves/*/books/*} (GET) and /v1/{book.name=shelves/*/books/*} (PATCH) are one OpenAPI path."""
    document = await _document_of(_library_service())
    shapes = [re.sub(r"\{[^}]*\}", "{}", path) for path in document["paths"]]
    assert len(shapes) == len(set(shapes))
    item = document["paths"]["/v1/{name}"]
    assert set(item) == {"get", "patch"}
    (path_parameter,) = [p for p in item["patch"]["parameters"] if p["in"] == "path"]
    assert (path_parameter["name"], path_parameter["x-wsproxy-field"]) == ("name", "book.name")
    assert "book.name" not in [
        p["name"] for p in item["patch"]["parameters"]
    ]  # bound by the path, not the query


async def test_partial_info_keeps_the_required_fields() -> None:
    document = await _document_of(SERVICE, openapi_info={"description": "Only a description."})
    validate(document)
    assert document["info"] == {
        "title": "conformance.v1.ConformanceService",
        "version": "version not set",
        "description": "Only a description.",
    }
