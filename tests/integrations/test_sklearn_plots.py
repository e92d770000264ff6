"""scikit-learn's diagnostic plots (log_plots=True): real estimators, drawn off the training thread."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

import modelbox_autolog as mbx  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _plots(client):
    assert mbx.flush(60, plots=True)  # the plot worker's artifacts too
    (run,) = client.runs()
    return run, {a.name: a for a in run.artifacts() if a.kind == "plot"}


def test_binary_classifier_plots(autologged, tmp_path):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] + 0.5 * rng.normal(size=200) > 0).astype(int)
    LogisticRegression().fit(X, y)
    run, plots = _plots(autologged)
    assert set(plots) == {"training_confusion_matrix.png", "training_roc_curve.png", "training_precision_recall_curve.png"}
    for name in plots:
        with open(autologged.download_artifact(run.id, name, tmp_path / "dl"), "rb") as handle:
            assert handle.read(8) == PNG_MAGIC


def test_multiclass_without_probabilities_and_regressor(autologged):
    from sklearn.linear_model import Ridge
    from sklearn.svm import LinearSVC

    rng = np.random.default_rng(1)
    X = rng.normal(size=(150, 4))
    y = np.digitize(X[:, 0], [-0.5, 0.5])  # three classes
    LinearSVC().fit(X, y)  # decision_function only: curves from its scores
    run, plots = _plots(autologged)
    assert set(plots) == {"training_confusion_matrix.png", "training_roc_curve.png", "training_precision_recall_curve.png"}

    Ridge().fit(X, X @ np.array([1.0, 2.0, 0.0, -1.0]))
    assert mbx.flush(60, plots=True)
    ridge = next(r for r in autologged.runs() if r.name == "Ridge")
    assert {a.name for a in ridge.artifacts() if a.kind == "plot"} == {"training_residuals.png"}


def test_log_plots_false_and_unsupervised(store_uri, client):
    from sklearn.cluster import KMeans
    from sklearn.linear_model import LogisticRegression

    mbx.autolog(backend=store_uri, capture_console=False, log_plots=False)
    X = np.random.default_rng(2).normal(size=(60, 2))
    LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    mbx.autolog(backend=store_uri, capture_console=False, log_plots=True)
    KMeans(n_clusters=2, n_init=1).fit(X)  # no targets: no plots
    assert mbx.flush(60, plots=True)
    assert all(not [a for a in r.artifacts() if a.kind == "plot"] for r in client.runs())


def test_plots_are_drawn_and_delivered_by_the_plot_worker_process(autologged):
    """The training process neither draws nor waits: a plain flush() returns with the run's model
    stored while its plots are a job for the worker, which draws and stores them itself."""
    from sklearn.linear_model import LogisticRegression

    from modelbox_autolog.integrations import _plot_worker

    X = np.random.default_rng(3).normal(size=(80, 2))
    LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    assert mbx.flush(20)  # the records: not the plots
    (run,) = autologged.runs()
    assert run.models()
    assert _plot_worker.pending() == 1 and _plot_worker._parent.proc is None  # not started yet: the job waits
    run, plots = _plots(autologged)
    assert len(plots) == 3
    worker = _plot_worker._parent.proc
    assert not _plot_worker._parent.failed and worker is not None and worker.pid != os.getpid()


def test_a_spent_drawing_budget_skips_plots_and_says_so_on_the_run(store_uri, client):
    """Drawing costs far more than a small fit: once the process's drawing budget is spent, a fit
    keeps its model and metrics, and its run carries the tag plots_skipped and the reason."""
    from sklearn.linear_model import LogisticRegression

    mbx.autolog(backend=store_uri, capture_console=False, options={"sklearn": {"plot_time_budget_s": 0.001}})
    X = np.random.default_rng(4).normal(size=(80, 2))
    y = (X[:, 0] > 0).astype(int)
    for _ in range(2):
        LogisticRegression().fit(X, y)
        assert mbx.flush(60)  # one at a time: the background keeps up, only the budget decides
    assert mbx.flush(60, plots=True)
    first, second = sorted(client.runs(), key=lambda r: r.start_time)
    assert len([a for a in first.artifacts() if a.kind == "plot"]) == 3 and "plots_skipped" not in first.tags
    assert not [a for a in second.artifacts() if a.kind == "plot"] and second.tags["plots_skipped"] == "true"
    (event,) = second.events("plots_not_logged")
    assert "drawing budget" in event.attrs["reason"] and "plot_time_budget_s" in event.attrs["reason"]
    assert len(second.models()) == 1 and second.metric_keys()  # the model and metrics never wait for plots


def test_a_job_left_by_a_dead_process_is_drawn_by_the_next_worker(autologged):
    """Nothing lost: a plot job is a file until its artifacts are stored; one whose process died
    before any worker drew it (here: forgotten before the worker started) is drawn by the next
    worker that draws for the same backend."""
    from sklearn.linear_model import LogisticRegression

    from modelbox_autolog.integrations import _plot_worker

    X = np.random.default_rng(5).normal(size=(80, 2))
    y = (X[:, 0] > 0).astype(int)
    LogisticRegression().fit(X, y)
    assert mbx.flush(20) and _plot_worker.pending() == 1
    (orphan,) = _plot_worker._parent.submitted
    _plot_worker.detach()  # the job stays on disk, nobody's
    LogisticRegression(C=0.5).fit(X, y)
    assert mbx.flush(60, plots=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        counts = [len([a for a in r.artifacts() if a.kind == "plot"]) for r in autologged.runs()]
        if counts == [3, 3]:
            break
        time.sleep(0.2)
    assert counts == [3, 3]
    while os.path.exists(orphan) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(orphan)
