from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import settings

from tests.support.servers import SERVER_PARAMS, WS_IMPLEMENTATIONS, bind_loopback
from tests.support.upstream_apps import Process, upstream_process

# `make mutate` runs the suite once per mutant: hypothesis then draws the same examples every time, so a
# mutant is killed (or not) by the same inputs on every run and the score can be compared.
settings.register_profile("derandomized", derandomize=True, database=None)
if os.environ.get("WSPROXY_HYPOTHESIS_PROFILE"):
    settings.load_profile(os.environ["WSPROXY_HYPOTHESIS_PROFILE"])


@pytest.fixture(params=[p for p in SERVER_PARAMS if p.values[0] in WS_IMPLEMENTATIONS])
def ws_impl(request: pytest.FixtureRequest) -> str:
    """Each uvicorn WebSocket implementation (websockets-sansio, wsproto, legacy websockets), so behaviour
    is proven on every one. For uvicorn's own options (tests.support.servers.serve(app, ws=ws_impl))."""
    return str(request.param)


@pytest.fixture(params=["inprocess", "channel"])
def binding(request: pytest.FixtureRequest) -> str:
    """Each gateway binding (servicer called in-process, or over a grpc.aio channel): same results."""
    return str(request.param)


@pytest.fixture(params=SERVER_PARAMS)
def server_impl(request: pytest.FixtureRequest) -> str:
    """Every server: uvicorn's websockets-sansio, wsproto and legacy websockets, and hypercorn.

    Use with tests.support.servers.serve_on(server_impl, app) or tests.support.server_process.server_process(server_impl, ...).
    """
    return str(request.param)


@pytest.fixture(scope="module")
def upstream() -> Iterator[Process]:
    """tests/support/upstream_apps.py's app served by uvicorn in its own process, once per test module."""
    with upstream_process() as process:
        httpx.get(process.http + "/active", timeout=30).raise_for_status()
        yield process


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A loopback port that is bound but not listening: connecting to it is refused."""
    sock = bind_loopback()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()
