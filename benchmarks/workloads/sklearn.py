"""scikit-learn: 5 fits of a StandardScaler + LogisticRegression pipeline on 20,000 x 20 float32."""

from __future__ import annotations

DESCRIPTION = "5 fits of StandardScaler + LogisticRegression (Pipeline) on 20,000 x 20 float32, models logged"


def prepare() -> dict:
    import numpy as np
    import sklearn.linear_model  # noqa: F401 - imported before timing, as a script would
    import sklearn.pipeline  # noqa: F401
    import sklearn.preprocessing  # noqa: F401

    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 20)).astype(np.float32)
    y = (X[:, :3].sum(axis=1) + rng.normal(scale=0.5, size=20_000) > 0).astype(np.int64)
    return {"X": X, "y": y}


def train(state: dict) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    for seed in range(5):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0 + seed, max_iter=200))
        model.fit(state["X"], state["y"])
VARIANTS = {"no_plots": {"log_plots": False}}  # the diagnostic plots are drawn off the training thread
