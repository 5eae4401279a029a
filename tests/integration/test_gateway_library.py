"""The gateway serves a second, differently shaped service (tests/support/protos) with no route code for it.

The .proto is compiled at import time by grpcio-tools (grpc.protos_and_services), so nothing
generated is committed for it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]
from websockets.asyncio.client import connect

from tests.support.library import library_pb2, library_pb2_grpc
from tests.support.servers import Running, drain, serve
from wsproxy import WebSocketProxyMiddleware
from wsproxy.gateway import Gateway, InProcessBinding

Context = grpc.aio.ServicerContext[Any, Any]


class Library(library_pb2_grpc.LibraryServiceServicer):  # type: ignore[misc]
    async def GetBook(self, request: Any, context: Context) -> Any:
        found = library_pb2.Book()
        found.CopyFrom(request.filter)
        found.name = request.name
        found.tags.extend(f"page{page}" for page in request.pages)
        return found

    async def CreateBook(self, request: Any, context: Context) -> Any:
        return library_pb2.Book(name=f"{request.parent}/books/{request.request_id}", title=request.book.title)

    async def UpdateBook(self, request: Any, context: Context) -> Any:
        request.book.archived = request.validate_only
        return request.book

    async def ListBooks(self, request: Any, context: Context) -> AsyncIterator[Any]:
        for index in range(request.page_size):
            genre = request.genres[index % len(request.genres)] if request.genres else 0
            yield library_pb2.Book(name=f"{request.parent}/books/{index}", genre=genre)

    async def ArchiveBook(self, request: Any, context: Context) -> Any:
        return library_pb2.Book(name=request.name, title=request.reason, archived=True)

    async def Fail(self, request: Any, context: Context) -> AsyncIterator[Any]:
        for index in range(request.after):
            yield library_pb2.Book(name=f"book{index}")
        trailers: tuple[tuple[str, bytes], ...] = ()
        if request.message == "with details":
            detail = any_pb2.Any()
            detail.Pack(error_details_pb2.ErrorInfo(reason="OUT_OF_INK", domain="library.test"))
            status = status_pb2.Status(code=request.code, message=request.message, details=[detail])
            trailers = (("grpc-status-details-bin", status.SerializeToString()),)
        await context.abort(
            grpc.StatusCode(_CODES[request.code]), request.message, trailing_metadata=trailers
        )

    async def Catalogue(self, request_iterator: AsyncIterator[Any], context: Context) -> Any:
        titles = [book.title async for book in request_iterator]
        return library_pb2.Book(title=",".join(titles), page_count=len(titles))

    async def Inspect(self, request: Any, context: Context) -> Any:
        pairs = [
            f"{key}={value}" for key, value in context.invocation_metadata() or () if isinstance(value, str)
        ]
        return library_pb2.Book(tags=pairs)


_CODES = {code.value[0]: code.value for code in grpc.StatusCode}


@pytest.fixture
async def server(binding: str) -> AsyncIterator[Running]:
    if binding == "inprocess":
        in_process = InProcessBinding()
        in_process.add_servicer("library.v1.LibraryService", Library())
        app: Any = WebSocketProxyMiddleware(Gateway(in_process, ["library.v1.LibraryService"]))
        async with serve(app, http="h11") as running:  # h11: see below
            yield running
        return
    grpc_server = grpc.aio.server()
    library_pb2_grpc.add_LibraryServiceServicer_to_server(Library(), grpc_server)
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    await grpc_server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            app = WebSocketProxyMiddleware(Gateway(channel, ["library.v1.LibraryService"]))
            # h11: httptools (uvicorn's "auto" pick when installed) refuses custom methods like ARCHIVE.
            async with serve(app, http="h11") as running:
                yield running
    finally:
        await grpc_server.stop(grace=None)


@pytest.fixture
async def client(server: Running) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.http) as client:
        yield client


def results(body: str) -> list[Any]:
    return [json.loads(line) for line in body.splitlines() if line]


async def test_routes_come_from_the_descriptor_only() -> None:
    async with grpc.aio.insecure_channel("127.0.0.1:1") as channel:
        gateway = Gateway(channel, [library_pb2.DESCRIPTOR.services_by_name["LibraryService"]])
    routed = sorted({route.method.name for route in gateway.routes})
    assert "Unrouted" not in routed
    assert len(gateway.routes) == 10  # 8 rules + 2 additional bindings


async def test_path_template_with_pattern_and_query_fields(client: httpx.AsyncClient) -> None:
    query = (
        "filter.title=Dune&filter.tags=a&filter.tags=b&pages=1&pages=2&filter.genre=GENRE_POETRY"
        "&filter.shelf.floor=3&filter.published=2024-01-02T03:04:05Z&filter.edition=2&filter.pageCount=10"
        "&name=ignored&unknown.field=1&method=x"
    )
    response = await client.get(f"/v1/shelves/1/books/2?{query}")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "name": "shelves/1/books/2",
        "title": "Dune",
        "tags": ["a", "b", "page1", "page2"],
        "genre": "GENRE_POETRY",
        "pageCount": "10",
        "shelf": {"name": "", "floor": 3},
        "published": "2024-01-02T03:04:05Z",
        "edition": 2,
        "archived": False,
        "cover": "",
        "price": 0.0,
    }


async def test_additional_binding_and_escaped_path_value(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/books/a%20b%2Fc")
    assert response.json()["name"] == "a b/c"
    assert (await client.get("/v1/books/a/b")).status_code == 404


async def test_body_field_plus_path_plus_query(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/shelves/s1/books?request_id=r7", json={"title": "T", "unknownField": 1})
    assert response.json()["name"] == "shelves/s1/books/r7"
    assert response.json()["title"] == "T"


async def test_nested_path_field_overrides_the_body(client: httpx.AsyncClient) -> None:
    body = {"name": "from-body", "title": "New"}
    response = await client.patch("/v1/shelves/a/books/b?validate_only=true", json=body)
    assert (response.json()["name"], response.json()["title"], response.json()["archived"]) == (
        "shelves/a/books/b",
        "New",
        True,
    )


async def test_server_stream_with_repeated_enum_query(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/shelves/s/books?page_size=3&genres=GENRE_FICTION&genres=2")
    assert [line["result"]["genre"] for line in results(response.text)] == [
        "GENRE_FICTION",
        "GENRE_POETRY",
        "GENRE_FICTION",
    ]


async def test_httptools_refuses_custom_methods_before_the_app() -> None:
    """Why the server above runs h11: httptools answers a custom method itself (docs/gateway.md)."""
    pytest.importorskip("httptools")
    async with grpc.aio.insecure_channel("127.0.0.1:1") as channel:
        app: Any = Gateway(channel, ["library.v1.LibraryService"])
        async with serve(app, http="httptools") as running, httpx.AsyncClient() as client:
            response = await client.request("ARCHIVE", running.http + "/v1/shelves/x/books/y:archive")
    assert response.status_code == 400
    assert not response.headers["content-type"].startswith("application/json")  # not the gateway's answer


async def test_custom_verb_and_custom_method(client: httpx.AsyncClient) -> None:
    posted = await client.post("/v1/shelves/x/books/y:archive", json={"reason": "old", "name": "body-name"})
    assert posted.json()["name"] == "shelves/x/books/y"
    assert posted.json()["title"] == "old"
    custom = await client.request("ARCHIVE", "/v1/shelves/x/books/y:archive?reason=why")
    assert (custom.json()["title"], custom.json()["archived"]) == ("why", True)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        *[(1, 499), (2, 500), (4, 504), (5, 404), (6, 409), (7, 403), (8, 429), (9, 400)],
        *[(10, 409), (11, 400), (12, 501), (13, 500), (14, 503), (15, 500), (16, 401)],
    ],
)
async def test_error_before_the_first_message_maps_the_status(
    client: httpx.AsyncClient, code: int, status: int
) -> None:
    response = await client.delete(f"/v1/fail/{code}?message=boom")
    assert response.status_code == status
    # A stream: the error is an {"error": ...} line even before the first message.
    assert response.json() == {"error": {"code": code, "message": "boom", "details": []}}


async def test_error_mid_stream_is_an_error_line(client: httpx.AsyncClient) -> None:
    response = await client.delete("/v1/fail/9?after=2&message=out%20of%20pages")
    assert response.status_code == 200
    *books, error = results(response.text)
    assert [book["result"]["name"] for book in books] == ["book0", "book1"]
    assert error == {"error": {"code": 9, "message": "out of pages", "details": []}}


async def test_rich_error_details_are_passed_on(client: httpx.AsyncClient) -> None:
    response = await client.delete("/v1/fail/8?message=with%20details")
    assert response.json()["error"]["details"] == [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "OUT_OF_INK",
            "domain": "library.test",
        }
    ]


async def test_client_stream_of_messages(client: httpx.AsyncClient) -> None:
    response = await client.put("/v1/catalogue", content=b'{"title":"a"}\n{"title":"b"}\n{"title":"c"}')
    assert (response.json()["title"], response.json()["pageCount"]) == ("a,b,c", "3")


async def test_headers_become_metadata(client: httpx.AsyncClient) -> None:
    headers = {"Authorization": "Bearer t", "Grpc-Metadata-Trace-Id": "abc", "User-Agent": "tester"}
    tags = (await client.get("/v1/inspect", headers=headers)).json()["tags"]
    assert {"authorization=Bearer t", "trace-id=abc", "grpcgateway-user-agent=tester"} <= set(tags)
    assert any(tag.startswith("x-forwarded-host=127.0.0.1") for tag in tags)
    assert "x-forwarded-for=127.0.0.1" in tags


async def test_bad_json_body_is_invalid_argument(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/shelves/s1/books", content=b'{"title": ')
    assert (response.status_code, response.json()["code"]) == (400, 3)


async def test_over_websocket_errors_close_with_4000_plus_status(server: Running) -> None:
    async with connect(server.ws + "/v1/fail/5?method=DELETE&message=gone") as ws:
        frames, code, reason = await drain(ws)
    assert ([json.loads(frame) for frame in frames], code, reason) == (
        [{"error": {"code": 5, "message": "gone", "details": []}}],
        4404,
        "Not Found",
    )


async def test_over_websocket_mid_stream_error_line_arrives(server: Running) -> None:
    async with connect(server.ws + "/v1/fail/14?method=DELETE&after=1&message=down") as ws:
        frames, _, _ = await drain(ws)
    assert json.loads(frames[0])["result"]["name"] == "book0"
    assert json.loads(frames[-1]) == {"error": {"code": 14, "message": "down", "details": []}}


async def test_over_websocket_client_stream(server: Running) -> None:
    async with connect(server.ws + "/v1/catalogue?method=PUT") as ws:
        for title in ("x", "y"):
            await ws.send(json.dumps({"title": title}))
        await ws.send("")
        frames, code, _ = await asyncio.wait_for(drain(ws), timeout=10)
    assert (json.loads(frames[0])["title"], code) == ("x,y", 1000)
