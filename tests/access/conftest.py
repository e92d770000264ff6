"""Team servers with per-user tokens, on a SQLite and on a PostgreSQL store, as real processes."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import pytest

from ..server.conftest import ServerProcess, free_port

USERS = {"alice": "writer", "bob": "writer", "rita": "reader", "ada": "admin"}


def make_token(store: str, user: str, role: str) -> str:
    """``modelbox server token create USER --role ROLE --store STORE``, as a user types it; the token."""
    import subprocess

    done = subprocess.run([sys.executable, "-m", "modelbox_autolog", "server", "token", "create", user, "--role", role,
                           "--store", store], capture_output=True, text=True, timeout=60, env=_env())
    assert done.returncode == 0, done.stderr
    assert "shown only now" in done.stderr
    return done.stdout.strip()


def modelbox(*args: str, token: str | None = None) -> tuple[int, str, str]:
    """The ``modelbox`` command in a process of its own; (exit code, stdout, stderr)."""
    import subprocess

    done = subprocess.run([sys.executable, "-m", "modelbox_autolog", *args], capture_output=True, text=True, timeout=120,
                          env=_env(MODELBOX_TOKEN=token) if token else _env())
    return done.returncode, done.stdout, done.stderr


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MODELBOX_TOKEN", "MODELBOX_BACKEND")}
    env.update(extra)
    return env


@contextlib.contextmanager
def token_env(token: str | None) -> Iterator[None]:
    """MODELBOX_TOKEN set to ``token`` while clients and backends are made (they read it then)."""
    saved = os.environ.get("MODELBOX_TOKEN")
    if token is None:
        os.environ.pop("MODELBOX_TOKEN", None)
    else:
        os.environ["MODELBOX_TOKEN"] = token
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("MODELBOX_TOKEN", None)
        else:
            os.environ["MODELBOX_TOKEN"] = saved


class TeamServer(ServerProcess):
    """``modelbox server`` over ``store`` with the web UI and HTTP API on a second port."""

    def __init__(self, folder: str, store: str, *extra: str) -> None:
        super().__init__(folder, *extra)
        self.store = store
        self.http_port = free_port()
        self.http = f"http://127.0.0.1:{self.http_port}"
        self.tokens: dict[str, str] = {}

    def command(self) -> list[str]:
        return [sys.executable, "-m", "modelbox_autolog", "server", "--store", self.store, "--artifacts",
                os.path.join(self.folder, "artifacts"), "--port", str(self.port), "--http-port", str(self.http_port),
                "--workers", "4", "--grace", "5", *self.extra]

    def client(self, user: str | None):
        """A Client of this server with ``user``'s token (None: no token)."""
        import modelbox_autolog as mbx

        with token_env(self.tokens[user] if user else None):
            client = mbx.Client(self.uri)
            client.store  # noqa: B018 - the connection reads MODELBOX_TOKEN now
        return client

    def backend(self, user: str | None):
        from modelbox_autolog.backends.grpc import GrpcBackend

        with token_env(self.tokens[user] if user else None):
            return GrpcBackend(self.uri)


def store_for(kind: str, folder: str, cluster) -> str:
    if kind == "sqlite":
        return f"sqlite:///{folder}/store/modelbox.db"
    return cluster.uri(cluster.new_database())


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def team(request, tmp_path_factory) -> Iterator[TeamServer]:
    """One server per store kind for a test module, with a token per user of USERS."""
    folder = str(tmp_path_factory.mktemp(f"team-{request.param}"))
    cluster = request.getfixturevalue("pg_cluster") if request.param == "postgresql" else None
    server = TeamServer(folder, store_for(request.param, folder, cluster))
    server.kind = request.param
    server.tokens = {user: make_token(server.store, user, role) for user, role in USERS.items()}
    server.start()
    yield server
    server.stop()
