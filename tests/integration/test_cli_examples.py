"""Every `wsproxy` command in docs/cli.md, run as the page says, as a real process.

The examples are read from the page itself, so a new one is tested without a change here:
- each `$ wsproxy ...` line of a console block, with the lines after it as its expected output;
- each inline `wsproxy ...` code span in the prose;
- each python block whose first line is `# NAME.py` is written to the folder the commands run in.

The documented ports move to free ones (8080 the proxy, 8081 the upstream, 9090 the metrics), and a
command without `--port` gets one, so nothing here binds a fixed port. The upstream at 8081 is the
demo gateway in its own process (`python -m example_service`), except for an example whose output
says it is not reachable. An error example must exit 2 with exactly the documented stderr. A server
example must start, answer the EchoService's Ticker over HTTP and its Chat over WebSocket, and print
the documented lines (their numbers aside: client ports, byte counts, durations and process ids
differ from run to run) in order; with --metrics-port its /metrics answers. It is stopped with
SIGTERM and killed with SIGKILL if it ignores that.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.support.servers import bind_loopback, drain
from tests.support.upstream_apps import ROOT

DOC = ROOT / "docs" / "cli.md"
WSPROXY = str(Path(sys.executable).with_name("wsproxy"))  # the console script, as a user runs it
DOCUMENTED_PORTS = {"proxy": "8080", "upstream": "8081", "metrics": "9090"}
START_SECONDS = 60.0
STOP_SECONDS = 10.0


@dataclass(frozen=True)
class Example:
    command: str
    output: tuple[str, ...]  # the lines the page shows after it (none for an inline example)
    where: str

    @property
    def expects_error(self) -> bool:
        return bool(self.output) and self.output[0].startswith("wsproxy: error:")

    @property
    def needs_upstream(self) -> bool:
        return "--upstream" in self.command and not any("is not reachable" in line for line in self.output)


def _examples(text: str) -> list[Example]:
    examples: list[Example] = []
    in_console = False
    current: list[str] | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            in_console = line.strip() == "```console"
            current = None
            continue
        if in_console:
            if line.startswith("$ "):
                current = []
                examples.append(Example(line[2:], (), f"docs/cli.md:{number}"))
            elif current is not None:
                current.append(line)
                examples[-1] = Example(examples[-1].command, tuple(current), examples[-1].where)
            continue
        for span in re.findall(r"`(wsproxy [^`]*)`", line):
            if span.startswith("wsproxy: "):  # an error line quoted in the prose, not a command
                continue
            examples.append(Example(span, (), f"docs/cli.md:{number}"))
    return examples


def _files(text: str) -> dict[str, str]:
    """The python blocks that name their file on their first line (`# app.py`)."""
    return {
        name: body for name, body in re.findall(r"```python\n# ([\w.]+\.py)\n(.*?)```", text, flags=re.DOTALL)
    }


EXAMPLES = _examples(DOC.read_text())


def test_the_page_has_examples_of_each_kind() -> None:
    """The reader of this page keeps finding examples (a broken extractor would find none)."""
    assert len(EXAMPLES) >= 8
    assert any(example.expects_error for example in EXAMPLES)
    assert any("--app" in example.command and not example.expects_error for example in EXAMPLES)
    assert any("--metrics-port" in example.command for example in EXAMPLES)
    assert "app.py" in _files(DOC.read_text())


def _free_port() -> int:
    with bind_loopback() as sock:
        return int(sock.getsockname()[1])


def _moved(text: str, ports: dict[str, int]) -> str:
    for role, documented in DOCUMENTED_PORTS.items():
        text = re.sub(rf"\b{documented}\b", str(ports[role]), text)
    return text


def _shape(line: str) -> str:
    """A log line with its numbers (ports, sizes, times, pids) made alike."""
    return re.sub(r"\d+(\.\d+)?", "N", line.strip())


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the commands run in, holding the page's files (its app.py)."""
    path = tmp_path_factory.mktemp("cli-examples")
    for name, body in _files(DOC.read_text()).items():
        (path / name).write_text(body)
    return path


class _Lines:
    """The process's output lines, read by a thread as they come (a pipe read never blocks the test)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        if self.proc.stdout is not None:
            for line in self.proc.stdout:
                self.seen.append(line.rstrip("\n"))

    def close(self) -> None:
        """Once the process has ended: the rest of its output, then the pipe closed."""
        self._thread.join(timeout=STOP_SECONDS)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def wait_for(self, pattern: str) -> None:
        """Until a line contains `pattern`, bounded in time."""
        deadline = time.monotonic() + START_SECONDS
        while not any(pattern in line for line in self.seen):
            assert self._thread.is_alive(), f"the process ended before {pattern!r}: {self.seen}"
            assert time.monotonic() < deadline, f"no {pattern!r} in {self.seen}"
            time.sleep(0.02)


@contextlib.contextmanager
def _process(argv: list[str], cwd: Path, *, output: bool = False) -> Iterator[_Lines]:
    """Run `argv` in `cwd` (its output read into the yielded lines if `output`, else dropped)."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if output else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if output else subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # a kill takes uvicorn's workers too
        env={key: value for key, value in os.environ.items() if key != "PYTHONPATH"},
    )
    lines = _Lines(proc)
    try:
        yield lines
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=STOP_SECONDS)
        lines.close()


@contextlib.contextmanager
def _upstream(port: int, cwd: Path) -> Iterator[None]:
    argv = [sys.executable, "-m", "example_service", "--port", str(port)]
    with _process(argv, cwd) as lines:
        proc = lines.proc
        deadline = time.monotonic() + START_SECONDS
        while True:
            assert proc.poll() is None, "the demo upstream exited"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/v1/ticker?count=1", timeout=5).status_code == 200:
                    break
            assert time.monotonic() < deadline, "the demo upstream did not start"
            time.sleep(0.1)
        yield


async def _calls(port: int) -> None:
    """The EchoService's Ticker over HTTP and its Chat over WebSocket, through the example."""
    deadline = time.monotonic() + START_SECONDS
    async with httpx.AsyncClient(timeout=30) as client:
        while True:  # with --workers the port listens once a worker has started, after the start line
            try:
                ticks = await client.get(f"http://127.0.0.1:{port}/v1/ticker?count=2")
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "nothing listens on the example's port"
                await asyncio.sleep(0.05)
    assert [json.loads(line)["result"]["seq"] for line in ticks.text.splitlines()] == [0, 1]
    async with connect(f"ws://127.0.0.1:{port}/v1/chat?method=POST", open_timeout=30) as ws:
        for text in ("one", "two", "three"):
            await ws.send(json.dumps({"text": text}))
            assert json.loads(await ws.recv())["result"]["text"] == text
        await ws.send("")
        assert (await drain(ws))[1] == 1000


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: f"{example.where} {example.command}")
def test_example(example: Example, folder: Path) -> None:
    ports = {role: _free_port() for role in DOCUMENTED_PORTS}
    argv = shlex.split(_moved(example.command, ports))
    assert argv[0] == "wsproxy"
    argv[0] = WSPROXY
    expected = [_moved(line, ports) for line in example.output]
    if "--help" in argv:
        result = subprocess.run(argv, cwd=folder, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0
        assert result.stdout.startswith("usage: wsproxy")
        assert "--app-dir DIR" in result.stdout
        return
    with contextlib.ExitStack() as stack:
        if example.needs_upstream:
            stack.enter_context(_upstream(ports["upstream"], folder))
        if example.expects_error:
            result = subprocess.run(argv, cwd=folder, capture_output=True, text=True, timeout=60)
            assert (result.returncode, result.stderr.splitlines()) == (2, expected)
            return
        if "--port" not in argv and "--fd" not in argv:
            argv += ["--port", str(ports["proxy"])]
        lines = stack.enter_context(_process(argv, folder, output=True))
        lines.wait_for("Uvicorn running on")
        asyncio.run(_calls(ports["proxy"]))
        lines.wait_for('"WebSocket POST /v1/chat" 1000')  # the stream's access line, at its end
        if "--metrics-port" in argv:
            metrics = httpx.get(f"http://127.0.0.1:{ports['metrics']}/metrics", timeout=30)
            assert metrics.status_code == 200
            assert "wsproxy_" in metrics.text
        seen = list(lines.seen)
        shapes = [_shape(line) for line in seen]
        position = 0
        for line in expected:  # each documented line, in the documented order
            assert _shape(line) in shapes[position:], f"{line!r} not in the output after {seen[:position]}"
            position = shapes.index(_shape(line), position) + 1
