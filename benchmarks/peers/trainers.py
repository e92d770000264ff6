"""The training calls of the peer comparison.

Data, seeds and hyper-parameters come from ``benchmarks/workloads/<name>.py`` (``prepare()``); the
calls below repeat that module's ``train(state)`` line for line and add only the one hook a peer
needs (W&B's callbacks or logger), so every tool times the same training. ``quick`` shortens the
training (fewer rounds/epochs) for development runs; the data stay the same.
"""

from __future__ import annotations

import importlib
import tempfile
from collections.abc import Callable
from typing import Any

# name -> (epochs or rounds in a full run, in a quick run)
LENGTH = {"sklearn": (5, 5), "xgboost": (200, 50), "keras": (10, 3), "lightning": (10, 2)}


def load(name: str) -> Any:
    """The project's workload module (``benchmarks`` must be on ``sys.path``)."""
    return importlib.import_module(f"workloads.{name}")


def length(name: str, quick: bool) -> int:
    return LENGTH[name][1 if quick else 0]


def _callbacks(extra: Any) -> dict[str, Any]:
    # Passed only when there are some: the call is then exactly the workload's (MLflow's Keras
    # autologging fails on an explicit ``callbacks=None``).
    return {"callbacks": extra} if extra else {}


def train_sklearn(state: Any, extra: Any, quick: bool) -> None:
    # scikit-learn has no W&B integration: the workload's own train, unchanged.
    load("sklearn").train(state)


def train_xgboost(state: Any, extra: Any, quick: bool) -> None:
    xgb, params, dtrain, dvalid = state
    xgb.train(params, dtrain, length("xgboost", quick), evals=[(dvalid, "valid")], verbose_eval=False,
              **_callbacks(extra))


def train_keras(state: Any, extra: Any, quick: bool) -> None:
    keras, X, y = state
    model = keras.Sequential([
        keras.Input((20,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(X, y, epochs=length("keras", quick), batch_size=128, validation_split=0.1, verbose=0,
              **_callbacks(extra))


def train_lightning(state: Any, extra: Any, quick: bool) -> None:
    L, torch, MLP, DataLoader, train_set, val_set = state
    torch.manual_seed(0)
    # Trainer defaults (logger, ModelCheckpoint, progress bar); W&B replaces the default logger.
    trainer = L.Trainer(max_epochs=length("lightning", quick), default_root_dir=tempfile.mkdtemp(prefix="peers-lightning-"),
                        logger=extra if extra is not None else True)
    trainer.fit(MLP(), DataLoader(train_set, batch_size=128, shuffle=True), DataLoader(val_set, batch_size=512))


TRAIN: dict[str, Callable[[Any, Any, bool], None]] = {
    "sklearn": train_sklearn, "xgboost": train_xgboost, "keras": train_keras, "lightning": train_lightning,
}
