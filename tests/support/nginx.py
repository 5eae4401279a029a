"""Running a real nginx in tests: where its binary is (None when it is not installed; scripts/ensure-nginx
installs it), a free port and a wait for a port to listen."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.support.servers import bind_loopback

NGINX = shutil.which("nginx", path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/local/sbin")


def free_port() -> int:
    sock = bind_loopback()
    port: int = sock.getsockname()[1]
    sock.close()  # nginx binds it itself; the gap is tiny and the port was just free
    return port


def wait_listening(port: int, proc: subprocess.Popen[bytes], error_log: Path) -> None:
    for _ in range(500):
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited: {error_log.read_text() if error_log.exists() else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("nginx did not start listening")
