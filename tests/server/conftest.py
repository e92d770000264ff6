"""A real ``modelbox server`` process on 127.0.0.1, started (and killed, and restarted) by the tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``python -m modelbox_autolog.server.cli`` on a fixed port, so a restart is found at the same URI."""

    def __init__(self, folder: str, *extra: str) -> None:
        self.folder = folder
        self.port = free_port()
        self.uri = f"grpc://127.0.0.1:{self.port}"
        self.db = os.path.join(folder, "modelbox.db")
        self.extra = list(extra)
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(folder, "server.log")

    def command(self) -> list[str]:
        return [sys.executable, "-m", "modelbox_autolog", "server", "--store", f"sqlite:///{self.db}",
                "--port", str(self.port), "--workers", "4", "--grace", "10", *self.extra]

    def start(self) -> ServerProcess:
        os.makedirs(self.folder, exist_ok=True)
        log = open(self.log_path, "ab")
        env = {k: v for k, v in os.environ.items() if k != "MODELBOX_TOKEN"}
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        self.wait_serving()
        return self

    def wait_serving(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log()}")
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.1)
        raise RuntimeError(f"server did not start within {START_TIMEOUT_S}s: {self.log()}")

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def server_factory(tmp_path):
    started: list[ServerProcess] = []

    def make(*extra: str, folder: str | None = None) -> ServerProcess:
        server = ServerProcess(folder or str(tmp_path / f"server{len(started)}"), *extra)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def server(server_factory) -> ServerProcess:
    return server_factory().start()
