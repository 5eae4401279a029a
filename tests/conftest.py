from __future__ import annotations

import pytest

from tests.servers import WS_IMPLEMENTATIONS


@pytest.fixture(params=WS_IMPLEMENTATIONS)
def ws_impl(request: pytest.FixtureRequest) -> str:
    """Each uvicorn WebSocket implementation, so behaviour is proven on every one."""
    return str(request.param)
