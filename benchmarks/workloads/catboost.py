"""CatBoost workload: ``CatBoostClassifier.fit``, 200 iterations on 20,000 x 20 with one eval set."""

from __future__ import annotations

import os
import tempfile

import numpy as np

DESCRIPTION = "CatBoostClassifier.fit: 200 iterations, depth 6, on 20,000 x 20 with one eval set"
ROUNDS = 200


def prepare():
    import catboost

    rng = np.random.default_rng(0)
    X = rng.standard_normal((24_000, 20), dtype=np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] * X[:, 2] + 0.1 * rng.standard_normal(24_000) > 0).astype(np.int64)
    train_dir = os.path.join(tempfile.mkdtemp(prefix="bench-catboost-"), "catboost_info")
    return catboost, X, y, train_dir


def train(state) -> None:
    catboost, X, y, train_dir = state
    model = catboost.CatBoostClassifier(iterations=ROUNDS, depth=6, verbose=False, train_dir=train_dir)
    model.fit(X[:20_000], y[:20_000], eval_set=(X[20_000:], y[20_000:]))
