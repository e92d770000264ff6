"""One Client per store kind: a SQLite file, a PostgreSQL database, and a real ``modelbox server``
over gRPC. The registry tests run the same assertions on all three."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

import modelbox_autolog as mbx


@dataclass
class Target:
    kind: str  # sqlite | postgresql | grpc
    uri: str
    artifacts: str  # the folder that holds the files (to check that deletes remove them)
    store_uri: str  # where ``modelbox gc`` runs (the server's store for grpc)

    def client(self) -> mbx.Client:
        return mbx.Client(self.uri)


@pytest.fixture(params=["sqlite", "postgresql", "grpc"])
def target(request, tmp_path) -> Target:
    if request.param == "sqlite":
        uri = f"sqlite:///{tmp_path}/store/modelbox.db"
        return Target("sqlite", uri, str(tmp_path / "store" / "artifacts"), uri)
    if request.param == "postgresql":
        folder = tmp_path / "pg-artifacts"
        uri = f"{request.getfixturevalue('pg_uri')}?artifacts={folder}"
        return Target("postgresql", uri, str(folder), uri)
    from tests.server.conftest import ServerProcess

    server = ServerProcess(str(tmp_path / "server")).start()
    request.addfinalizer(server.stop)
    return Target("grpc", server.uri, os.path.join(server.folder, "artifacts"), f"sqlite:///{server.db}")


@pytest.fixture
def logged(target):
    """``mbx.autolog`` into the target (no framework bound: runs are opened by hand)."""
    mbx.autolog(backend=target.uri, frameworks=[], experiment="registry", capture_console=False, capture_env=False)
    yield target
    mbx.flush(10)
