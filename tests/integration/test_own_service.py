"""docs/example.md's "Your own service in three commands", run as written in an empty folder.

The files are the section's code blocks that name their path on their first line (`// protos/...`,
`# app.py`); the commands are its `$ ` lines, each with the output the page shows after it. The
generator and the server run as real processes (`python` is this interpreter, `uvicorn` its
console script), the server on a free port instead of the page's 8000 (in the commands and files alike); the calls (curl, the
Python client) are run and their output compared with the page's.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.servers import bind_loopback
from tests.support.upstream_apps import ROOT

DOC = ROOT / "docs" / "example.md"
SECTION = "## Your own service in three commands"
DOCUMENTED_PORT = "8000"
BIN = Path(sys.executable).parent
START_SECONDS = 60.0
STOP_SECONDS = 10.0


def _section() -> str:
    text = DOC.read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end != -1 else len(text)]


def _files(section: str) -> dict[str, str]:
    blocks = re.findall(r"```\w*\n(?:#|//) ([\w/.-]+\.(?:proto|py))\n(.*?)```", section, flags=re.DOTALL)
    return dict(blocks)


def _commands(section: str) -> list[tuple[str, list[str]]]:
    """Each `$ ` line of the section's console blocks, with the output lines shown after it."""
    commands: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", section, flags=re.DOTALL):
        for line in block.splitlines():
            if line.startswith("$ "):
                commands.append((line[2:], []))
            elif commands:
                commands[-1][1].append(line)
    return commands


def test_the_section_is_the_walkthrough() -> None:
    section = _section()
    assert sorted(_files(section)) == ["app.py", "call.py", "protos/greet/v1/greet.proto"]
    assert [command.split()[0] for command, _ in _commands(section)] == [
        "python",
        "uvicorn",
        "curl",
        "python",
    ]


@contextlib.contextmanager
def _server(argv: list[str], cwd: Path, env: dict[str, str], port: int) -> Iterator[None]:
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            assert proc.poll() is None, f"{argv} exited with {proc.returncode}"
            with contextlib.suppress(httpx.TransportError):
                httpx.get(f"http://127.0.0.1:{port}/", timeout=5)  # any answer: it listens
                break
            assert time.monotonic() < deadline, f"{argv} did not start"
            time.sleep(0.05)
        yield
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=STOP_SECONDS)


@pytest.mark.skipif(shutil.which("curl") is None, reason="the walkthrough calls curl")
def test_the_walkthrough_runs_as_written(tmp_path: Path) -> None:
    section = _section()
    with bind_loopback() as sock:
        port = str(sock.getsockname()[1])
    for name, body in _files(section).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(re.sub(rf"\b{DOCUMENTED_PORT}\b", port, body))  # call.py's URL
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # `python` and `uvicorn` are this venv's
    with contextlib.ExitStack() as servers:
        for command, shown in _commands(section):
            argv = [re.sub(rf"\b{DOCUMENTED_PORT}\b", port, word) for word in shlex.split(command)]
            if argv[0] == "python":
                argv[0] = sys.executable
            if argv[0] == "uvicorn":
                servers.enter_context(_server([str(BIN / "uvicorn"), *argv[1:]], tmp_path, env, int(port)))
                continue
            result = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, f"{command}: {result.stderr}"
            assert result.stdout.splitlines() == shown, command
    assert (tmp_path / "greet" / "v1" / "greet_pb2_grpc.py").is_file()
    assert (tmp_path / "greet" / "v1" / "greet_pb2.pyi").is_file()


def test_without_grpcio_tools_the_helper_says_so_in_one_line(tmp_path: Path) -> None:
    # A module that shadows grpc_tools as not installed, first on the path.
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\nsys.modules['grpc_tools'] = None  # import grpc_tools raises ImportError\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "wsproxy.protoc", "-I", ".", "--python_out=.", "x.proto"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stderr.splitlines()) == (
        2,
        [
            "python -m wsproxy.protoc: error: grpcio-tools is not installed (it has protoc): pip install grpcio-tools"
        ],
    )
