"""A small training library of our own, used to prove the patching engine on real code.

It has what frameworks have: a class whose ``fit`` takes callbacks, a subclass that calls
``super().fit`` (nesting), a classmethod and a staticmethod, and a module-level ``save``.
"""

from __future__ import annotations

import json
from typing import Any


class TrainingError(RuntimeError):
    pass


class Trainer:
    calls = 0  # how many times the original fit body ran (class-wide)

    def __init__(self, epochs: int = 3) -> None:
        self.epochs = epochs
        self.history: list[float] = []

    def fit(self, data: list[float], callbacks: list[Any] | None = None, *, fail_at: int | None = None) -> Trainer:
        """Train; call ``cb(epoch, loss)`` for each callback after each epoch."""
        Trainer.calls += 1
        for epoch in range(self.epochs):
            if fail_at == epoch:
                raise TrainingError(f"diverged at epoch {epoch}")
            loss = sum(data) / (epoch + 1)
            self.history.append(loss)
            for cb in callbacks or []:
                cb(epoch, loss)
        return self

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Trainer:
        return cls(**config)

    @staticmethod
    def describe(x: int) -> str:
        return f"trainer:{x}"


class BoostedTrainer(Trainer):
    def fit(self, data: list[float], callbacks: list[Any] | None = None, *, fail_at: int | None = None) -> BoostedTrainer:
        super().fit(data, callbacks, fail_at=fail_at)  # a fit inside a fit
        return self


def save(obj: Any, path: str) -> int:
    with open(path, "w") as handle:
        return handle.write(json.dumps(obj))
