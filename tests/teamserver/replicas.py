"""``modelbox server`` replicas on 127.0.0.1 serving one PostgreSQL store and one S3 bucket."""

from __future__ import annotations

import os
import sys

from ..server.conftest import ServerProcess


class Replica(ServerProcess):
    """A server process against a shared store; the S3 variables are passed in its environment."""

    def __init__(self, folder: str, store: str, artifacts: str, env: dict[str, str], *extra: str) -> None:
        super().__init__(folder, *extra)
        self.store = store
        self.artifacts = artifacts
        self.env = env

    def command(self) -> list[str]:
        return [sys.executable, "-m", "modelbox_autolog", "server", "--store", self.store, "--artifacts", self.artifacts,
                "--port", str(self.port), "--workers", "8", "--grace", "10", *self.extra]

    def start(self) -> Replica:
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)  # ServerProcess.start copies os.environ
        try:
            super().start()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        return self
