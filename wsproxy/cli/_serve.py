"""Running uvicorn for the `wsproxy` command: its listening sockets made TCP sockets that get TCP_NODELAY."""

from __future__ import annotations

import contextlib
import socket

import uvicorn
from uvicorn.supervisors import Multiprocess

STARTUP_FAILURE = 3  # uvicorn's exit status when the server could not start (e.g. the port is taken)


class Config(uvicorn.Config):
    """uvicorn's Config whose listening sockets come through `tcp_socket`."""

    def bind_socket(self) -> socket.socket:
        return tcp_socket(super().bind_socket())


def tcp_socket(sock: socket.socket) -> socket.socket:
    """The same listening socket, with its protocol read from the descriptor.

    asyncio sets TCP_NODELAY on accepted connections only when the listening socket's `proto` is
    IPPROTO_TCP, and uvicorn makes the sockets of `--workers N` and `--fd` with proto 0. Without
    NODELAY a small write after another (the close frame after a unary reply) waits for the client's
    delayed ACK: 40 ms per call on Linux.
    """
    if sock.proto == socket.IPPROTO_TCP:
        return sock
    # Family, type and protocol as the kernel has them (uvicorn labels an --fd socket AF_UNIX).
    return socket.socket(fileno=sock.detach())


def serve(config: uvicorn.Config, fd: int | None) -> int:
    """uvicorn.run's start-up, with the listening sockets made by `tcp_socket` (exit status 3 as uvicorn's)."""
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        if config.workers > 1:
            Multiprocess(config, sockets=[config.bind_socket()]).run()
            return 0
        server.run(sockets=None if fd is None else [tcp_socket(socket.socket(fileno=fd))])
    return 0 if server.started else STARTUP_FAILURE
