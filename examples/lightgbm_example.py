"""LightGBM: ``lgb.train`` with early stopping, ``lgb.cv``, then an ``LGBMRegressor``; all recorded."""

from __future__ import annotations

REQUIRES = ("lightgbm", "sklearn")


def main() -> None:
    import lightgbm as lgb
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.standard_normal((2_000, 10))
    y = X[:, 0] + 0.5 * X[:, 1] * X[:, 2] + 0.1 * rng.standard_normal(2_000)
    dtrain = lgb.Dataset(X[:1_600], label=y[:1_600])
    dvalid = lgb.Dataset(X[1_600:], label=y[1_600:], reference=dtrain)

    params = {"objective": "regression", "metric": ["l2", "l1"], "num_leaves": 15, "num_threads": 2, "verbose": -1}
    booster = lgb.train(params, dtrain, 200, valid_sets=[dvalid], valid_names=["valid"],
                        callbacks=[lgb.early_stopping(10, verbose=False)])
    print(f"lgb.train: best iteration {booster.best_iteration}, valid l2 {booster.best_score['valid']['l2']:.4f}")

    results = lgb.cv(params, lgb.Dataset(X, label=y), 30, nfold=3, stratified=False)
    print(f"lgb.cv: final l2 {results['valid l2-mean'][-1]:.4f}")

    reg = lgb.LGBMRegressor(n_estimators=50, num_leaves=15, n_jobs=2, verbose=-1)
    reg.fit(X[:1_600], y[:1_600])
    print(f"LGBMRegressor: R2 {reg.score(X[1_600:], y[1_600:]):.3f}")


if __name__ == "__main__":
    import modelbox_autolog as mbx

    mbx.autolog()
    main()
