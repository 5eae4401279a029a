"""`wsproxy.static_files()` mounted in FastAPI on a real uvicorn: both files, their bytes and content types."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

import wsproxy
from tests.support.servers import serve


@pytest.fixture
def app() -> FastAPI:
    app = FastAPI()

    @app.get("/")
    def index() -> dict[str, str]:
        return {"page": "yours"}

    app.mount("/wsproxy", wsproxy.static_files())
    return app


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("wsproxy.js", "text/javascript; charset=utf-8"),
        ("wsproxy.d.ts", "application/typescript; charset=utf-8"),
    ],
)
async def test_the_browser_module_is_served_with_its_content_type(
    app: FastAPI, name: str, content_type: str
) -> None:
    async with serve(app) as running, httpx.AsyncClient(base_url=running.http, timeout=30) as client:
        response = await client.get(f"/wsproxy/{name}")
        assert response.status_code == 200
        assert response.headers["content-type"] == content_type
        assert response.content == (wsproxy.static_dir() / name).read_bytes()
        # A revalidation answers 304, as StaticFiles does, without the body.
        again = await client.get(f"/wsproxy/{name}", headers={"if-none-match": response.headers["etag"]})
        assert (again.status_code, again.content) == (304, b"")


async def test_only_the_module_files_and_the_apps_own_routes(app: FastAPI) -> None:
    async with serve(app) as running, httpx.AsyncClient(base_url=running.http, timeout=30) as client:
        assert (await client.get("/")).json() == {"page": "yours"}
        assert (await client.get("/wsproxy/__init__.py")).status_code == 404  # the helper is not served
        assert (await client.get("/wsproxy/nothing.js")).status_code == 404
        assert (await client.get("/wsproxy/../pyproject.toml")).status_code == 404


def test_the_folder_holds_both_files() -> None:
    assert sorted(path.name for path in wsproxy.static_dir().glob("wsproxy.*")) == [
        "wsproxy.d.ts",
        "wsproxy.js",
    ]
