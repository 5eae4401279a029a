"""The `wsproxy` command: uvicorn serving the middleware around an upstream or an app, and its metrics listener.

`_main` parses and checks the options and starts uvicorn; `_metrics_listener` serves Prometheus
`/metrics` and `/healthz` on a port of its own. See docs/cli.md.
"""

from wsproxy.cli._main import (
    SETTINGS_ENV,
    AppSettings,
    app_from_env,
    build_app,
    build_parser,
    main,
    settings_from_args,
)
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
