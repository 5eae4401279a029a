"""The stream core is sans-I/O in fact: its modules import nothing that does I/O or runs coroutines.

Read from the source (ast), so a forbidden import anywhere in the module turns this red, even one
inside a function or behind TYPE_CHECKING.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import wsproxy

PACKAGE = Path(wsproxy.__file__).parent
# The core and the pure pieces it is made of.
SANS_IO = [
    "stream/_core.py",
    "stream/_actions.py",
    "stream/_response.py",
    "stream/_lines.py",
    "stream/_budget.py",
    "stream/_records.py",
]
# Modules, and names from modules, that would let I/O, a loop, a task or a coroutine in.
FORBIDDEN_MODULES = {
    "asyncio",
    "anyio",
    "trio",
    "socket",
    "selectors",
    "threading",
    "uvloop",
    "wsproxy.stream._shell",
    "wsproxy.stream._nowait",
    "wsproxy.stream._ticker",
}
FORBIDDEN_NAMES = {
    ("types", "CoroutineType"),
    ("types", "coroutine"),
    ("types", "GeneratorType"),
    ("collections.abc", "Coroutine"),
    ("collections.abc", "Awaitable"),
    ("typing", "Coroutine"),
    ("typing", "Awaitable"),
    ("wsproxy._types", "Receive"),
    ("wsproxy._types", "Send"),
}


def imports(path: Path) -> set[tuple[str, str | None]]:
    """(module, name) for every import in the module; name None for `import module`."""
    found: set[tuple[str, str | None]] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {(alias.name, None) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            found |= {(node.module, alias.name) for alias in node.names}
    return found


def forbidden(path: Path) -> list[str]:
    bad = []
    for module, name in imports(path):
        if module.split(".")[0] in FORBIDDEN_MODULES or module in FORBIDDEN_MODULES:
            bad.append(module)
        elif (module, name) in FORBIDDEN_NAMES:
            bad.append(f"{module}.{name}")
        elif module == "types" and name is None:
            bad.append("types")  # types.CoroutineType and friends, reached through the module
    source = path.read_text()
    bad += [word for word in ("async def", "await ", "CoroutineType", "get_running_loop") if word in source]
    return bad


@pytest.mark.parametrize("module", SANS_IO)
def test_the_sans_io_modules_import_no_io_and_hold_no_coroutine(module: str) -> None:
    assert forbidden(PACKAGE / module) == []


def test_the_check_sees_what_it_forbids(tmp_path: Path) -> None:
    """The check itself can fail: each way of letting a coroutine in is caught."""
    cases = {
        "import asyncio\n": ["asyncio"],
        "from asyncio import sleep\n": ["asyncio"],
        "from types import CoroutineType\n": ["types.CoroutineType", "CoroutineType"],
        "import types\n": ["types"],
        "from wsproxy._types import Receive\n": ["wsproxy._types.Receive"],
        "async def f() -> None:\n    pass\n": ["async def"],
        "from wsproxy._types import Message\n": [],
    }
    for source, expected in cases.items():
        path = tmp_path / "module.py"
        path.write_text(source)
        assert sorted(forbidden(path)) == sorted(expected), source
