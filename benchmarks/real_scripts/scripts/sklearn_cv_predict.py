"""
====================================
Plotting Cross-Validated Predictions
====================================

Source: the scikit-learn repository, examples/model_selection/plot_cv_predict.py.
License: BSD-3-Clause (Authors: The scikit-learn developers).
Edits: the R2 of the cross-validated predictions printed (the original only plots them).

This example shows how to use
:func:`~sklearn.model_selection.cross_val_predict` together with
:class:`~sklearn.metrics.PredictionErrorDisplay` to visualize prediction
errors.
"""

from sklearn.datasets import load_diabetes

X, y = load_diabetes(return_X_y=True)

from sklearn.linear_model import LinearRegression
from sklearn.model_selection import cross_val_predict

lr = LinearRegression()
y_pred = cross_val_predict(lr, X, y, cv=10)

import matplotlib.pyplot as plt

from sklearn.metrics import PredictionErrorDisplay, r2_score

fig, axs = plt.subplots(ncols=2, figsize=(8, 4))
PredictionErrorDisplay.from_predictions(
    y,
    y_pred=y_pred,
    kind="actual_vs_predicted",
    subsample=100,
    ax=axs[0],
    random_state=0,
)
axs[0].set_title("Actual vs. Predicted values")
PredictionErrorDisplay.from_predictions(
    y,
    y_pred=y_pred,
    kind="residual_vs_predicted",
    subsample=100,
    ax=axs[1],
    random_state=0,
)
axs[1].set_title("Residuals vs. Predicted Values")
fig.suptitle("Plotting cross-validated predictions")
plt.tight_layout()
plt.show()
print(f"R2: {r2_score(y, y_pred):.6f}")  # edit
