"""Fixtures of the SDK tests: a real ``modelbox server`` with a token, and the SDK tools' runner."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.server.conftest import ServerProcess

TOKEN = "sdk-test-token"


class Tool:
    """One SDK's command-line tool (modelbox-go / modelbox_cpp): runs it, parses its JSON lines."""

    def __init__(self, language: str, binary: Path, example: Path) -> None:
        self.language = language
        self.binary = binary
        self.example = example

    def env(self, token: str = TOKEN, **extra: str) -> dict[str, str]:
        return {**os.environ, "MODELBOX_TOKEN": token, **extra}

    def run(self, command: str, *args: str, token: str = TOKEN, check: bool = True, timeout: float = 120,
            env: dict[str, str] | None = None) -> list[dict]:
        proc = subprocess.run([str(self.binary), command, *args], env=self.env(token, **(env or {})), capture_output=True,
                              text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{self.binary.name} {command} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        self.last_stderr = proc.stderr
        self.last_returncode = proc.returncode
        return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]

    def start(self, command: str, *args: str, token: str = TOKEN) -> Running:
        proc = subprocess.Popen([str(self.binary), command, *args], env=self.env(token), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        return Running(proc)


class Running:
    """A tool running in the background; its JSON lines arrive through a queue."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.lines: queue.Queue = queue.Queue()
        self.stderr = ""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.lines.put(json.loads(line))
        self.lines.put(None)

    def next(self, timeout: float = 60) -> dict | None:
        return self.lines.get(timeout=timeout)

    def until(self, predicate, timeout: float = 60) -> list[dict]:
        """Lines up to and including the first one ``predicate`` accepts."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                raise AssertionError(f"the tool ended first ({self.proc.wait()}): {seen} {self.proc.stderr.read()}")
            seen.append(line)
            if predicate(line):
                return seen

    def wait(self, timeout: float = 120) -> int:
        code = self.proc.wait(timeout)
        self.stderr = self.proc.stderr.read()
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def wait_port(server: ServerProcess, timeout: float = 30) -> None:
    """Wait until the server accepts connections (a TLS server: the plain health probe cannot ask)."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited with {server.proc.returncode}: {server.log()}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", server.port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server did not listen within {timeout}s: {server.log()}")


@pytest.fixture(scope="module")
def token_server(tmp_path_factory):
    """A real server on 127.0.0.1 that requires TOKEN, shared by a module's tests."""
    server = ServerProcess(str(tmp_path_factory.mktemp("sdk-server")), "--token", TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def own_server(tmp_path):
    """A server of this test alone (it gets killed and restarted)."""
    server = ServerProcess(str(tmp_path / "server"), "--token", TOKEN)
    yield server
    server.stop()


@pytest.fixture
def token_env(monkeypatch):
    monkeypatch.setenv("MODELBOX_TOKEN", TOKEN)
