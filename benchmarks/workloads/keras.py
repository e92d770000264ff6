"""Keras workload: a 64-unit MLP, ``Model.fit`` for 10 epochs (batch 128) on 20,000 x 20 with a
validation split of 0.1; ``per_step`` also logs batch metrics at every step."""

from __future__ import annotations

import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DESCRIPTION = "keras Model.fit: 64-unit MLP on 20,000 x 20, 10 epochs, batch 128, validation_split 0.1"
VARIANTS = {"per_step": {"log_every_n_steps": 1}}


def prepare():
    import keras

    rng = np.random.default_rng(0)
    X = rng.standard_normal((20_000, 20), dtype=np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] * X[:, 2] + 0.1 * rng.standard_normal(20_000) > 0).astype(np.float32)
    return keras, X, y


def train(state) -> None:
    keras, X, y = state
    model = keras.Sequential([
        keras.Input((20,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(X, y, epochs=10, batch_size=128, validation_split=0.1, verbose=0)
