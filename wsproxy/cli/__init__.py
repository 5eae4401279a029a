"""The `wsproxy` command: uvicorn serving the middleware around an upstream or an app, and its metrics listener.

`_main` parses and checks the options and starts uvicorn; `_app` builds the served app from the
settings (in the main process and in every worker); `_metrics_listener` serves Prometheus
`/metrics` and `/healthz` on a port of its own. See docs/cli.md.
"""

from wsproxy.cli._app import SETTINGS_ENV, AppSettings, app_from_env, build_app
from wsproxy.cli._main import build_parser, main, settings_from_args
from wsproxy.cli._serve import tcp_socket

__all__ = [
    "SETTINGS_ENV",
    "AppSettings",
    "app_from_env",
    "build_app",
    "build_parser",
    "main",
    "settings_from_args",
    "tcp_socket",
]
