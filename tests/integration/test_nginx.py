"""docs/deployment.md's nginx configuration, proven: a real nginx in front of two `wsproxy` processes.

Debian's nginx is installed by scripts/ensure-nginx (called by `make test`); without it this test skips.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.support.nginx import NGINX, free_port, wait_listening
from tests.support.servers import drain
from tests.support.upstream_apps import Process, spawn_listening, upstream_process

pytestmark = pytest.mark.skipif(
    NGINX is None, reason="nginx is not installed (scripts/ensure-nginx installs it)"
)

# The location block is the one docs/deployment.md shows; keep them in step.
CONFIG = """\
{user}
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}
    upstream wsproxy {{
        server 127.0.0.1:{port_a};
        server 127.0.0.1:{port_b};
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://wsproxy;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
            proxy_buffering off;
            proxy_request_buffering off;
            add_header X-Served-By $upstream_addr always;
        }}
    }}
}}
"""


@pytest.fixture
def nginx_front(tmp_path: Path) -> Iterator[tuple[str, list[Process]]]:
    """nginx on a free port proxying to two `wsproxy --upstream` processes; yields (ws base URL, backends)."""
    assert NGINX is not None
    wsproxy = [sys.executable, "-m", "wsproxy", "--log-level", "warning"]
    with (
        upstream_process() as upstream,
        spawn_listening([*wsproxy, "--upstream", upstream.http, "--no-upstream-check"]) as a,
        spawn_listening([*wsproxy, "--upstream", upstream.http, "--no-upstream-check"]) as b,
    ):
        port = free_port()
        user = "user root root;" if os.geteuid() == 0 else ""  # workers must reach tmp_path
        config = tmp_path / "nginx.conf"
        config.write_text(CONFIG.format(user=user, tmp=tmp_path, port=port, port_a=a.port, port_b=b.port))
        proc = subprocess.Popen(
            [
                NGINX,
                "-p",
                str(tmp_path),
                "-e",
                str(tmp_path / "error.log"),
                "-c",
                str(config),
                "-g",
                "daemon off;",
            ],
            stdin=subprocess.DEVNULL,
        )
        try:
            wait_listening(port, proc, tmp_path / "error.log")
            yield f"ws://127.0.0.1:{port}", [a, b]
        finally:
            proc.terminate()
            proc.wait(timeout=10)


async def test_streams_through_nginx_to_two_wsproxy_processes(nginx_front: tuple[str, list[Process]]) -> None:
    base, backends = nginx_front
    served_by = set()
    for n in range(4):  # round robin: every backend gets calls
        async with connect(base + "/bidi?method=POST", open_timeout=30) as ws:
            assert ws.response is not None
            served_by.add(ws.response.headers["X-Served-By"])
            for i in range(2):
                await ws.send(json.dumps({"n": n, "i": i}))
                # Interactive through nginx: each reply arrives while the request body is still open.
                assert json.loads(await ws.recv()) == {"echo": {"n": n, "i": i}}
            await ws.send("")
            assert await drain(ws) == ([], 1000, "")
    assert served_by == {f"127.0.0.1:{backend.port}" for backend in backends}

    async with connect(base + "/stream?count=3") as ws:
        assert await drain(ws) == (['{"n": 0}', '{"n": 1}', '{"n": 2}'], 1000, "")
    async with connect(base + "/status/503") as ws:
        assert (await drain(ws))[1:] == (4503, "Service Unavailable")

    http_base = base.replace("ws:", "http:")
    async with httpx.AsyncClient() as client:
        response = await client.post(http_base + "/sum", content=b'{"n": 2}\n{"n": 3}\n')
    assert response.json() == {"sum": 5}
