"""LightGBM workload: ``lgb.train``, 200 rounds on 20,000 x 20 float32 with one eval set."""

from __future__ import annotations

import numpy as np

DESCRIPTION = "lgb.train: 200 rounds, 31 leaves, on 20,000 x 20 with one eval set"
ROUNDS = 200


def prepare():
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    X = rng.standard_normal((24_000, 20), dtype=np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] * X[:, 2] + 0.1 * rng.standard_normal(24_000) > 0).astype(np.float32)
    params = {"objective": "binary", "metric": "binary_logloss", "verbose": -1}
    return lgb, params, X, y


def train(state) -> None:
    lgb, params, X, y = state
    # Datasets are built inside the timed part: LightGBM constructs (bins) them during train.
    dtrain = lgb.Dataset(X[:20_000], label=y[:20_000])
    dvalid = lgb.Dataset(X[20_000:], label=y[20_000:], reference=dtrain)
    lgb.train(params, dtrain, ROUNDS, valid_sets=[dvalid], valid_names=["valid"])
