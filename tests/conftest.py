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
