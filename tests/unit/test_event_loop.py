"""The fast event loop comes with the install: uvloop is a dependency of the package (its metadata, no
server)."""

from __future__ import annotations

from importlib import metadata


def test_uvloop_comes_with_the_install() -> None:
    requirements = [req.split(";")[0].replace(" ", "") for req in metadata.requires("wsproxy") or []]
    assert any(req.startswith("uvloop>=") for req in requirements), requirements
