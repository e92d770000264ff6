"""The standard diagnostic plots of a scikit-learn fit, drawn off the training process.

Classifiers: ``training_confusion_matrix.png``, and for binary (or up to 10 classes, one curve
per class) probabilistic or scoring models ``training_roc_curve.png`` and
``training_precision_recall_curve.png``; regressors: ``training_residuals.png`` (residual against
prediction). The exporter thread predicts, from the model's snapshot, on at most
``MAX_PLOT_ROWS`` evenly spaced training rows (and only if the training data was not changed in
place meanwhile), and computes the confusion matrix and curves (a few ms with scikit-learn, which
is loaded here anyway); the drawing (matplotlib's object API on an Agg canvas, tens of ms a
figure) and the delivery of the PNGs are the detached plot worker's (``_plot_worker``): the
training process waits for neither, not even at exit.

Drawing costs far more than the fit of a small model (a quarter of a second against a few
milliseconds for an SVC on iris), so a process's plots share one budget (``PlotBudget``) and
yield when the background work or the worker falls behind; a fit whose plots were skipped says
so on its run (tag ``plots_skipped`` and a ``plots_not_logged`` event with the reason), never
silently.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .._exporter import background_outlook, current_exporter
from .._records import Event, RunUpdate, new_id
from . import _plot_worker

MAX_CLASSES_CONFUSION = 30
MAX_CLASSES_CURVES = 10
MAX_PLOT_ROWS = 2000  # rows predicted for the plots (every n-th of the metrics' sample)
DPI = 100


# ---------------------------------------------------------------------- drawing (in the plot worker)
def _figure(width: float = 5.0, height: float = 4.0, right: float = 0.96, left_in: float = 0.8,
            bottom_in: float = 0.75) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    # Fixed margins (in inches, so labels fit at any size) instead of tight_layout, which measures
    # every text twice and was a third of the drawing time.
    figure.subplots_adjust(left=left_in / width, bottom=bottom_in / height, right=right, top=1 - 0.45 / height)
    return figure, figure.add_subplot(1, 1, 1)


def _save(figure: Any, path: str) -> None:
    figure.canvas.print_png(path)  # the canvas, not Figure.savefig: never recorded as a user's figure


def draw_confusion(labels: list[str], matrix: np.ndarray, path: str) -> None:
    size = 3.5 + 0.3 * len(labels)
    longest = min(max((len(label) for label in labels), default=1), 24)  # labels are cut at 24 characters
    labels = [label if len(label) <= 24 else label[:23] + "…" for label in labels]
    rotated = len(labels) > 6
    bottom_in = 0.55 + (0.055 * longest if rotated else 0.2)
    figure, ax = _figure(size + 0.07 * longest, size * 0.85 + bottom_in - 0.75, right=0.98,
                         left_in=0.55 + 0.075 * longest, bottom_in=bottom_in)
    image = ax.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=ax)
    ticks = np.arange(len(labels))
    ax.set_xticks(ticks, labels, rotation=45 if rotated else 0, ha="right" if rotated else "center")
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


def classifier_data(y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray | None, classes: Any) -> tuple:
    """(On the exporter thread, where scikit-learn is loaded already: a few ms on at most
    ``MAX_PLOT_ROWS`` rows.) The confusion matrix and the ROC and PR curves of a classifier, so that
    the plot worker only draws (importing scikit-learn took it seconds on a busy machine)."""
    import sklearn

    with sklearn.config_context(skip_parameter_validation=True):  # our own well-formed inputs: a third of the time
        return _classifier_data(y_true, y_pred, scores, classes)


def _classifier_data(y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray | None, classes: Any) -> tuple:
    from sklearn.metrics import (
        auc,
        average_precision_score,
        confusion_matrix,
        precision_recall_curve,
        roc_curve,
    )

    labels = np.unique(np.concatenate([y_true, y_pred]))
    confusion = None
    if len(labels) <= MAX_CLASSES_CONFUSION:
        confusion = ([str(v) for v in labels], confusion_matrix(y_true, y_pred, labels=labels))
    curves: list[tuple] = []
    if scores is None or classes is None:
        return confusion, curves
    classes = np.asarray(classes)
    if scores.shape[1] != len(classes) or len(classes) < 2 or len(classes) > MAX_CLASSES_CURVES:
        return confusion, curves
    binary = len(classes) == 2
    pairs = [(classes[1], scores[:, 1])] if binary else [(c, scores[:, i]) for i, c in enumerate(classes)]
    for label, score in pairs:
        positive = y_true == label
        if positive.all() or not positive.any():
            continue
        fpr, tpr, _ = roc_curve(positive, score)
        precision, recall, _ = precision_recall_curve(positive, score)
        curves.append((None if binary else str(label), fpr, tpr, float(auc(fpr, tpr)), recall, precision,
                       float(average_precision_score(positive, score))))
    return confusion, curves


def classifier_figures(confusion: tuple | None, curves: list[tuple], confusion_path: str, roc_path: str,
                       pr_path: str) -> list[str]:
    """(In the plot worker.) Draws the confusion matrix, and the ROC and PR curves when there are any."""
    written = []
    if confusion is not None:
        draw_confusion(*confusion, confusion_path)
        written.append(confusion_path)
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


def classifier_model_figures(pickled: bytes, X: Any, y_true: np.ndarray, confusion_path: str, roc_path: str,
                             pr_path: str) -> list[str]:
    """(In the plot worker.) From the model's pickle: predict, the plot data, the figures."""
    import pickle

    model = pickle.loads(pickled)
    y_pred = np.asarray(model.predict(X)).reshape(-1)
    classes = getattr(model, "classes_", None)
    data = classifier_data(y_true, y_pred, _scores(model, X), None if classes is None else np.asarray(classes))
    return classifier_figures(*data, confusion_path, roc_path, pr_path)


def regressor_model_figures(pickled: bytes, X: Any, y_true: np.ndarray, path: str) -> list[str]:
    """(In the plot worker.) From the model's pickle: predict, the residuals figure."""
    import pickle

    model = pickle.loads(pickled)
    return regressor_figures(y_true, np.asarray(model.predict(X)), path)


FILES = {"classifier": ["training_confusion_matrix.png", "training_roc_curve.png", "training_precision_recall_curve.png"],
         "regressor": ["training_residuals.png"]}
FILES["classifier_model"], FILES["regressor_model"] = FILES["classifier"], FILES["regressor"]
JOBS = {"classifier": classifier_figures, "regressor": regressor_figures,
        "classifier_model": classifier_model_figures, "regressor_model": regressor_model_figures}


class PlotBudget:
    """How much drawing one process's fits may ask for (see "scikit-learn diagnostic plots" in
    docs/ARCHITECTURE.md).

    A fit's plots are drawn when all of these hold, else skipped with the reason on its run:
    - the background keeps up: at most ``MAX_BEHIND`` background items wait behind this fit's
      (quick fits in a loop outrun even the plot data: their models and metrics come first), and
      at most ``MAX_QUEUED`` of this process's jobs wait for the plot worker;
    - at exit, at least the reserve of the exit budget is left (half of it: the records go first);
      where figures are drawn in process (no worker), the time left must also cover drawing this
      fit's and those of every item still behind it;
    - the drawing credit is not spent: ``credit_s`` seconds (the option ``plot_time_budget_s``,
      default 3 s: about a dozen fits' plots at once), refilled at ``SHARE`` of wall time, so the
      worker draws for at most a tenth of a long-running process's time. ``None`` or ``0`` for the
      option: no credit limit (the other rules still hold).
    """

    MAX_BEHIND = 25
    MAX_QUEUED = 25
    SHARE = 0.1
    EXIT_RESERVE_S = 1.0
    DEFAULT_CREDIT_S = 3.0
    DRAWING_ESTIMATE_S = 0.25  # a job's drawing in the worker (not measured here), charged to the credit

    def __init__(self, credit_s: float | None = DEFAULT_CREDIT_S) -> None:
        self._lock = threading.Lock()
        self.credit_s = credit_s
        self.credit = credit_s or 0.0
        self.at = time.monotonic()
        self.cost = 0.3  # seconds one fit's plots take in process, as last measured (smoothed)
        self.drawn = 0
        self.skipped = 0
        self.exit_budget_s = 10.0  # MODELBOX_SHUTDOWN_TIMEOUT: plots may use its first half at most

    def configure(self, credit_s: float | None, exit_budget_s: float = 10.0) -> None:
        self.exit_budget_s = float(exit_budget_s)
        credit_s = float(credit_s) if credit_s else None
        if credit_s != self.credit_s:
            with self._lock:
                self.credit_s = credit_s
                self.credit = min(self.credit, credit_s) if credit_s else 0.0

    def reason_to_skip(self, in_process: bool) -> str | None:
        """None when this fit's plots may be made now, else why not (on the exporter thread)."""
        outlook = background_outlook()
        behind, left = outlook if outlook is not None else (0, None)
        queued = 0 if in_process else _plot_worker.pending()
        with self._lock:
            now = time.monotonic()
            if self.credit_s:
                self.credit = min(self.credit_s, self.credit + (now - self.at) * self.SHARE)
            self.at = now
            if left is not None:
                needed = self._exit_reserve() + ((behind + 1) * self.cost if in_process else 0.0)
                if left < needed:
                    return (f"the process was exiting: {left:.1f} s left in the exit budget, plots need about "
                            f"{needed:.1f} s ({behind} fit(s) still waiting)")
            elif behind > self.MAX_BEHIND:
                return f"background work fell behind the fits ({behind} items waiting): quick fits outrun drawing"
            if queued >= self.MAX_QUEUED:
                return f"the plot worker fell behind the fits ({queued} fits' plots waiting): quick fits outrun drawing"
            if self.credit_s and self.credit <= 0:
                return (f"the drawing budget ({self.credit_s:g} s, refilled at {self.SHARE:.0%} of wall time) was "
                        f"spent on earlier fits; raise it with autolog(options={{'sklearn': {{'plot_time_budget_s': S}}}})")
            return None

    def _exit_reserve(self) -> float:
        """At exit, the part of the budget plots leave to the records (delivering them waits
        for background work): half the budget, at least EXIT_RESERVE_S."""
        return max(self.EXIT_RESERVE_S, self.exit_budget_s / 2)

    def spent(self, seconds: float, measured: bool) -> None:
        with self._lock:
            self.credit -= seconds
            if measured:
                self.cost = 0.7 * self.cost + 0.3 * seconds
            self.drawn += 1

    def reset(self) -> None:
        self.__init__(self.DEFAULT_CREDIT_S)


budget = PlotBudget()


def wanted(config: Any, estimator: Any, X: Any, y: Any) -> bool:
    """``log_plots`` is on, the fit had targets, and matplotlib is installed."""
    if not (config.log_plots and X is not None and y is not None and hasattr(estimator, "predict") and _have_matplotlib()):
        return False
    budget.configure(config.option("sklearn", "plot_time_budget_s", PlotBudget.DEFAULT_CREDIT_S), config.shutdown_timeout_s)
    return True


_matplotlib_found: list[bool] = []


def _have_matplotlib() -> bool:
    if not _matplotlib_found:
        import importlib.util

        _matplotlib_found.append(importlib.util.find_spec("matplotlib") is not None)
    return _matplotlib_found[0]


def not_logged(run_id: str, reason: str) -> list[Any]:
    """Said on the run: the tag ``plots_skipped`` (searchable) and an event with the reason."""
    return [RunUpdate(run_id, tags={"plots_skipped": "true"}),
            Event(new_id(), run_id, "plots_not_logged", time.time(), None, {"reason": reason})]


def plots_producer(run_id: str, load: Callable[[], Any], pickled: Callable[[], bytes | None], X: Any, y: Any,
                   unchanged: Callable[[], bool]) -> Callable[[], list]:
    """Work for the exporter thread: the fit's plots, handed to the plot worker as a job. A model
    whose pickle is in memory (small) goes as it is, with the row sample: the worker predicts
    and computes the curves too, and this process spends about a millisecond. Otherwise the
    plot data is computed here and the worker only draws. Where no worker can draw for this
    backend, the figures are drawn here, as staged artifacts."""
    def produce() -> list[Any]:
        if y is None:
            return []
        try:
            if not unchanged():
                return []
            exporter = current_exporter()
            uri = exporter.uri if exporter is not None else "memory://"
            journal_dir = exporter.config.journal_dir if exporter is not None else _staging_dir()
            here = _plot_worker.in_process(uri)
            reason = budget.reason_to_skip(here)
            if reason is not None:
                budget.skipped += 1
                return not_logged(run_id, reason)
            started = time.monotonic()
            y_true = np.asarray(y)
            if y_true.ndim > 1 and y_true.shape[1] > 1:
                return []  # multi-output: no standard plot
            y_true = y_true.reshape(-1)
            data = None if here else pickled()
            model = load()  # (already unpickled for the training metrics: shared)
            classifier = _is_classifier(model)
            if not classifier and not np.issubdtype(y_true.dtype, np.number):
                return []
            if data is not None:
                job = ("classifier_model" if classifier else "regressor_model", data, X, y_true)
            else:
                y_pred = np.asarray(model.predict(X))
                if classifier:
                    classes = getattr(model, "classes_", None)
                    job = ("classifier", *classifier_data(y_true, y_pred.reshape(-1), _scores(model, X),
                                                          None if classes is None else np.asarray(classes)))
                else:
                    job = ("regressor", y_true, y_pred)
            if not here:
                try:
                    _plot_worker.submit(uri, journal_dir, run_id, job, FILES[job[0]])
                    budget.spent(time.monotonic() - started + PlotBudget.DRAWING_ESTIMATE_S, measured=False)
                    return []
                except OSError:
                    pass  # the job cannot be written (a full disk): drawn here instead
            records = _plot_worker.draw_records({"journal_dir": journal_dir, "run_id": run_id, "job": job,
                                                 "names": FILES[job[0]], "ids": [new_id() for _ in FILES[job[0]]]})
            budget.spent(time.monotonic() - started, measured=True)
            return records
        except Exception as exc:  # plots are a bonus; say why there are none
            return not_logged(run_id, f"{type(exc).__name__}: {exc}"[:300])

    return produce


def _staging_dir() -> str:
    from .._config import current

    return current().journal_dir
