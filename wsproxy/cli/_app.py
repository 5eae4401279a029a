"""What the `wsproxy` command serves: the middleware around the upstream or the --app, built from settings.

The main process builds it once to check every option; each uvicorn worker builds it again from the
same settings, passed as JSON in an environment variable (`app_from_env`), because a worker imports
its app by name.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Any

from uvicorn.importer import ImportFromStringError, import_from_string

from wsproxy._types import ASGIApp
from wsproxy.cli._option_flags import import_objects
from wsproxy.middleware import WebSocketProxyMiddleware
from wsproxy.upstream import HttpVersion, UpstreamApp

SETTINGS_ENV = "WSPROXY_SETTINGS"


@dataclass(frozen=True)
class AppSettings:
    """What a worker needs to build the app; JSON-serializable for the environment."""

    upstream: str | None
    app: str | None
    # The middleware's keywords (wsproxy/_option_table.py); a callable as its MODULE:ATTR text.
    options: dict[str, Any]
    upstream_connect_timeout: float
    upstream_read_timeout: float | None
    upstream_max_connections: int | None
    upstream_http_version: HttpVersion = "auto"
    # Put first on sys.path before importing anything named MODULE:ATTR, in every worker.
    app_dir: str = ""


def build_app(settings: AppSettings, app: ASGIApp | None = None) -> WebSocketProxyMiddleware:
    """The served app, around `app` (else the --app, imported here, or the upstream). Raises
    ValueError/TypeError (bad option), and as `import_app` does."""
    inner: ASGIApp
    if settings.upstream is not None:
        inner = UpstreamApp(
            settings.upstream,
            connect_timeout=settings.upstream_connect_timeout,
            read_timeout=settings.upstream_read_timeout,
            max_connections=settings.upstream_max_connections,
            http_version=settings.upstream_http_version,
        )
    else:
        inner = import_app(settings) if app is None else app
    return WebSocketProxyMiddleware(inner, **import_objects(settings.options))


def import_app(settings: AppSettings) -> ASGIApp:
    """The --app, imported from --app-dir first. Raises ImportFromStringError or ImportError; what the
    module itself raises while it runs propagates, to be shown with its traceback."""
    if settings.app_dir and settings.app_dir not in sys.path:
        sys.path.insert(0, settings.app_dir)
    app: ASGIApp = import_from_string(settings.app)
    return app


def app_from_env() -> WebSocketProxyMiddleware:
    """uvicorn factory for the command's workers: the app described by $WSPROXY_SETTINGS."""
    raw = os.environ.get(SETTINGS_ENV)
    if raw is None:
        raise RuntimeError(
            f"wsproxy.cli:app_from_env builds the app of the `wsproxy` command; {SETTINGS_ENV} is unset"
        )
    return build_app(AppSettings(**json.loads(raw)))


def import_problem(exc: ImportError | ImportFromStringError, app_dir: str) -> str:
    """One line on a MODULE:ATTR that did not import, with where the module was looked for."""
    if isinstance(exc, ImportFromStringError):
        text = str(exc).rstrip(".")
        if text.startswith("Could not import module"):
            return (
                f"{text}: not in --app-dir {app_dir} nor in the installed packages "
                "(run wsproxy from the module's folder, or pass --app-dir DIR)"
            )
        return text
    return f"import failed: {exc}"  # the module was found, but something it imports is missing
