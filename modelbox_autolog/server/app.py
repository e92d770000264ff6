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
from ..backends.sqlite import SQLiteStore
from ..backends.uris import artifacts_param, sqlite_path
from ..proto.modelbox.v1 import service_pb2_grpc as sgrpc
from .access import TOKEN_PATTERN, Authenticator
from .interceptors import ServerInterceptor
from .metrics import ServerMetrics
from .policy import Policy
from .service import ModelBoxService
from .uploads import Staging

log = logging.getLogger("modelbox_autolog.server")
SERVICE_NAME = "modelbox.v1.ModelBox"
HEALTH_EVERY_S = 1.0


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
        if settings.token and TOKEN_PATTERN.fullmatch(settings.token):
            raise StartupError("--token (or $MODELBOX_TOKEN) holds a per-user token (mbx_...): the shared token of one-token mode "
                               "is a secret of its own; per-user tokens are checked against the store without --token")
        self.metrics = ServerMetrics()
        self.store = open_served_store(settings, self.metrics)
        self.artifacts = self.store.artifact_store
        self.metrics.watch_store(self.store)
        self.staging = Staging(self.artifacts, settings.max_upload_bytes)
        self.service = ModelBoxService(self.store, self.staging, self.metrics, settings.max_watchers)
        # One authenticator and one policy for both APIs: the shared --token and the store's per-user tokens.
        self.authenticator = Authenticator(self.store, settings.token)
        self.policy = Policy(self.store)
        self.health = health.HealthServicer()
        limits = [
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.so_reuseport", 0),  # a second server on the same port must fail, not share it
        ]
        self.grpc = grpc.server(
            ThreadPoolExecutor(max_workers=settings.workers + settings.max_watchers, thread_name_prefix="modelbox-rpc"),
            interceptors=[ServerInterceptor(self.authenticator, self.policy, self.metrics)],
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
        """The UI and HTTP API over the same store (its own connection), behind the same tokens and policy."""
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
        app = create_app(self._uri_for_clients(), host=self.settings.host, authenticator=self.authenticator, policy=self.policy)
        return BackgroundServer(app, sock)

    def _uri_for_clients(self) -> str:
        """The store URI a Client in this process opens to read what this server serves: the one
        given (with its password, if any: it stays in this process), naming the artifact store."""
        uri = self.settings.store
        if uri.startswith("sqlite:///"):
            uri = "sqlite:///" + os.path.abspath(sqlite_path(uri))
        if artifacts_param(uri) is None:
            from urllib.parse import quote

            uri += ("&" if "?" in uri else "?") + "artifacts=" + quote(self.artifacts.uri, safe=":/")
        return uri

    def start(self) -> None:
        if self.http is not None:
            self.http.start()
        self.grpc.start()
        self._set_health(True)
        ping = getattr(self.store, "ping", None)
        if ping is not None:  # a database of its own: serve only while it answers
            threading.Thread(target=self._follow_health, args=(ping,), name="modelbox-health", daemon=True).start()
        if getattr(self.store, "wait_for_change", None) is not None:
            threading.Thread(target=self._follow_changes, name="modelbox-listen", daemon=True).start()

    def _set_health(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        self.health.set("", status)
        self.health.set(SERVICE_NAME, status)
        self.metrics.store_up.set(1 if serving else 0)

    def _follow_health(self, ping) -> None:
        """NOT_SERVING while the database is unreachable, so load balancers send calls elsewhere."""
        serving = True
        while not self._stopped.wait(HEALTH_EVERY_S):
            answered = ping(HEALTH_EVERY_S)
            if answered != serving and not self._stopped.is_set():
                serving = answered
                self._set_health(serving)
                if serving:
                    log.info("database reachable again: SERVING")
                else:
                    log.warning("database unreachable: NOT_SERVING until it answers again")

    def _follow_changes(self) -> None:
        """Wake this replica's watchers when any replica commits a change (LISTEN/NOTIFY)."""
        while not self._stopped.is_set():
            if self.store.wait_for_change(1.0):
                self.service.notify()

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


def open_served_store(settings: Settings, metrics: ServerMetrics | None = None):
    """The metadata store of ``--store`` composed with the artifact store of ``--artifacts``,
    both checked (reachable, writable) so a bad location fails here with a precise message."""
    from ..artifacts import ArtifactStoreError, open_artifacts

    uri = settings.store
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    location = settings.artifacts or artifacts_param(uri)
    try:
        artifacts = open_artifacts(location) if location else None
    except ArtifactStoreError as exc:
        raise StartupError(str(exc)) from exc
    if artifacts is not None and metrics is not None:
        artifacts.observer = metrics.observe_artifacts(artifacts)
    if scheme == "sqlite":
        path = os.path.abspath(sqlite_path(uri))
        if artifacts is None:
            artifacts = open_artifacts(os.path.join(os.path.dirname(path), "artifacts"))
        try:
            store = SQLiteStore("sqlite:///" + path, artifacts=artifacts)
        except BackendError as exc:
            raise StartupError(f"cannot open the store: {exc}") from exc
        if not os.access(path, os.W_OK):
            store.close()
            raise StartupError(f"the store {path} is not writable")
    elif scheme in ("postgresql", "postgres"):
        store = _open_postgres(settings, artifacts, metrics)
    else:
        raise StartupError(f"--store {uri!r}: give sqlite:///PATH or postgresql://USER@HOST:PORT/DB")
    _check_artifacts(store.artifact_store, store)
    return store


def _check_artifacts(artifacts, store) -> None:
    from ..artifacts import ArtifactStoreError

    try:
        artifacts.check()
    except ArtifactStoreError as exc:
        store.close()
        raise StartupError(str(exc)) from exc


def _open_postgres(settings: Settings, artifacts, metrics: ServerMetrics | None):
    """A PostgreSQL store whose artifact location is remembered in the database, so every
    replica and client agrees on it; a replica started with another location is refused."""
    from ..artifacts import open_artifacts

    try:
        from ..backends.postgres import PostgresStore
    except ImportError as exc:
        raise StartupError(f"a PostgreSQL store needs: pip install 'modelbox-autolog[postgres]' ({exc})") from exc
    observer = metrics.observe_query if metrics is not None else None
    try:
        store = PostgresStore(settings.store, artifacts=artifacts, pool_size=settings.workers + 4, observer=observer)
    except BackendError as exc:
        raise StartupError(f"cannot open the store: {exc}") from exc
    try:
        if artifacts is not None:
            _check_artifacts(artifacts, store)  # before remembering it: a location that fails is not kept
            remembered = store.claim_setting("artifacts", artifacts.uri)
            if remembered != artifacts.uri:
                raise StartupError(f"{store.uri} keeps its files in {remembered}; --artifacts {artifacts.uri} differs "
                                   "(every replica must use the same location)")
        else:
            remembered = store.setting("artifacts")
            if not remembered:
                raise StartupError(f"{store.uri} has no artifact location yet: give --artifacts s3://BUCKET/PREFIX "
                                   "(or a folder every replica shares)")
            store.artifact_store = open_artifacts(remembered)
            if metrics is not None:
                store.artifact_store.observer = metrics.observe_artifacts(store.artifact_store)
    except BaseException:
        store.close()
        raise
    return store
