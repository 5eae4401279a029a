"""The `wsproxy` command: a WebSocket front process for a REST gateway (or any ASGI app), on uvicorn.

Every option is parsed and checked in the main process, so a mistake is one line on stderr and
exit status 2 before anything listens. uvicorn's workers then build the same app from the
settings passed in an environment variable (wsproxy/cli/_app.py, `app_from_env`), because a
worker process imports its app by name.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import logging
import os
import socket
import ssl
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, NoReturn
from urllib.parse import urlsplit

from uvicorn.config import LOGGING_CONFIG
from uvicorn.importer import ImportFromStringError

from wsproxy.cli._app import SETTINGS_ENV, AppSettings, build_app, import_app, import_problem
from wsproxy.cli._metrics_listener import prepare_multiprocess_dir, start_metrics_listener
from wsproxy.cli._option_flags import (
    add_option_flags,
    options_from_args,
    positive_float,
    positive_int,
)
from wsproxy.cli._serve import Config, serve
from wsproxy.upstream import HTTP_VERSIONS

DESCRIPTION = """\
Serve a streaming HTTP/JSON API (such as grpc-gateway's) over WebSocket.

Each WebSocket connection becomes one streaming HTTP request: every message the
client sends is one line of the request body, and every line of the response body
comes back as one message. An empty message ends the request body.

With --upstream, requests go to a gateway running elsewhere (plain HTTP requests
too, so this one port can front the whole gateway). With --app, an ASGI app is
served in this process instead.
"""

EPILOG = """\
examples:
  wsproxy --upstream http://127.0.0.1:8081
  wsproxy --upstream http://gateway:8081 --host 0.0.0.0 --port 8080 --workers 4 \\
          --allowed-origin https://app.example.com
  wsproxy --app app:app --port 8080          (app.py in the current folder)
  wsproxy --upstream http://127.0.0.1:8081 --metrics-port 9090 --authenticate myauth:check

A client connects to ws://HOST:PORT/<the gateway's path>?method=POST, sends one
JSON object per message, an empty message to finish, and reads one JSON object
per message. See docs/cli.md and docs/deployment.md.
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not the usage block: the user reads the cause, --help has the rest.
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="wsproxy",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_argument_group("what to serve (one of)").add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--upstream", metavar="URL", help="base URL of the running HTTP gateway to forward to"
    )
    source.add_argument(
        "--app",
        metavar="MODULE:ATTR",
        help="an ASGI app to serve in this process instead; give the bare app: the command wraps it",
    )

    server = parser.add_argument_group("server")
    server.add_argument(
        "--app-dir",
        default=".",
        metavar="DIR",
        help="look for --app, --authenticate and --request-mutator modules in this folder first, as "
        "uvicorn does (default: the current folder)",
    )
    server.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    server.add_argument("--port", type=int, default=8080, help="port to listen on (default: %(default)s)")
    server.add_argument(
        "--fd",
        type=int,
        help="serve on this already-bound socket file descriptor instead (socket activation)",
    )
    server.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        metavar="N",
        help="worker processes sharing the port (default: %(default)s)",
    )
    server.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
        help="log level (default: %(default)s)",
    )
    server.add_argument(
        "--ssl-certfile", metavar="FILE", help="TLS certificate (PEM): serve wss:// and https://"
    )
    server.add_argument("--ssl-keyfile", metavar="FILE", help="TLS private key (PEM) for --ssl-certfile")
    server.add_argument(
        "--ws-ping-interval",
        type=positive_float,
        default=20.0,
        metavar="SECONDS",
        help="send a WebSocket ping this often (default: %(default)s)",
    )
    server.add_argument(
        "--ws-ping-timeout",
        type=positive_float,
        default=20.0,
        metavar="SECONDS",
        help="close a connection whose pong is this late (default: %(default)s)",
    )
    server.add_argument(
        "--ws-max-size",
        type=positive_int,
        default=16 * 1024 * 1024,
        metavar="BYTES",
        help="largest WebSocket frame the server accepts (default: %(default)s)",
    )
    server.add_argument(
        "--ws",
        default="auto",
        choices=["auto", "websockets", "websockets-sansio", "wsproto"],
        help="uvicorn's WebSocket implementation (default: %(default)s)",
    )
    server.add_argument(
        "--loop",
        default="auto",
        choices=["auto", "asyncio", "uvloop"],
        help="event loop; auto is uvloop where installed (a dependency), else asyncio (default: %(default)s)",
    )
    server.add_argument(
        "--forwarded-allow-ips",
        default="127.0.0.1",
        metavar="IPS",
        help="comma-separated proxies (e.g. nginx) whose X-Forwarded-For/-Proto are trusted, '*' for any "
        "(default: %(default)s)",
    )

    add_option_flags(parser.add_argument_group("WebSocket to HTTP mapping"))

    ops = parser.add_argument_group("operations (docs/operations.md)")
    ops.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus /metrics and /healthz on this port of --host (needs wsproxy[metrics]; "
        "default: no metrics)",
    )
    ops.add_argument(
        "--no-access-log",
        action="store_true",
        help="no line per stream (and no uvicorn access log); by default each stream logs one at its end",
    )

    upstream = parser.add_argument_group("upstream (with --upstream)")
    upstream.add_argument(
        "--upstream-connect-timeout",
        type=positive_float,
        default=10.0,
        metavar="SECONDS",
        help="connecting to the gateway; slower answers 504 / closes 4504 (default: %(default)s)",
    )
    upstream.add_argument(
        "--upstream-read-timeout",
        type=positive_float,
        metavar="SECONDS",
        help="longest silence from the gateway inside a call (default: none, streams may idle)",
    )
    upstream.add_argument(
        "--upstream-max-connections",
        type=positive_int,
        metavar="N",
        help="connections to the gateway per worker; over HTTP/1.1 each open stream holds one "
        "(default: no limit)",
    )
    upstream.add_argument(
        "--upstream-http-version",
        choices=HTTP_VERSIONS,
        default="auto",
        help="auto: HTTP/1.1 to http://, HTTP/2 or 1.1 by ALPN to https://; 2: h2c prior knowledge "
        "to http:// (default: %(default)s)",
    )
    upstream.add_argument(
        "--no-upstream-check",
        action="store_true",
        help="start even if the gateway is not reachable yet (calls then close with 4502 until it is)",
    )
    return parser


def settings_from_args(args: argparse.Namespace) -> AppSettings:
    options = options_from_args(args)
    options["metrics"] = args.metrics_port is not None
    options["access_log"] = not args.no_access_log
    return AppSettings(
        upstream=args.upstream,
        app=args.app,
        options=options,
        upstream_connect_timeout=args.upstream_connect_timeout,
        upstream_read_timeout=args.upstream_read_timeout,
        upstream_max_connections=args.upstream_max_connections,
        upstream_http_version=args.upstream_http_version,
        app_dir=os.path.abspath(args.app_dir),
    )


def check_upstream(url: str, timeout: float) -> None:
    """Open (and close) one TCP connection to the upstream. Raises OSError naming the cause."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    with socket.create_connection((parts.hostname or "", port), timeout=timeout):
        pass


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host ({exc.strerror})"
    if isinstance(exc, TimeoutError):
        return "connection timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def _metrics_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/metrics"


def _check_port(parser: argparse.ArgumentParser, flag: str, port: int) -> None:
    if not 0 < port < 65536:
        parser.error(f"argument {flag}: must be a port number (1-65535), got {port}")


def _log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging, plus the `wsproxy` logger at the same level, and what keeps secrets out.

    Query strings leave uvicorn's handshake and access lines (their values may be tokens), and below
    `trace` the websockets library's DEBUG lines (every handshake header, the Bearer token among them,
    and every payload) are dropped. docs/operations.md, "What is logged at each level", has the list.
    """
    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["wsproxy"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    filters = config.setdefault("filters", {})
    filters["query_values_hidden"] = {"()": "wsproxy.QueryValuesHidden"}
    filters["websockets_debug_hidden"] = {"()": "wsproxy.operations._access_log.WebSocketsDebugHidden"}
    config["loggers"]["uvicorn.error"]["filters"] = ["query_values_hidden"]
    if level != "trace":
        config["loggers"]["uvicorn.error"]["filters"].append("websockets_debug_hidden")
    config["loggers"]["uvicorn.access"]["filters"] = ["query_values_hidden"]
    return config


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = settings_from_args(args)
    if settings.upstream is not None and settings.options["passthrough_paths"] is not None:
        # UpstreamApp forwards HTTP only: the gateway's own WebSocket routes are not reachable through it.
        parser.error(
            "--passthrough-path leaves upgrades to an --app's own WebSocket routes; not with --upstream"
        )
    if args.metrics_port is not None:
        _check_port(parser, "--metrics-port", args.metrics_port)
        if importlib.util.find_spec("prometheus_client") is None:
            parser.error("--metrics-port needs prometheus_client: pip install 'wsproxy[metrics]'")
        # Before anything imports prometheus_client: it picks per-process files at import time.
        metrics_dir = prepare_multiprocess_dir()
    app = None
    if settings.upstream is None:
        try:  # apart from the options: a ValueError the module raises is its own, with its traceback
            app = import_app(settings)
        except (ImportError, ImportFromStringError) as exc:
            parser.error(import_problem(exc, args.app_dir))
    try:
        build_app(settings, app)  # every option checked here, once, before any worker starts
    except (ValueError, TypeError) as exc:
        parser.error(str(exc))
    except (ImportError, ImportFromStringError) as exc:  # a hook's module (--authenticate, ...)
        parser.error(import_problem(exc, args.app_dir))
    if args.ssl_certfile or args.ssl_keyfile:
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                args.ssl_certfile or "", args.ssl_keyfile
            )
        except (OSError, ssl.SSLError) as exc:
            parser.error(f"cannot load the TLS certificate/key: {_reason(exc)}")
    if settings.upstream is not None and not args.no_upstream_check:
        try:
            check_upstream(settings.upstream, settings.upstream_connect_timeout)
        except OSError as exc:
            parser.exit(
                2,
                f"wsproxy: error: upstream {settings.upstream} is not reachable: {_reason(exc)} "
                "(start it first, or pass --no-upstream-check)\n",
            )
    if args.metrics_port is not None:
        try:
            start_metrics_listener(args.host, args.metrics_port, metrics_dir)
        except OSError as exc:
            parser.exit(
                2,
                f"wsproxy: error: cannot serve metrics on {args.host}:{args.metrics_port}: {_reason(exc)}\n",
            )
    os.environ[SETTINGS_ENV] = json.dumps(asdict(settings))
    config = Config(
        "wsproxy.cli:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        fd=args.fd,
        workers=args.workers,
        log_level=args.log_level,
        log_config=_log_config(args.log_level),
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
        ws=args.ws,
        loop=args.loop,
        ws_ping_interval=args.ws_ping_interval,
        ws_ping_timeout=args.ws_ping_timeout,
        ws_max_size=args.ws_max_size,
        forwarded_allow_ips=args.forwarded_allow_ips,
        access_log=not args.no_access_log,
        # The gateway's responses carry its own Server and Date headers.
        server_header=settings.upstream is None,
        date_header=settings.upstream is None,
    )
    if args.metrics_port is not None:  # beside uvicorn's "Uvicorn running on ..." line
        logging.getLogger("wsproxy").info(
            "Prometheus metrics on %s (and /healthz)", _metrics_url(args.host, args.metrics_port)
        )
    return serve(config, args.fd)
