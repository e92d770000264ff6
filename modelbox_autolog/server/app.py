"""Assemble and run a server: store, service, health, interceptor, TLS, metrics endpoint, signals."""

from __future__ import annotations

import logging
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from ..backends.base import BackendError
from ..backends.uris import sqlite_path
from ..proto.modelbox.v1 import service_pb2_grpc as sgrpc
from .interceptors import ServerInterceptor
from .metrics import ServerMetrics
from .service import ModelBoxService
from .uploads import ServerStore, Staging

log = logging.getLogger("modelbox_autolog.server")
SERVICE_NAME = "modelbox.v1.ModelBox"


class StartupError(Exception):
    """The server cannot start; the message says why and what to do."""


@dataclass
class Settings:
    store: str
    artifacts: str | None = None
    host: str = "127.0.0.1"
    port: int = 50051
    token: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    metrics_port: int | None = None
    max_message_bytes: int = 64 << 20
    max_upload_bytes: int = 64 << 30
    workers: int = 16
    max_watchers: int = 32
    grace_s: float = 30.0
    http_port: int | None = None  # the web UI and HTTP API beside the gRPC service


class Server:
    """A running service; ``stop`` finishes in-flight calls within the grace period."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = _open_store(settings)
        try:
            self.staging = Staging(self.store.artifacts_dir, settings.max_upload_bytes)
        except OSError as exc:
            self.store.close()
            raise StartupError(f"cannot create the artifacts folder {self.store.artifacts_dir}: {exc.strerror}") from exc
        self.metrics = ServerMetrics(self.store.path, self.store.artifacts_dir)  # also host and store-size gauges
        self.service = ModelBoxService(self.store, self.staging, self.metrics, settings.max_watchers)
        self.health = health.HealthServicer()
        limits = [
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.so_reuseport", 0),  # a second server on the same port must fail, not share it
        ]
        self.grpc = grpc.server(
            ThreadPoolExecutor(max_workers=settings.workers + settings.max_watchers, thread_name_prefix="modelbox-rpc"),
            interceptors=[ServerInterceptor(settings.token, self.metrics)],
            options=limits,
        )
        sgrpc.add_ModelBoxServicer_to_server(self.service, self.grpc)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)
        self.port = self._bind()
        self.metrics_port = self._serve_metrics()
        self.http = self._serve_http()
        self.http_port = None if self.http is None else self.http.port
        self._stopped = threading.Event()

    def _bind(self) -> int:
        s = self.settings
        address = f"[{s.host}]:{s.port}" if ":" in s.host else f"{s.host}:{s.port}"
        try:
            if s.tls_cert or s.tls_key:
                if not (s.tls_cert and s.tls_key):
                    raise StartupError("TLS needs both --tls-cert and --tls-key")
                try:
                    key, cert = open(s.tls_key, "rb").read(), open(s.tls_cert, "rb").read()
                except OSError as exc:
                    raise StartupError(f"cannot read the TLS key/certificate: {exc}") from exc
                port = self.grpc.add_secure_port(address, grpc.ssl_server_credentials([(key, cert)]))
            else:
                port = self.grpc.add_insecure_port(address)
        except RuntimeError as exc:
            port = 0
            reason = exc
        else:
            reason = None
        if not port:
            self.store.close()
            raise StartupError(f"cannot listen on {address}: the port is in use or the address is not local ({reason or 'bind failed'})")
        return port

    def _serve_metrics(self) -> int | None:
        if self.settings.metrics_port is None:
            return None
        from prometheus_client import start_http_server

        try:
            httpd, _thread = start_http_server(self.settings.metrics_port, addr=self.settings.host, registry=self.metrics.registry)
        except OSError as exc:
            self.store.close()
            raise StartupError(f"cannot serve metrics on {self.settings.host}:{self.settings.metrics_port}: {exc.strerror}") from exc
        self._httpd = httpd
        return httpd.server_address[1]

    def _serve_http(self):
        """The UI and HTTP API over the same store (its own connection), behind the same token."""
        if self.settings.http_port is None:
            return None
        try:
            from ..ui.app import create_app
            from ..ui.serve import BackgroundServer, bind
        except ImportError as exc:
            self.store.close()
            raise StartupError(f"--http-port needs the ui extra: pip install 'modelbox-autolog[ui]' ({exc})") from exc
        try:
            sock = bind(self.settings.host, self.settings.http_port)
        except OSError as exc:
            self.store.close()
            raise StartupError(f"cannot serve HTTP on {self.settings.host}:{self.settings.http_port}: {exc.strerror}") from exc
        app = create_app(self.store.uri, token=self.settings.token, host=self.settings.host)
        return BackgroundServer(app, sock)

    def start(self) -> None:
        if self.http is not None:
            self.http.start()
        self.grpc.start()
        self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace: float | None = None) -> None:
        """Refuse new calls, end watch streams, let in-flight batches and uploads finish, close the store."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.health.enter_graceful_shutdown()
        self.service.stop()
        self.grpc.stop(self.settings.grace_s if grace is None else grace).wait()
        if getattr(self, "_httpd", None) is not None:
            self._httpd.shutdown()
        if self.http is not None:
            self.http.stop()
        self.store.close()

    def wait(self) -> None:
        self._stopped.wait()

    def serve_until_signalled(self) -> None:
        """Run until SIGTERM or SIGINT, then stop gracefully."""
        stop = threading.Event()

        def on_signal(signum: int, _frame: object) -> None:
            log.info("signal %s: shutting down (in-flight calls finish first)", signum)
            stop.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            while not stop.wait(3600):
                pass
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _open_store(settings: Settings) -> ServerStore:
    if not settings.store.startswith("sqlite:///"):
        raise StartupError(f"--store {settings.store!r}: the server serves a SQLite store; give sqlite:///PATH")
    path = os.path.abspath(sqlite_path(settings.store))
    artifacts = os.path.abspath(settings.artifacts) if settings.artifacts else None
    try:
        store = ServerStore("sqlite:///" + path, artifacts_dir=artifacts)
    except BackendError as exc:
        raise StartupError(f"cannot open the store: {exc}") from exc
    folder = store.artifacts_dir
    probe = folder
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.access(probe, os.W_OK | os.X_OK) or (os.path.exists(folder) and not os.path.isdir(folder)):
        store.close()
        raise StartupError(f"the artifacts folder {folder} is not writable")
    if not os.access(path, os.W_OK):
        store.close()
        raise StartupError(f"the store {path} is not writable")
    return store
