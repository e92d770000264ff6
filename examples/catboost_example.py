"""CatBoost: a ``CatBoostClassifier`` with a categorical feature and early stopping; recorded."""

from __future__ import annotations

REQUIRES = ("catboost",)


def main() -> None:
    import catboost
    import numpy as np

    rng = np.random.default_rng(0)
    numeric = rng.standard_normal((2_000, 5))
    colour = rng.choice(["red", "green", "blue"], size=2_000)
    y = ((numeric[:, 0] + 0.5 * rng.standard_normal(2_000) > 0) ^ (colour == "red")).astype(int)
    X = [[*row, c] for row, c in zip(numeric.tolist(), colour.tolist(), strict=True)]

    model = catboost.CatBoostClassifier(iterations=200, depth=4, eval_metric="AUC", thread_count=2,
                                        verbose=False, allow_writing_files=False)
    model.fit(X[:1_600], y[:1_600], cat_features=[5], eval_set=(X[1_600:], y[1_600:]), early_stopping_rounds=10)
    print(f"CatBoostClassifier: best iteration {model.get_best_iteration()}, "
          f"valid AUC {model.get_best_score()['validation']['AUC']:.3f}")


if __name__ == "__main__":
    import modelbox_autolog as mbx

    mbx.autolog()
    main()
