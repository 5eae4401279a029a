"""The `wsproxy` command's metrics listener: `/metrics` for Prometheus, `/healthz` for load balancers.

Theory of operation. The listener runs in the command's main process, on a thread of its own, on a
port apart from the proxy's (so scrapes never queue behind WebSocket traffic and the port can be
firewalled apart). Workers may be separate processes, so every process writes its figures to files
in a directory (prometheus_client's multiprocess mode, PROMETHEUS_MULTIPROC_DIR), and a scrape adds
them up. `prepare_multiprocess_dir` must run before prometheus_client is imported anywhere in the
process: the library picks its storage at import time, and workers inherit the environment.

A worker that died without a clean exit leaves its open-streams gauge file behind; before each scrape
the files of processes that no longer exist are retired (their counters stay: what they counted happened).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w+_(\d+)\.db$")
_METRIC_FILE = re.compile(r"^(counter|gauge_\w+|histogram|summary)_\d+\.db$")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def prepare_multiprocess_dir() -> str:
    """The directory where processes write their figures: the given one emptied of stale files, or a new one."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        os.makedirs(path, exist_ok=True)
        for name in os.listdir(path):  # figures of an earlier run would be added to this one's
            if _METRIC_FILE.match(name):
                os.remove(os.path.join(path, name))
        return path
    path = tempfile.mkdtemp(prefix="wsproxy-metrics-")
    os.environ[MULTIPROC_ENV] = path
    owner = os.getpid()

    def remove() -> None:
        if os.getpid() == owner:  # a forked child inherits atexit hooks: only the maker removes it
            shutil.rmtree(path, ignore_errors=True)

    atexit.register(remove)
    return path


def retire_dead_processes(path: str) -> None:
    from prometheus_client import multiprocess

    for name in os.listdir(path):
        match = _LIVE_GAUGE_FILE.match(name)
        if match and not _alive(int(match.group(1))):
            multiprocess.mark_process_dead(int(match.group(1)), path)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def metrics_wsgi_app(path: str) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    from prometheus_client import CollectorRegistry, make_wsgi_app, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path)  # type: ignore[no-untyped-call]
    exposition = make_wsgi_app(registry)
    health = json.dumps({"status": "ok"}).encode()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        route = environ.get("PATH_INFO", "")
        if route == "/metrics":
            retire_dead_processes(path)
            scraped: Iterable[bytes] = exposition(environ, start_response)
            return scraped
        if route == "/healthz":
            start_response(
                "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(health)))]
            )
            return [health]
        body = b'{"error": "not found: try /metrics or /healthz"}'
        start_response(
            "404 Not Found", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]

    return app


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes every few seconds: not worth a line
        pass


def start_metrics_listener(host: str, port: int, path: str) -> WSGIServer:
    """Bind now (raises OSError, e.g. port taken), then serve on a daemon thread."""
    server_class = _Server6 if ":" in host else _Server
    server = make_server(host, port, metrics_wsgi_app(path), server_class, _QuietHandler)
    threading.Thread(target=server.serve_forever, name="wsproxy-metrics", daemon=True).start()
    return server
