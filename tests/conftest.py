"""Shared fixtures: a real SQLite store per test, and a clean autolog state around each test."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MODELBOX_AUTOLOG_TESTING", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# TensorFlow 2.21 and triton 3.x cannot share a process in one order: importing triton (which
# torch._dynamo, Lightning and torchvision.ops do) after tensorflow segfaults, with or without
# this library. The suite imports both, so triton goes first, as users mixing them must do too.
try:
    import triton  # noqa: F401
except ImportError:
    pass

import modelbox_autolog as mbx  # noqa: E402
from modelbox_autolog import testing  # noqa: E402
from tests._browser import artifacts_dir, browser, page  # noqa: E402,F401  (one Chromium per session)


@pytest.fixture(autouse=True)
def _clean_state(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELBOX_JOURNAL_DIR", str(tmp_path / "journal"))
    monkeypatch.delenv("MODELBOX_BACKEND", raising=False)
    monkeypatch.delenv("MODELBOX_EXPERIMENT", raising=False)
    testing.reset()
    yield
    testing.reset()


@pytest.fixture
def store_uri(tmp_path) -> str:
    """A fresh SQLite store file for this test."""
    return f"sqlite:///{tmp_path}/store/modelbox.db"


@pytest.fixture
def client(store_uri) -> mbx.Client:
    return mbx.Client(store_uri)


@pytest.fixture
def autologged(store_uri, client):
    """``mbx.autolog()`` into this test's SQLite store; yields a Client on it."""
    mbx.autolog(backend=store_uri, experiment="test", capture_console=False)
    yield client
    mbx.flush(10)


@pytest.fixture(scope="session")
def pg_cluster():
    """One real PostgreSQL cluster for the session (team-server and registry tests); each test
    takes a database of its own."""
    from ._components import missing
    from .teamserver.components import PostgresCluster, postgres_bin, started

    bindir = postgres_bin()
    if bindir is None:
        missing("PostgreSQL (initdb, pg_ctl)", "apt-get install postgresql; `make test` installs it as root")
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        missing("psycopg 3 and psycopg_pool", "pip install 'modelbox-autolog[postgres]'")
    cluster = started(lambda: PostgresCluster(bindir), lambda c: (c.init(), c.start()))
    yield cluster
    cluster.cleanup()


@pytest.fixture
def pg_uri(pg_cluster) -> str:
    """A fresh, empty database of the session's cluster."""
    return pg_cluster.uri(pg_cluster.new_database())
