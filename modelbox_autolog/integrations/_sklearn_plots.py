"""The standard diagnostic plots of a scikit-learn fit, drawn on the exporter thread.

Classifiers: ``training_confusion_matrix.png``, and for binary (or up to 10 classes, one curve
per class) probabilistic or scoring models ``training_roc_curve.png`` and
``training_precision_recall_curve.png``; regressors: ``training_residuals.png`` (residual against
prediction). The exporter thread only predicts, from the model's snapshot, on at most
``MAX_PLOT_ROWS`` evenly spaced training rows (and only if the training data was not changed in
place meanwhile); the curves and the drawing (matplotlib's object API on an Agg canvas, tens of
ms a figure) happen in a separate low-priority process (``_plot_worker``), so neither holds the
training process's GIL between fits.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .._records import Artifact, Event, new_id
from ._plot_worker import draw

MAX_CLASSES_CONFUSION = 30
MAX_CLASSES_CURVES = 10
MAX_PLOT_ROWS = 2000  # rows predicted for the plots (every n-th of the metrics' sample)
DPI = 100


# ---------------------------------------------------------------------- drawing (in the plot worker)
def _figure(width: float = 5.0, height: float = 4.0) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot(1, 1, 1)


def _save(figure: Any, path: str) -> None:
    figure.tight_layout()
    figure.canvas.print_png(path)  # the canvas, not Figure.savefig: never recorded as a user's figure


def draw_confusion(labels: list[str], matrix: np.ndarray, path: str) -> None:
    size = 3.5 + 0.3 * len(labels)
    figure, ax = _figure(size, size * 0.85)
    image = ax.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=ax)
    ticks = np.arange(len(labels))
    ax.set_xticks(ticks, labels, rotation=45 if len(labels) > 6 else 0)
    ax.set_yticks(ticks, labels)
    threshold = matrix.max() / 2.0 if matrix.size else 0
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                    color="white" if matrix[i, j] > threshold else "black", fontsize=8)
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    ax.set_title("Confusion matrix (training data)")
    _save(figure, path)


def draw_curves(curves: list[tuple], roc_path: str, pr_path: str) -> None:
    roc_figure, roc_ax = _figure()
    pr_figure, pr_ax = _figure()
    for label, fpr, tpr, roc_auc, recall, precision, average_precision in curves:
        prefix = "" if label is None else f"class {label}: "
        roc_ax.plot(fpr, tpr, label=f"{prefix}AUC = {roc_auc:.3f}")
        pr_ax.plot(recall, precision, label=f"{prefix}AP = {average_precision:.3f}")
    roc_ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    roc_ax.set_xlabel("false positive rate")
    roc_ax.set_ylabel("true positive rate")
    roc_ax.set_title("ROC curve (training data)")
    roc_ax.legend(loc="lower right", fontsize=8)
    pr_ax.set_xlabel("recall")
    pr_ax.set_ylabel("precision")
    pr_ax.set_title("Precision-recall curve (training data)")
    pr_ax.legend(loc="lower left", fontsize=8)
    _save(roc_figure, roc_path)
    _save(pr_figure, pr_path)


def draw_residuals(predicted: np.ndarray, residual: np.ndarray, path: str) -> None:
    figure, ax = _figure()
    ax.scatter(predicted, residual, s=8, alpha=0.5)
    ax.axhline(0.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("predicted value")
    ax.set_ylabel("residual (true - predicted)")
    ax.set_title("Residuals (training data)")
    _save(figure, path)




# ---------------------------------------------------------------------- the data (exporter thread)
def _is_classifier(model: Any) -> bool:
    from sklearn.base import is_classifier

    try:
        return bool(is_classifier(model))
    except Exception:
        return getattr(model, "_estimator_type", None) == "classifier"


def _scores(model: Any, X: Any) -> np.ndarray | None:
    """Per-class scores: predict_proba, else decision_function (as columns per class)."""
    for method in ("predict_proba", "decision_function"):
        fn = getattr(model, method, None)
        if fn is None:
            continue
        try:
            scores = np.asarray(fn(X), dtype=float)
        except Exception:
            continue
        if scores.ndim == 1:
            scores = np.column_stack([-scores, scores])
        return scores
    return None


def classifier_figures(y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray | None, classes: Any,
                       confusion_path: str, roc_path: str, pr_path: str) -> list[str]:
    """(In the plot worker.) The confusion matrix, and the ROC and PR curves when there are scores."""
    from sklearn.metrics import (
        auc,
        average_precision_score,
        confusion_matrix,
        precision_recall_curve,
        roc_curve,
    )

    written = []
    labels = np.unique(np.concatenate([y_true, y_pred]))
    if len(labels) <= MAX_CLASSES_CONFUSION:
        draw_confusion([str(v) for v in labels], confusion_matrix(y_true, y_pred, labels=labels), confusion_path)
        written.append(confusion_path)
    if scores is None or classes is None:
        return written
    classes = np.asarray(classes)
    if scores.shape[1] != len(classes) or len(classes) < 2 or len(classes) > MAX_CLASSES_CURVES:
        return written
    binary = len(classes) == 2
    pairs = [(classes[1], scores[:, 1])] if binary else [(c, scores[:, i]) for i, c in enumerate(classes)]
    curves = []
    for label, score in pairs:
        positive = y_true == label
        if positive.all() or not positive.any():
            continue
        fpr, tpr, _ = roc_curve(positive, score)
        precision, recall, _ = precision_recall_curve(positive, score)
        curves.append((None if binary else str(label), fpr, tpr, float(auc(fpr, tpr)), recall, precision,
                       float(average_precision_score(positive, score))))
    if curves:
        draw_curves(curves, roc_path, pr_path)
        written += [roc_path, pr_path]
    return written


def regressor_figures(y_true: np.ndarray, y_pred: np.ndarray, path: str) -> list[str]:
    """(In the plot worker.) Residual against prediction."""
    y_true = y_true.reshape(len(y_true), -1)[:, 0].astype(float)
    y_pred = y_pred.reshape(len(y_pred), -1)[:, 0].astype(float)
    draw_residuals(y_pred, y_true - y_pred, path)
    return [path]


FILES = {"classifier": ["training_confusion_matrix.png", "training_roc_curve.png", "training_precision_recall_curve.png"],
         "regressor": ["training_residuals.png"]}
JOBS = {"classifier": classifier_figures, "regressor": regressor_figures}


def wanted(config: Any, estimator: Any, X: Any, y: Any) -> bool:
    """``log_plots`` is on, the fit had targets, and matplotlib is installed."""
    return bool(config.log_plots) and X is not None and y is not None and hasattr(estimator, "predict") and _have_matplotlib()


_matplotlib_found: list[bool] = []


def _have_matplotlib() -> bool:
    if not _matplotlib_found:
        import importlib.util

        _matplotlib_found.append(importlib.util.find_spec("matplotlib") is not None)
    return _matplotlib_found[0]


def plots_producer(run_id: str, load: Callable[[], Any], X: Any, y: Any, unchanged: Callable[[], bool]) -> Callable[[], list]:
    """Work for the exporter thread: the fit's diagnostic plots, as staged artifacts."""
    def produce() -> list[Any]:
        if y is None:
            return []
        try:
            if not unchanged():
                return []
            model = load()
            y_true = np.asarray(y)
            if y_true.ndim > 1 and y_true.shape[1] > 1:
                return []  # multi-output: no standard plot
            y_true = y_true.reshape(-1)
            y_pred = np.asarray(model.predict(X))
            if _is_classifier(model):
                classes = getattr(model, "classes_", None)
                job = ("classifier", y_true, y_pred.reshape(-1), _scores(model, X), None if classes is None else np.asarray(classes))
            elif np.issubdtype(y_true.dtype, np.number):
                job = ("regressor", y_true, y_pred)
            else:
                return []
            folder = tempfile.mkdtemp(prefix="modelbox-plot-")
            written = draw(job, [os.path.join(folder, name) for name in FILES[job[0]]])
            return [Artifact(new_id(), run_id, os.path.basename(p), p, "plot", True) for p in written]
        except Exception as exc:  # plots are a bonus; say why there are none
            return [Event(new_id(), run_id, "plots_not_logged", time.time(), None, {"reason": f"{type(exc).__name__}: {exc}"[:300]})]

    return produce
