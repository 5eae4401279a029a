"""`--app-dir`: where `--app` modules are found, in the main process and in every worker; the one-line
errors of a module that is not there or cannot import what it needs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.support.servers import drain
from tests.support.upstream_apps import spawn_listening

WSPROXY = [str(Path(sys.executable).with_name("wsproxy")), "--log-level", "warning"]

# An app that answers each request line with the folder it was imported from, so a test can tell
# which copy served it.
APP = """\
import json
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    while True:
        message = await receive()
        for line in message.get("body", b"").splitlines():
            if line.strip():
                reply = json.dumps({"from": HERE, "got": json.loads(line)}) + "\\n"
                await send({"type": "http.response.body", "body": reply.encode(), "more_body": True})
        if not message.get("more_body", False):
            break
    await send({"type": "http.response.body", "body": b""})
"""


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_app_dir_is_searched_first_in_every_worker(tmp_path: Path, workers: str) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "service.py").write_text(APP)
    argv = [*WSPROXY, "--app", "service:app", "--app-dir", str(tmp_path / "mine"), "--workers", workers]
    with spawn_listening(argv) as proxy:
        for n in range(3):  # with two workers, more than one of them likely serves
            async with connect(proxy.ws + "/any?method=POST", open_timeout=30) as ws:
                await ws.send(json.dumps({"n": n}))
                assert json.loads(await ws.recv()) == {"from": str(tmp_path / "mine"), "got": {"n": n}}
                await ws.send("")
                assert (await drain(ws))[1] == 1000


def test_a_missing_module_names_where_it_looked(tmp_path: Path) -> None:
    result = subprocess.run(
        [*WSPROXY, "--app", "service:app", "--app-dir", "elsewhere"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        'wsproxy: error: Could not import module "service": not in --app-dir elsewhere nor in the '
        "installed packages (run wsproxy from the module's folder, or pass --app-dir DIR) (see wsproxy --help)"
    ]


def test_a_module_missing_a_dependency_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "service.py").write_text("import no_such_dependency_here\napp = None\n")
    result = subprocess.run(
        [*WSPROXY, "--app", "service:app"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stderr.splitlines()) == (
        2,
        ["wsproxy: error: import failed: No module named 'no_such_dependency_here' (see wsproxy --help)"],
    )


@pytest.mark.parametrize("error", ["ValueError", "TypeError", "RuntimeError"])
def test_an_exception_the_module_raises_is_shown_with_its_traceback(tmp_path: Path, error: str) -> None:
    # Not taken for a bad option: a ValueError from the app's own code is the app's, not a usage error.
    (tmp_path / "service.py").write_text(f"raise {error}('the service could not start')\napp = None\n")
    result = subprocess.run(
        [*WSPROXY, "--app", "service:app"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "wsproxy: error" not in result.stderr
    assert 'service.py", line 1, in <module>' in result.stderr
    assert result.stderr.splitlines()[-1] == f"{error}: the service could not start"
