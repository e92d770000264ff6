"""Stands for LightGBM's examples/regression/regression.{train,test} (tab-separated, label first,
then 28 features; 7,000 and 500 rows), which ship in LightGBM's source tree, not in its wheel.
Seeded, with a label that depends on the features, so that boosting has something to learn."""
import numpy as np
import pandas as pd


def frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 28))
    y = ((X[:, 0] + 0.5 * X[:, 1] - X[:, 2] * X[:, 3] + rng.normal(scale=0.5, size=rows)) > 0).astype(int)
    return pd.concat([pd.DataFrame({0: y}), pd.DataFrame(X, columns=range(1, 29))], axis=1)
