"""Fault injection: real processes killed with SIGKILL, real servers, real full and read-only filesystems.

Scripts run in fresh interpreters (as users' training jobs do), write to real SQLite stores
and real ``modelbox server`` processes on 127.0.0.1, and are killed or starved of disk space
for real. Full and read-only disks are small tmpfs mounts (root only: skipped otherwise).
Each test records its figures with ``figures(...)``; with ``MODELBOX_FAULTS_REPORT=FILE`` they
are collected as JSON (the table in benchmarks/README.md comes from there).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from tests.server.conftest import ServerProcess, free_port, server_factory  # noqa: F401 - re-exported for the tests

WINDOW_S = 0.5  # documented: a SIGKILL loses at most what was logged this long before it (docs/ARCHITECTURE.md)
_REPORT: dict[str, dict] = {}


def child_env(tmp_path, **extra: str) -> dict[str, str]:
    """The environment of a script under test: our code first on the path, its own journal, users' defaults."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELBOX_")}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    env["MODELBOX_JOURNAL_DIR"] = str(tmp_path / "journal")
    env["MODELBOX_AUTOLOG_TESTING"] = "0"  # a user's process: our errors are reported, never raised
    env.update(extra)
    return env


def script(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def run_script(code: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(script(code), env=env, capture_output=True, text=True, timeout=timeout)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def figures(request):
    """Record this test's figures (points logged, stored, journaled, dropped with reason, times)."""
    def record(**values) -> None:
        _REPORT.setdefault(request.node.name, {}).update(values)

    return record


def pytest_sessionfinish(session, exitstatus) -> None:
    path = os.environ.get("MODELBOX_FAULTS_REPORT")
    if path and _REPORT:
        existing = {}
        if os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                existing = json.load(handle)
        existing.update(_REPORT)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(existing, handle, indent=2, sort_keys=True)


class Tmpfs:
    """A small tmpfs mount (a disk that fills up, or that turns read-only)."""

    def __init__(self, path: str, size: str) -> None:
        self.path = path
        os.makedirs(path, exist_ok=True)
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", path],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip() or 'mount failed'}); needs root")
        self.mounted = True

    def remount(self, options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", self.path], check=True, capture_output=True)

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", self.path], capture_output=True)
            self.mounted = False


@pytest.fixture
def tmpfs(tmp_path):
    """``tmpfs(size)`` mounts a fresh tmpfs under the test's folder; all are unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("tmpfs mounts need root (full and read-only disks are real mounts)")
    mounts: list[Tmpfs] = []

    def make(size: str = "4m") -> Tmpfs:
        mount = Tmpfs(str(tmp_path / f"tmpfs-{uuid.uuid4().hex[:8]}"), size)
        mounts.append(mount)
        return mount

    yield make
    for mount in mounts:
        mount.unmount()
