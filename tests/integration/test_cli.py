"""The `wsproxy` command: its errors in-process, then the real command in front of an upstream process."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.support.servers import bind_loopback, drain
from tests.support.upstream_apps import ROOT, Process, open_requests, spawn_listening, upstream_process
from wsproxy import cli

WSPROXY = [sys.executable, "-m", "wsproxy", "--log-level", "warning"]


def one_error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("wsproxy: error: ")
    return err


# Start-up: help and one-line errors.


def test_help_shows_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    # Which flags exist, and their defaults, tests/unit/test_option_table.py checks against the table.
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--max-message-size BYTES" in text
    assert "(default: 1048576)" in text


def test_python_dash_m_runs_the_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wsproxy", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert result.stdout.startswith("usage: wsproxy")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "one of the arguments --upstream --app is required"),
        (["--upstream", "http://127.0.0.1:9", "--bogus"], "unrecognized arguments: --bogus"),
        (["--upstream", "http://a", "--app", "m:a"], "not allowed with argument"),
        (["--upstream", "ftp://gateway"], "upstream must be an http:// or https:// URL"),
        (["--app", "no_such_module_here:app"], 'Could not import module "no_such_module_here"'),
        (["--app", "tests.support.upstream_apps:missing"], 'Attribute "missing" not found'),
        (
            ["--upstream", "http://a", "--max-message-size", "0"],
            "--max-message-size: must be a positive integer",
        ),
        (
            ["--upstream", "http://a", "--idle-timeout", "soon"],
            "--idle-timeout: invalid positive number value",
        ),
        (["--upstream", "http://a", "--default-method", "GE T"], "default_method must be an HTTP method"),
        (["--upstream", "http://a", "--ssl-certfile", "/no/such.pem"], "cannot load the TLS certificate/key"),
        (
            ["--upstream", "http://a", "--metrics-port", "0"],
            "--metrics-port: must be a port number (1-65535), got 0",
        ),
        (["--upstream", "http://a", "--metrics-port", "70000"], "must be a port number"),
        (["--upstream", "http://a", "--authenticate", "no_such_module_here:auth"], "Could not import module"),
    ],
)
def test_bad_arguments_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    assert expected in one_error_line(capsys, argv)


def test_unreachable_upstream_at_start_is_one_line(
    capsys: pytest.CaptureFixture[str], refused_url: str
) -> None:
    err = one_error_line(capsys, ["--upstream", refused_url])
    assert err == (
        f"wsproxy: error: upstream {refused_url} is not reachable: Connection refused "
        "(start it first, or pass --no-upstream-check)\n"
    )


def test_a_taken_metrics_port_is_one_line_before_anything_listens() -> None:
    with bind_loopback() as taken:
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*WSPROXY, "--app", "tests.support.upstream_apps:app", "--metrics-port", str(port)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"wsproxy: error: cannot serve metrics on 127.0.0.1:{port}: Address already in use"
    ]


def test_app_from_env_needs_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cli.SETTINGS_ENV, raising=False)
    with pytest.raises(RuntimeError, match="WSPROXY_SETTINGS is unset"):
        cli.app_from_env()


# The real command, in its own process, in front of the upstream in another.


async def test_every_call_kind_through_the_command(upstream: Process) -> None:
    with spawn_listening([*WSPROXY, "--upstream", upstream.http]) as proxy:
        async with httpx.AsyncClient() as client:
            response = await client.get(proxy.http + "/stream?count=2", timeout=30)  # waits for start-up
            assert (response.status_code, response.text) == (200, '{"n": 0}\n{"n": 1}\n')
        async with connect(proxy.ws + "/echo?method=POST&methodType=Unary") as ws:
            await ws.send('{"hi": 1}')
            assert await drain(ws) == (['{"echo": {"hi": 1}}'], 1000, "")
        async with connect(proxy.ws + "/stream?count=3") as ws:
            assert await drain(ws) == (['{"n": 0}', '{"n": 1}', '{"n": 2}'], 1000, "")
        async with connect(proxy.ws + "/sum?method=POST") as ws:
            for n in (40, 2):
                await ws.send(json.dumps({"n": n}))
            await ws.send("")
            assert await drain(ws) == (['{"sum": 42}'], 1000, "")
        async with connect(proxy.ws + "/bidi?method=POST") as ws:
            for n in range(3):
                await ws.send(json.dumps({"n": n}))
                assert json.loads(await ws.recv()) == {"echo": {"n": n}}  # before the half-close
            await ws.send("")
            assert await drain(ws) == ([], 1000, "")
        async with connect(proxy.ws + "/status/404") as ws:
            assert await drain(ws) == (['{"error": "status 404", "code": 404}'], 4404, "Not Found")
        async with connect(proxy.ws + "/inspect", subprotocols=["Bearer", "t0ken"]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "Bearer"
            await ws.send("")
            frames, code, _ = await drain(ws)
        headers = dict(json.loads(frames[0])["headers"])
        assert (code, headers["authorization"]) == (1000, "Bearer t0ken")


async def test_options_reach_the_middleware(upstream: Process) -> None:
    argv = [
        *WSPROXY,
        "--upstream",
        upstream.http,
        "--allowed-origin",
        "https://app.example",
        "--max-line-size",
        "5",  # {"n": 0} is longer
    ]
    with spawn_listening(argv) as proxy:
        async with connect(proxy.ws + "/stream?count=1", origin="https://app.example") as ws:  # type: ignore[arg-type]
            assert (await drain(ws))[1:] == (1009, "response line too big")
        async with httpx.AsyncClient() as client:
            refused = await client.get(
                proxy.ws.replace("ws:", "http:") + "/stream",
                headers={
                    "connection": "upgrade",
                    "upgrade": "websocket",
                    "sec-websocket-version": "13",
                    "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
                    "origin": "https://evil.example",
                },
            )
        assert refused.status_code == 403


async def test_upstream_killed_mid_stream_closes_1014() -> None:
    with upstream_process() as upstream, spawn_listening([*WSPROXY, "--upstream", upstream.http]) as proxy:
        async with connect(proxy.ws + "/forever", open_timeout=30) as ws:
            assert json.loads(await ws.recv()) == {"n": 0}
            upstream.kill()
            assert await drain(ws) == ([], 1014, "bad gateway")


async def test_upstream_down_after_start_closes_4502(refused_url: str) -> None:
    with spawn_listening([*WSPROXY, "--upstream", refused_url, "--no-upstream-check"]) as proxy:
        async with connect(proxy.ws + "/bidi?method=POST", open_timeout=30) as ws:
            frames, code, reason = await drain(ws)
    assert (code, reason) == (4502, "Bad Gateway")
    assert json.loads(frames[0])["error"] == "upstream unreachable"


async def test_several_workers_share_the_port(upstream: Process) -> None:
    with spawn_listening([*WSPROXY, "--upstream", upstream.http, "--workers", "2"]) as proxy:
        for n in range(4):
            async with connect(proxy.ws + "/bidi?method=POST", open_timeout=30) as ws:
                await ws.send(json.dumps({"n": n}))
                assert json.loads(await ws.recv()) == {"echo": {"n": n}}
                await ws.send("")
                assert await drain(ws) == ([], 1000, "")


async def test_app_mode_serves_an_asgi_app_in_process() -> None:
    with spawn_listening([*WSPROXY, "--app", "tests.support.upstream_apps:app"]) as proxy:
        async with connect(proxy.ws + "/bidi?method=POST", open_timeout=30) as ws:
            await ws.send('{"n": 7}')
            assert json.loads(await ws.recv()) == {"echo": {"n": 7}}
            await ws.send("")
            assert await drain(ws) == ([], 1000, "")


async def test_sigterm_closes_streams_1012_and_their_upstream_calls(upstream: Process) -> None:
    with spawn_listening([*WSPROXY, "--upstream", upstream.http]) as proxy:
        async with connect(proxy.ws + "/bidi?method=POST", open_timeout=30) as ws:
            await ws.send('{"n": 1}')
            await ws.recv()
            assert await open_requests(upstream, 1) == 1
            proxy.proc.terminate()
            assert (await drain(ws))[1] == 1012
        assert proxy.proc.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
    assert await open_requests(upstream, 0) == 0


@pytest.mark.parametrize("how", ["proto 0", "tcp", "fromfd as uvicorn does"])
def test_listening_sockets_are_tcp_so_accepted_ones_get_nodelay(how: str) -> None:
    """asyncio sets TCP_NODELAY only under an IPPROTO_TCP listener; uvicorn's --fd/--workers make proto 0."""
    made = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP if how == "tcp" else 0)
    if how.startswith("fromfd"):
        with made:
            made = socket.fromfd(made.fileno(), socket.AF_UNIX, socket.SOCK_STREAM)
    with cli.tcp_socket(made) as sock:
        assert (sock.family, sock.type, sock.proto) == (
            socket.AF_INET,
            socket.SOCK_STREAM,
            socket.IPPROTO_TCP,
        )


def test_a_unix_socket_stays_one() -> None:
    with cli.tcp_socket(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)) as sock:
        assert sock.family == socket.AF_UNIX


def test_the_port_taken_exits_3_as_uvicorn_does() -> None:
    with bind_loopback() as taken:
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*WSPROXY, "--app", "tests.support.upstream_apps:app", "--port", str(port)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 3
    assert "address already in use" in result.stderr
