"""A store filled by real autologged fits, and ``modelbox ui`` processes on 127.0.0.1 over it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests._components import require_module

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MODELBOX_BACKEND", "MODELBOX_TOKEN", "MODELBOX_UI_TOKEN")}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def ui_store(tmp_path_factory) -> str:
    """sqlite URI of a store filled by tests/ui/fill_store.py (real sklearn/XGBoost fits)."""
    require_module("starlette", "pip install 'modelbox-autolog[ui]'")
    folder = tmp_path_factory.mktemp("ui-store")
    uri = f"sqlite:///{folder}/store/modelbox.db"
    subprocess.run([sys.executable, os.path.join(ROOT, "tests", "ui", "fill_store.py"), uri, str(folder)], check=True,
                   env=subprocess_env(MODELBOX_JOURNAL_DIR=str(folder / "journal")), timeout=300, cwd=str(folder))
    return uri


class UiProcess:
    """``python -m modelbox_autolog ui`` on a free port, stopped by SIGTERM."""

    def __init__(self, backend: str, folder: str, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(folder, f"ui-{self.port}.log")
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modelbox_autolog", "--backend", backend, "ui", "--port", str(self.port), *extra],
            stdout=log, stderr=subprocess.STDOUT, env=subprocess_env(MODELBOX_JOURNAL_DIR=os.path.join(folder, "journal")))
        log.close()
        self._terminated = False
        self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"modelbox ui exited: {open(self.log_path).read()}")
            try:
                httpx.get(self.url + "/static/app.css", timeout=1.0)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"modelbox ui did not start: {open(self.log_path).read()}")

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM, once): it closes open event streams within its 3 s grace."""
        if self.proc.poll() is None and not self._terminated:
            self._terminated = True
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture(scope="session")
def ui_factory(tmp_path_factory):
    started: list[UiProcess] = []
    folder = str(tmp_path_factory.mktemp("ui-servers"))

    def make(backend: str, *extra: str) -> UiProcess:
        server = UiProcess(backend, folder, *extra)
        started.append(server)
        return server

    yield make
    for server in started:  # all at once: each may take its graceful-shutdown grace (3 s) to close event streams
        server.terminate()
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def ui(ui_store, ui_factory) -> UiProcess:
    return ui_factory(ui_store)
