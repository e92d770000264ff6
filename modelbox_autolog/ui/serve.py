"""Running the app: in the foreground for ``modelbox ui``, or on a thread beside the gRPC
service for ``modelbox server --http-port``."""

from __future__ import annotations

import socket
import threading
from typing import Any

import uvicorn


def _config(app: Any, host: str, port: int, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False, lifespan="off",
                          proxy_headers=False, server_header=False, timeout_graceful_shutdown=3)


def bind(host: str, port: int) -> socket.socket:
    """Bind first, so a port in use is a clear error and port 0 picks a free one we can print."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def serve(app: Any, sock: socket.socket, log_level: str = "warning") -> None:
    """Serve until interrupted (SIGINT/SIGTERM end it gracefully)."""
    host, port = sock.getsockname()[:2]
    server = uvicorn.Server(_config(app, host, port, log_level))
    server.run(sockets=[sock])


class BackgroundServer:
    """The app on its own thread (beside the gRPC server); ``stop`` ends it."""

    def __init__(self, app: Any, sock: socket.socket, log_level: str = "warning") -> None:
        host, port = sock.getsockname()[:2]
        self.port = port
        self._server = uvicorn.Server(_config(app, host, port, log_level))
        # uvicorn installs no signal handlers off the main thread: the gRPC server keeps its own
        self._sock = sock
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, name="modelbox-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
