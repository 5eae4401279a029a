"""The request path as the gateway's routes see it, below the prefix it is mounted at (`root_path`).

Theory of operation: ASGI's `root_path` names the prefix an app is mounted at (WSGI's SCRIPT_NAME).
Who strips it differs: Starlette's Mount (since 0.35) and uvicorn's `--root-path` keep the full
path in `path` and `raw_path`; older Starlette put the rest of the path in `path` and left `raw_path`
whole; a multiplexed wsproxy call carries the path its OPEN frame named, without the prefix. So
the prefix comes off whichever of the two paths starts with it, and a path that does not start
with it is taken as already stripped. Routes match the raw (percent-encoded) form, as grpc-gateway's
ServeMux matches `URL.RawPath`, so `raw_path` is preferred whenever it holds the same request.
"""

from __future__ import annotations

from urllib.parse import quote

from wsproxy.gateway._types import Scope


def route_path(scope: Scope) -> str:
    """The percent-encoded path below `root_path`, always starting with "/"."""
    root = scope.get("root_path", "")
    raw = scope.get("raw_path")
    if raw:
        raw_text = raw.decode("latin-1").partition("?")[0]
        below = _below(raw_text, quote(root))
        if below is not None:
            return below
        if not root or not _below(scope["path"], root):
            return raw_text or "/"  # already stripped, or raw_path and root_path disagree: trust raw_path
    path: str = scope["path"]
    below = _below(path, root)
    return quote(path if below is None else below) or "/"


def _below(path: str, prefix: str) -> str | None:
    """`path` without `prefix` if it starts with it on a segment boundary, else None."""
    if not prefix or prefix == "/":
        return None
    prefix = prefix.rstrip("/")
    if path == prefix:
        return "/"
    if path.startswith(prefix) and path[len(prefix)] == "/":
        return path[len(prefix) :]
    return None
