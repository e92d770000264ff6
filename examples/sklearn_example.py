"""scikit-learn: a pipeline, a small grid search and a saved model, on tiny synthetic data.

Every fit becomes a run (params, training metrics, the fitted model); the grid search adds its
best candidates as child runs, and ``joblib.dump`` is recorded with lineage to the fitting run.
"""

from __future__ import annotations

import os
import tempfile

REQUIRES = ("sklearn",)


def main() -> None:
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 8)).astype(np.float32)
    y = (X[:, 0] - X[:, 1] + 0.5 * rng.normal(size=400) > 0).astype(int)

    pipeline = make_pipeline(StandardScaler(), LogisticRegression())
    search = GridSearchCV(pipeline, {"logisticregression__C": [0.01, 0.1, 1.0, 10.0]}, cv=3)
    search.fit(X, y)
    print(f"best C: {search.best_params_['logisticregression__C']}, cv accuracy {search.best_score_:.3f}")

    path = os.path.join(tempfile.mkdtemp(prefix="sklearn-example-"), "model.joblib")
    joblib.dump(search.best_estimator_, path)
    print(f"saved {path}")


if __name__ == "__main__":
    import modelbox_autolog as mbx

    mbx.autolog()
    main()
