"""scikit-learn autologging on real estimators, tiny data, a real SQLite store."""

from __future__ import annotations

import gc
import hashlib
import inspect
import pickle
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import joblib
import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegression, SGDClassifier
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._metadata_requests import _MetadataRequester

import modelbox_autolog as mbx
from modelbox_autolog import _patching


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4)).astype(np.float32)
    y = (X[:, 0] + 0.3 * rng.normal(size=60) > 0).astype(int)
    return X, y


def only_run(client):
    mbx.flush(10)
    runs = client.runs()
    assert len(runs) == 1, [r.name for r in runs]
    return runs[0]


def last_values(run):
    return {key: run.metrics(key)[-1].value for key in run.metric_keys()}


def test_classifier_params_data_metrics_event_and_model(autologged, data):
    X, y = data
    model = LogisticRegression(C=0.5)
    assert model.fit(X, y) is model
    run = only_run(autologged)
    assert run.name == "LogisticRegression" and run.status == "finished"
    assert run.tags["framework"] == "sklearn"
    assert run.params["C"] == 0.5
    assert run.params["estimator_class"] == "sklearn.linear_model._logistic.LogisticRegression"
    assert run.params["dataset.shape"] == [60, 4] and run.params["dataset.dtype"] == "float32"
    metrics = last_values(run)
    assert metrics["training_accuracy_score"] == pytest.approx(model.score(X, y))
    assert 0.5 <= metrics["training_roc_auc"] <= 1.0
    assert {"training_f1_score", "training_log_loss", "n_iter_"} <= set(metrics)
    (fit,) = run.events("fit")
    assert fit.duration_s > 0 and fit.attrs["rows"] == 60
    (dataset,) = [i for i in run.inputs() if i.kind == "dataset"]
    assert dataset.attrs["fingerprint"] == run.params["dataset.fingerprint"]
    (logged,) = run.models()
    assert logged.framework == "sklearn" and logged.name == "LogisticRegression"
    assert logged.metadata["sklearn_version"] and logged.datasets == [dataset.ref]


def test_regressor_metrics(autologged, data):
    X, _ = data
    target = X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1
    model = LinearRegression().fit(X, target)
    metrics = last_values(only_run(autologged))
    assert metrics["training_r2_score"] == pytest.approx(model.score(X, target), abs=1e-6)
    assert metrics["training_mean_squared_error"] == pytest.approx(0.0, abs=1e-6)
    assert {"training_mean_absolute_error", "training_root_mean_squared_error"} <= set(metrics)


def test_clusterer_logs_inertia_and_score(autologged, data):
    X, _ = data
    model = KMeans(n_clusters=2, n_init=1, random_state=0).fit(X)
    run = only_run(autologged)
    assert run.name == "KMeans" and run.params["n_clusters"] == 2
    metrics = last_values(run)
    assert metrics["inertia_"] == pytest.approx(model.inertia_)
    assert metrics["training_score"] == pytest.approx(model.score(X), rel=1e-4)


def test_transformer_fit_transform_is_one_run(autologged, data):
    X, _ = data
    out = PCA(n_components=2).fit_transform(X)
    assert out.shape == (60, 2)
    run = only_run(autologged)
    assert run.name == "PCA"
    assert [e.attrs["method"] for e in run.events("fit")] == ["fit_transform"]


def test_pipeline_is_one_run(autologged, data):
    X, y = data
    pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    run = only_run(autologged)
    assert run.name == "Pipeline"
    assert run.params["logisticregression__C"] == 1.0
    assert run.params["steps"] == [["standardscaler", "StandardScaler"], ["logisticregression", "LogisticRegression"]]
    assert "logisticregression.n_iter_" in run.metric_keys()
    assert last_values(run)["training_accuracy_score"] == pytest.approx(pipe.score(X, y))
    assert len(run.events("fit")) == 1 and len(run.models()) == 1


def test_grid_search_parent_with_capped_children(store_uri, client, data):
    mbx.autolog(backend=store_uri, experiment="test", capture_console=False, options={"sklearn": {"max_tuning_runs": 2}})
    X, y = data
    search = GridSearchCV(LogisticRegression(), {"C": [0.01, 0.1, 1.0, 10.0]}, cv=2).fit(X, y)
    mbx.flush(10)
    runs = client.runs()
    (parent,) = [r for r in runs if r.parent_run_id is None]
    children = [r for r in runs if r.parent_run_id == parent.id]
    assert len(runs) == 3 and len(children) == 2
    assert parent.name == "GridSearchCV"
    assert parent.params["best_params.C"] == search.best_params_["C"]
    assert last_values(parent)["best_cv_score"] == pytest.approx(search.best_score_)
    for child in children:  # the best candidates (ties share a rank)
        assert last_values(child)["rank_test_score"] <= 2
        assert child.params["C"] in search.param_grid["C"]
    assert max(last_values(c)["mean_test_score"] for c in children) == pytest.approx(search.best_score_)
    (table,) = [a for a in parent.artifacts() if a.name == "cv_results.csv"]
    assert table.kind == "table"
    assert len(parent.models()) == 1


def test_grid_search_in_worker_threads_makes_no_stray_runs(autologged, data):
    X, y = data
    with joblib.parallel_backend("threading", n_jobs=2):
        GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=2, n_jobs=2).fit(X, y)
    mbx.flush(10)
    runs = autologged.runs()
    (parent,) = [r for r in runs if r.parent_run_id is None]
    assert parent.name == "GridSearchCV"
    assert all(r.parent_run_id == parent.id for r in runs if r is not parent)


class Boom(BaseEstimator):
    """A third-party estimator, defined after sklearn was patched (found by the subclass hook)."""

    error = RuntimeError("bad data")

    def __init__(self, depth=3):
        self.depth = depth

    def fit(self, X, y=None):
        raise self.error


def test_fit_that_raises_passes_through_and_fails_the_run(autologged, data):
    X, y = data
    with pytest.raises(RuntimeError) as caught:
        Boom(depth=5).fit(X, y)
    assert caught.value is Boom.error
    run = only_run(autologged)
    assert run.name == "Boom" and run.status == "failed" and run.params["depth"] == 5
    (fit,) = run.events("fit")
    assert "bad data" in fit.attrs["error"]


def test_disable_restores_originals_by_identity(store_uri, data):
    import sklearn.base

    originals = {
        "fit": LogisticRegression.__dict__["fit"],
        "fit_transform": TransformerMixin.__dict__["fit_transform"],
        "init_subclass": _MetadataRequester.__dict__["__init_subclass__"],
        "dump": joblib.dump,
        "load": joblib.load,
    }
    mbx.autolog(backend=store_uri, capture_console=False)
    assert LogisticRegression.__dict__["fit"] is not originals["fit"]
    assert joblib.dump is not originals["dump"]
    assert "__init__" in ConvergenceWarning.__dict__

    class Late(sklearn.base.BaseEstimator):
        def fit(self, X, y=None):
            return self

    late_fit = Late.__dict__["fit"]
    assert _patching.is_patched(Late, "fit")
    mbx.autolog(disable=True)
    assert LogisticRegression.__dict__["fit"] is originals["fit"]
    assert TransformerMixin.__dict__["fit_transform"] is originals["fit_transform"]
    assert _MetadataRequester.__dict__["__init_subclass__"] is originals["init_subclass"]
    assert joblib.dump is originals["dump"] and joblib.load is originals["load"]
    assert "__init__" not in ConvergenceWarning.__dict__
    assert Late.__dict__["fit"] is not late_fit and not _patching.patches("sklearn")


class Outer(ClassifierMixin, BaseEstimator):
    """A custom estimator whose fit fits another estimator: one run, named after the outer one."""

    def fit(self, X, y):
        self.inner_ = LogisticRegression().fit(X, y)
        self.classes_ = self.inner_.classes_
        return self

    def predict(self, X):
        return self.inner_.predict(X)


def test_nested_fit_is_logged_once(autologged, data):
    X, y = data
    Outer().fit(X, y)
    run = only_run(autologged)
    assert run.name == "Outer" and len(run.events("fit")) == 1 and len(run.models()) == 1


def test_joblib_dump_and_load_lineage(autologged, data, tmp_path):
    X, y = data
    model = LogisticRegression().fit(X, y)
    path = tmp_path / "clf.joblib"
    joblib.dump(model, path)
    mbx.flush(10)
    (fit_run,) = autologged.runs()
    saved = [m for m in fit_run.models() if m.metadata.get("saved_by") == "joblib.dump"]
    assert len(saved) == 1 and saved[0].metadata["path"] == str(path)
    assert saved[0].files[0].sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    with mbx.start_run(name="inference") as run:
        loaded = joblib.load(path)
    assert (loaded.predict(X) == model.predict(X)).all()
    mbx.flush(10)
    (model_input,) = [i for i in autologged.run(run.id).inputs() if i.kind == "model"]
    assert model_input.ref == str(path)
    assert model_input.attrs["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_dump_of_a_search_best_estimator_traces_back_to_the_search_run(autologged, data, tmp_path):
    X, y = data
    search = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression()), {"logisticregression__C": [0.1, 1.0]}, cv=2)
    search.fit(X, y)
    joblib.dump(search.best_estimator_, tmp_path / "best.joblib")
    mbx.flush(10)
    (parent,) = [r for r in autologged.runs() if r.parent_run_id is None]
    assert sorted(m.name for m in parent.models()) == ["GridSearchCV", "Pipeline"]


def test_concurrent_fits_in_threads_are_separate_runs(autologged, data):
    X, y = data
    barrier = threading.Barrier(4)

    def fit(c):
        barrier.wait()
        return LogisticRegression(C=c).fit(X, y)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(fit, [0.1, 0.2, 0.3, 0.4]))
    mbx.flush(10)
    runs = autologged.runs()
    assert sorted(r.params["C"] for r in runs) == [0.1, 0.2, 0.3, 0.4]
    for run in runs:
        assert run.parent_run_id is None and run.status == "finished"
        assert len(run.events("fit")) == 1 and len(run.models()) == 1


def test_client_load_model_returns_a_working_estimator(autologged, data):
    X, y = data
    pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    (logged,) = only_run(autologged).models()
    restored = autologged.load_model(logged.id)
    assert (restored.predict(X) == pipe.predict(X)).all()


def test_clone_pickle_isinstance_signature_unchanged(data):
    X, y = data
    signature = inspect.signature(LogisticRegression.fit)
    mbx.autolog(backend="memory://", capture_console=False)
    model = LogisticRegression(C=2.0).fit(X, y)
    assert inspect.signature(LogisticRegression.fit) == signature
    assert isinstance(model, LogisticRegression) and isinstance(model, BaseEstimator)
    assert clone(model).get_params() == model.get_params()
    restored = pickle.loads(pickle.dumps(model))
    assert type(restored) is LogisticRegression and (restored.predict(X) == model.predict(X)).all()
    assert hasattr(make_pipeline(StandardScaler()), "fit_transform")
    assert not hasattr(make_pipeline(LogisticRegression()), "fit_transform")  # available_if still works


def test_convergence_warning_recorded_even_when_ignored(autologged, data):
    X, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        LogisticRegression(max_iter=1).fit(X, y)
    run = only_run(autologged)
    (warning,) = run.events("convergence_warning")
    assert "failed to converge" in warning.attrs["message"]
    assert run.tags["converged"] == "false" and last_values(run)["n_iter_"] == 1


def test_partial_fit_calls_share_one_run(autologged, data):
    X, y = data
    model = SGDClassifier(random_state=0)
    for start in (0, 20, 40):
        model.partial_fit(X[start:start + 20], y[start:start + 20], classes=[0, 1])
    run = only_run(autologged)
    assert run.status == "running" and run.tags["method"] == "partial_fit"
    assert [p.value for p in run.metrics("partial_fit_rows")] == [20, 20, 20]
    del model
    gc.collect()
    assert only_run(autologged).status == "finished"


def test_xgboost_wrapper_left_to_its_integration_but_dump_captured(store_uri, client, data, tmp_path):
    xgboost = pytest.importorskip("xgboost")
    mbx.autolog(frameworks=["sklearn"], backend=store_uri, experiment="test", capture_console=False)
    X, y = data
    assert not _patching.is_patched(xgboost.XGBClassifier, "fit")
    model = xgboost.XGBClassifier(n_estimators=2, max_depth=2).fit(X, y)
    mbx.flush(10)
    assert client.runs() == []
    joblib.dump(model, tmp_path / "xgb.joblib")
    (saved,) = only_run(client).models()
    assert saved.metadata["estimator_class"] == "xgboost.sklearn.XGBClassifier"


def test_sparse_and_dataframe_inputs(autologged, data):
    scipy_sparse = pytest.importorskip("scipy.sparse")
    pandas = pytest.importorskip("pandas")
    X, y = data
    LogisticRegression().fit(scipy_sparse.coo_matrix(X), y)
    LogisticRegression().fit(pandas.DataFrame(X, columns=list("abcd")), y)
    mbx.flush(10)
    runs = autologged.runs()
    assert len(runs) == 2 and all(r.params["dataset.shape"] == [60, 4] for r in runs)
    assert all("training_accuracy_score" in r.metric_keys() for r in runs)


def test_param_names_are_cached_per_class_and_restored_on_disable(store_uri):
    from sklearn.base import BaseEstimator
    from sklearn.linear_model import Ridge

    original = BaseEstimator.__dict__["_get_param_names"]
    plain = Ridge(alpha=0.5).get_params(deep=True)
    mbx.autolog(backend=store_uri, capture_console=False)
    assert BaseEstimator.__dict__["_get_param_names"] is not original
    assert Ridge(alpha=0.5).get_params(deep=True) == plain
    names = Ridge._get_param_names()
    names.append("mutated by the caller")
    assert "mutated by the caller" not in Ridge._get_param_names()

    class Custom(BaseEstimator):
        def __init__(self, a=1):
            self.a = a

    assert Custom().get_params() == {"a": 1}

    def other_init(self, a=1, b=2):
        self.a, self.b = a, b

    Custom.__init__ = other_init  # a replaced __init__ is read again
    assert Custom().get_params() == {"a": 1, "b": 2}
    mbx.autolog(disable=True)
    assert BaseEstimator.__dict__["_get_param_names"] is original


def _model_of(client, run):
    [model] = run.models()
    return client.load_model(model.id)


def test_refitting_one_estimator_keeps_each_runs_model(autologged, data):
    """The snapshot of a fit is taken before the next fit of the same object changes it,
    with the hyperparameters it was fitted with even when they were reassigned meanwhile."""
    X, y = data
    model = LogisticRegression()
    fitted = {}
    for C in (0.01, 100.0):
        model.C = C  # the notebook way: reassign, refit
        model.fit(X, y)
        fitted[C] = model.coef_.copy()
    mbx.flush(10)
    runs = sorted(autologged.runs(), key=lambda r: r.start_time)
    assert [r.params["C"] for r in runs] == [0.01, 100.0]
    for run, C in zip(runs, (0.01, 100.0), strict=True):
        restored = _model_of(autologged, run)
        assert restored.C == C
        np.testing.assert_allclose(restored.coef_, fitted[C])
        assert run.metrics("n_iter_")[-1].value >= 1


def test_hyperparameters_changed_after_fit_are_not_in_the_model(autologged, data):
    X, y = data
    model = LogisticRegression(C=0.5).fit(X, y)
    model.C = 7.0  # before the exporter took the snapshot
    model.set_params(max_iter=3)
    mbx.flush(10)
    restored = _model_of(autologged, only_run(autologged))
    assert (restored.C, restored.max_iter) == (0.5, 100)
    np.testing.assert_allclose(restored.coef_, model.coef_)
    assert (model.C, model.max_iter) == (7.0, 3)  # the user's estimator is never touched


def test_refitting_a_pipeline_step_alone_keeps_the_pipelines_model(autologged, data):
    X, y = data
    pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    before = pipe.predict_proba(X)
    pipe.steps[1][1].fit(X[:30] * 3, 1 - y[:30])  # the step, refitted on its own
    mbx.flush(10)
    runs = {r.name: r for r in autologged.runs()}
    np.testing.assert_allclose(_model_of(autologged, runs["Pipeline"]).predict_proba(X), before)


def test_a_replaced_sub_estimator_is_reported_not_saved_wrong(autologged, data):
    X, y = data
    pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    pipe.steps[1] = ("logisticregression", SGDClassifier())
    run = only_run(autologged)
    assert run.models() == []
    [event] = run.events("model_not_logged")
    assert "replaced" in event.attrs["reason"]


def test_no_copy_of_the_model_is_kept_once_stored(autologged, data):
    from modelbox_autolog.integrations import sklearn as sk

    X, y = data
    model = LogisticRegression().fit(X, y)
    assert only_run(autologged).models()
    snapshot = sk._pending.get(model)
    assert snapshot is not None and not snapshot.pending
    assert not snapshot.taken and snapshot._model is None  # the file is the store's now, the copy dropped
