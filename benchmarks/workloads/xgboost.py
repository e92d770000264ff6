"""XGBoost workload: ``xgb.train``, 200 rounds on 20,000 x 20 float32 with one eval set."""

from __future__ import annotations

import numpy as np

DESCRIPTION = "xgb.train: 200 rounds, hist, depth 6, on 20,000 x 20 with one eval set"
ROUNDS = 200


def prepare():
    import xgboost as xgb

    rng = np.random.default_rng(0)
    X = rng.standard_normal((24_000, 20), dtype=np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] * X[:, 2] + 0.1 * rng.standard_normal(24_000) > 0).astype(np.float32)
    dtrain = xgb.DMatrix(X[:20_000], label=y[:20_000])
    dvalid = xgb.DMatrix(X[20_000:], label=y[20_000:])
    params = {"objective": "binary:logistic", "eval_metric": "logloss", "tree_method": "hist", "max_depth": 6}
    return xgb, params, dtrain, dvalid


def train(state) -> None:
    xgb, params, dtrain, dvalid = state
    xgb.train(params, dtrain, ROUNDS, evals=[(dvalid, "valid")], verbose_eval=False)
