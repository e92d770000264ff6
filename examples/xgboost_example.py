"""XGBoost: native ``xgb.train`` with early stopping, then an ``XGBClassifier``; both recorded."""

from __future__ import annotations

REQUIRES = ("xgboost", "sklearn")


def main() -> None:
    import numpy as np
    import xgboost as xgb

    rng = np.random.default_rng(0)
    X = rng.standard_normal((2_000, 10)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] * X[:, 2] + 0.3 * rng.standard_normal(2_000) > 0).astype(np.float32)
    dtrain = xgb.DMatrix(X[:1_600], label=y[:1_600])
    dvalid = xgb.DMatrix(X[1_600:], label=y[1_600:])

    params = {"objective": "binary:logistic", "eval_metric": ["logloss", "auc"], "max_depth": 3, "nthread": 2}
    booster = xgb.train(params, dtrain, 200, evals=[(dtrain, "train"), (dvalid, "valid")],
                        early_stopping_rounds=10, verbose_eval=False)
    print(f"xgb.train: best iteration {booster.best_iteration}, valid AUC {booster.best_score:.4f}")

    clf = xgb.XGBClassifier(n_estimators=50, max_depth=3, n_jobs=2)
    clf.fit(X[:1_600], y[:1_600], eval_set=[(X[1_600:], y[1_600:])], verbose=False)
    print(f"XGBClassifier: accuracy {clf.score(X[1_600:], y[1_600:]):.3f}")


if __name__ == "__main__":
    import modelbox_autolog as mbx

    mbx.autolog()
    main()
