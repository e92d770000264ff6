"""XGBoost autologging on the real library: native ``train`` and the scikit-learn wrappers."""

from __future__ import annotations

import csv
import sys

import numpy as np
import pytest

xgb = pytest.importorskip("xgboost")
joblib = pytest.importorskip("joblib")

import xgboost.core  # noqa: E402
import xgboost.sklearn  # noqa: E402
import xgboost.training  # noqa: E402

import modelbox_autolog as mbx  # noqa: E402


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((160, 4)).astype(np.float32)
    y = (X[:, 0] + 0.3 * X[:, 1] > 0).astype(np.float32)
    return X, y


def _params(**extra):
    return {"objective": "binary:logistic", "nthread": 1, "max_depth": 2, **extra}


def _only_run(client):
    mbx.flush(10)
    runs = client.runs()
    assert len(runs) == 1, runs
    return runs[0]


def _importance_rows(client, run, tmp_path):
    (table,) = [a for a in run.artifacts() if a.name == "feature_importance.csv"]
    path = client.download_artifact(run.id, table.name, tmp_path / "dl")
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def test_train_logs_params_metrics_early_stopping_importance_and_model(autologged, data, tmp_path):
    X, y = data
    dtrain = xgb.DMatrix(X[:120], label=y[:120], feature_names=["a", "b", "c", "d"])
    dvalid = xgb.DMatrix(X[120:], label=y[120:], feature_names=["a", "b", "c", "d"])
    params = _params(eval_metric=["logloss", "error"])
    params_before = dict(params)
    booster = xgb.train(params, dtrain, 200, evals=[(dtrain, "train"), (dvalid, "valid")],
                        early_stopping_rounds=3, verbose_eval=False)
    assert isinstance(booster, xgb.Booster)
    assert params == params_before

    run = _only_run(autologged)
    assert run.status == "finished" and run.name == "xgboost.train"
    assert run.params["max_depth"] == 2 and run.params["num_boost_round"] == 200
    assert run.params["early_stopping_rounds"] == 3
    keys = set(run.metric_keys())
    assert {"train-logloss", "train-error", "valid-logloss", "valid-error"} <= keys
    rounds = booster.num_boosted_rounds()
    assert rounds < 200  # stopped early
    assert [p.step for p in run.metrics("valid-logloss")] == list(range(rounds))
    assert run.metrics("best_iteration")[-1].value == booster.best_iteration
    assert run.metrics("best_score")[-1].value == pytest.approx(booster.best_score)

    rows = _importance_rows(autologged, run, tmp_path)
    assert rows[0] == ["feature", "gain", "weight"]
    assert {r[0] for r in rows[1:]} <= {"a", "b", "c", "d"} and "a" in {r[0] for r in rows[1:]}
    assert [a.kind for a in run.artifacts() if a.name == "feature_importance.csv"] == ["table"]

    (model,) = run.models()
    assert model.framework == "xgboost" and [f.name for f in model.files] == ["model.ubj"]
    loaded = autologged.load_model(model.id)
    assert isinstance(loaded, xgb.Booster)
    np.testing.assert_allclose(loaded.predict(dvalid), booster.predict(dvalid), rtol=1e-6)


def test_json_format_option(store_uri, client, data):
    mbx.autolog(backend=store_uri, capture_console=False, options={"xgboost": {"model_format": "json"}})
    X, y = data
    xgb.train(_params(), xgb.DMatrix(X, label=y), 3)
    (model,) = _only_run(client).models()
    assert [f.name for f in model.files] == ["model.json"]
    assert isinstance(client.load_model(model.id), xgb.Booster)


def test_classifier_fit_is_one_run_with_wrapper_model(autologged, data):
    X, y = data
    callbacks: list = []
    clf = xgb.XGBClassifier(n_estimators=8, max_depth=2, n_jobs=1, callbacks=callbacks)
    assert clf.fit(X, y, eval_set=[(X[:40], y[:40]), (X[40:80], y[40:80])], verbose=False) is clf
    assert callbacks == []

    run = _only_run(autologged)
    assert run.name == "XGBClassifier" and run.status == "finished"
    assert run.params["n_estimators"] == 8
    assert run.params["estimator_class"] == "xgboost.sklearn.XGBClassifier"
    assert {"validation_0-logloss", "validation_1-logloss"} <= set(run.metric_keys())
    assert [p.step for p in run.metrics("validation_1-logloss")] == list(range(8))
    (model,) = run.models()
    assert model.name == "XGBClassifier" and model.metadata["class"] == "xgboost.sklearn.XGBClassifier"
    loaded = autologged.load_model(model.id)
    assert isinstance(loaded, xgb.XGBClassifier)
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), rtol=1e-6)


def test_wrapper_early_stopping_and_nested_super_fit(autologged, data):
    X, y = data
    reg = xgb.XGBRegressor(n_estimators=300, max_depth=2, n_jobs=1, early_stopping_rounds=2)
    reg.fit(X[:120], y[:120], eval_set=[(X[120:], y[120:])], verbose=False)
    forest = xgb.XGBRFClassifier(n_estimators=4, max_depth=2, n_jobs=1)  # its fit calls super().fit
    forest.fit(X, y)
    mbx.flush(10)
    runs = {r.name: r for r in autologged.runs()}
    assert sorted(runs) == ["XGBRFClassifier", "XGBRegressor"]
    assert runs["XGBRegressor"].metrics("best_iteration")[-1].value == reg.best_iteration
    assert len(runs["XGBRFClassifier"].models()) == 1


def test_failing_training_raises_unchanged_and_marks_run_failed(autologged, data):
    X, y = data

    class Boom(Exception):
        pass

    error = Boom("stop")

    class Failing(xgb.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log):
            if epoch == 2:
                raise error
            return False

    user_callbacks = [Failing()]
    with pytest.raises(Boom) as caught:
        xgb.train(_params(), xgb.DMatrix(X, label=y), 10, callbacks=user_callbacks)
    assert caught.value is error
    assert len(user_callbacks) == 1
    run = _only_run(autologged)
    assert run.status == "failed"
    assert run.models() == []


def test_save_and_load_model_are_recorded(autologged, data, tmp_path):
    X, y = data
    dtrain = xgb.DMatrix(X, label=y)
    booster = xgb.train(_params(), dtrain, 3)
    path = tmp_path / "saved.json"
    booster.save_model(str(path))
    with mbx.start_run(name="serving"):
        restored = xgb.Booster()
        restored.load_model(path)
    np.testing.assert_allclose(restored.predict(dtrain), booster.predict(dtrain), rtol=1e-6)
    continued = xgb.train(_params(), dtrain, 2, xgb_model=restored)
    assert continued.num_boosted_rounds() == 5
    mbx.flush(10)

    runs = {r.name: r for r in autologged.runs()}
    trained = [r for r in autologged.runs() if r.name == "xgboost.train"]
    saved = [r for r in trained if r.events("model_saved")]
    assert len(saved) == 1
    (event,) = saved[0].events("model_saved")
    assert event.attrs["path"] == str(path) and event.attrs["bytes"] == path.stat().st_size
    assert "saved.json" in [a.name for a in saved[0].artifacts()]
    assert [(i.kind, i.ref) for i in runs["serving"].inputs()] == [("model", str(path))]
    resumed = [r for r in trained if r.inputs()]
    assert [(i.kind, i.ref) for i in resumed[0].inputs()] == [("model", str(path))]


def test_log_models_false_keeps_metrics_but_no_model(store_uri, client, data):
    mbx.autolog(backend=store_uri, capture_console=False, log_models=False)
    X, y = data
    xgb.train(_params(), xgb.DMatrix(X, label=y), 3, evals=[(xgb.DMatrix(X, label=y), "train")], verbose_eval=False)
    run = _only_run(client)
    assert run.models() == [] and "train-logloss" in run.metric_keys()


def test_joblib_round_trip_of_a_wrapper(autologged, data, tmp_path):
    X, y = data
    clf = xgb.XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1).fit(X, y)
    path = tmp_path / "clf.joblib"
    joblib.dump(clf, path)
    restored = joblib.load(path)
    assert type(restored) is xgb.XGBClassifier
    np.testing.assert_allclose(restored.predict_proba(X), clf.predict_proba(X), rtol=1e-6)
    if "modelbox_autolog.integrations.sklearn" not in sys.modules:
        pytest.skip("the sklearn integration (joblib capture) is not present")
    run = _only_run(autologged)
    assert any(f.name == "clf.joblib" for m in run.models() for f in m.files)


def test_disable_restores_originals_by_identity(store_uri):
    owners = [(xgb, "train"), (xgboost.training, "train"), (xgboost.sklearn, "train"),
              (xgboost.core.Booster, "save_model"), (xgboost.core.Booster, "load_model"),
              (xgboost.sklearn.XGBModel, "fit"), (xgboost.sklearn.XGBClassifier, "fit"),
              (xgboost.sklearn.XGBModel, "save_model")]
    before = [owner.__dict__[attr] for owner, attr in owners]
    mbx.autolog(backend=store_uri, capture_console=False)
    assert all(owner.__dict__[attr] is not orig for (owner, attr), orig in zip(owners, before, strict=True))
    mbx.autolog(disable=True)
    assert all(owner.__dict__[attr] is orig for (owner, attr), orig in zip(owners, before, strict=True))


def test_inside_a_sklearn_pipeline_the_fit_is_a_child_run_without_its_own_model(autologged, data):
    pipeline_module = pytest.importorskip("sklearn.pipeline")
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    if "modelbox_autolog.integrations.sklearn" not in sys.modules:
        pytest.skip("the sklearn integration is not present")
    X, y = data
    pipe = pipeline_module.make_pipeline(preprocessing.StandardScaler(), xgb.XGBClassifier(n_estimators=4, n_jobs=1))
    pipe.fit(X, y, xgbclassifier__eval_set=[(X, y)], xgbclassifier__verbose=False)
    mbx.flush(10)
    runs = {r.name: r for r in autologged.runs()}
    assert sorted(runs) == ["Pipeline", "XGBClassifier"]
    child = runs["XGBClassifier"]
    assert child.parent_run_id == runs["Pipeline"].id
    assert "validation_0-logloss" in child.metric_keys() and child.models() == []


# ---------------------------------------------------------------------- what is recorded is what was trained
def test_positional_train_arguments_are_recorded_as_trained(autologged, data):
    """``xgb.train(params, dtrain, 3, evals)``: rounds and evals by position (evals is keyword-only,
    still accepted by position by XGBoost's deprecation decorator)."""
    import warnings

    X, y = data
    dtrain = xgb.DMatrix(X, label=y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        booster = xgb.train(_params(eta=0.5), dtrain, 3, [(dtrain, "train")], verbose_eval=False)
    assert booster.num_boosted_rounds() == 3
    assert any("evals" in str(w.message) for w in caught)  # XGBoost's own deprecation warning, unchanged
    run = _only_run(autologged)
    assert run.params["num_boost_round"] == 3
    assert (run.params["eta"], run.params["max_depth"], run.params["objective"]) == (0.5, 2, "binary:logistic")
    assert [p.step for p in run.metrics("train-logloss")] == [0, 1, 2]


GBLINEAR_SCRIPT = r"""
import sys
import numpy as np
import modelbox_autolog as mbx
mbx.autolog(backend=sys.argv[1], experiment="gblinear", capture_console=False)
import xgboost as xgb
rng = np.random.default_rng(0)
X = rng.standard_normal((80, 3))
d = xgb.DMatrix(X, label=X[:, 0] * 2.0)
for params in ({"booster": "gblinear"}, [("booster", "gblinear"), ("nthread", 1)]):
    booster = xgb.train(params, d, 4, evals=[(d, "train")], verbose_eval=False)  # params by position
    assert booster.num_boosted_rounds() == 4
assert mbx.flush(30)
print("ok")
"""


def test_gblinear_run_finishes_with_its_model_and_nothing_on_stderr(store_uri, client, tmp_path):
    import os
    import subprocess

    script = tmp_path / "train_gblinear.py"
    script.write_text(GBLINEAR_SCRIPT)
    env = {**os.environ, "MODELBOX_AUTOLOG_TESTING": "0", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, str(script), store_uri], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    assert len(done.stderr.strip().splitlines()) <= 1, done.stderr
    runs = client.runs()
    assert len(runs) == 2
    for run in runs:
        assert run.status == "finished" and run.params["booster"] == "gblinear"
        assert run.params["num_boost_round"] == 4 and len(run.models()) == 1
        assert run.metrics("train-rmse")


def test_a_booster_above_max_model_mb_is_an_event_not_a_copy(store_uri, client, data):
    X, y = data
    mbx.autolog(backend=store_uri, experiment="test", capture_console=False, max_model_mb=0.001)  # ~1 kB
    booster = xgb.train(_params(), xgb.DMatrix(X, label=y), num_boost_round=20)
    assert booster.num_boosted_rounds() == 20
    run = _only_run(client)
    assert run.status == "finished" and run.models() == []
    (event,) = run.events("model_not_logged")
    assert "max_model_mb" in event.attrs["reason"] and event.attrs["bytes"] > 1024


def _held():
    """Our exporter holds background work (model saves, metrics) while a training runs: pretend one does."""
    import contextlib

    from modelbox_autolog import _patching

    @contextlib.contextmanager
    def held():
        with _patching._in_progress_lock:
            _patching._in_progress[0] += 1
        try:
            yield
        finally:
            with _patching._in_progress_lock:
                _patching._in_progress[0] -= 1

    return held()


def test_the_booster_is_saved_off_the_training_thread_and_before_it_changes(autologged, data):
    from modelbox_autolog.integrations import _boosting

    X, y = data
    dtrain = xgb.DMatrix(X, label=y)
    with _held():
        booster = xgb.train(_params(), dtrain, num_boost_round=4)
        assert _boosting._pending_saves.get(booster) is not None  # not saved by the training thread
        booster.update(dtrain, 4)  # the user trains one more round by hand: the run's model is saved first
        assert booster.num_boosted_rounds() == 5
    run = _only_run(autologged)
    (model,) = run.models()
    assert autologged.load_model(model.id).num_boosted_rounds() == 4
    assert _boosting._pending_saves.get(booster) is None


def test_a_refitted_wrapper_keeps_each_runs_model(autologged, data):
    X, y = data
    model = xgb.XGBClassifier(n_estimators=3, n_jobs=1)
    with _held():
        model.fit(X, y)
        model.set_params(n_estimators=6)
        model.fit(X, y)
    mbx.flush(10)
    runs = sorted(autologged.runs(), key=lambda r: r.start_time)
    rounds = [autologged.load_model(r.models()[0].id).get_booster().num_boosted_rounds() for r in runs]
    assert rounds == [3, 6]


def test_cv_is_one_run_with_mean_and_std_per_iteration(autologged, data):
    """``xgb.cv`` (k boosters trained side by side, no ``train`` call) is one run, as ``lgb.cv`` and
    scikit-learn's CV helpers: params and settings, each iteration's mean and std over the folds
    under the names of cv's own result, the best iteration with early stopping; the result is
    unchanged and no model is stored (cv keeps none)."""
    X, y = data
    dtrain = xgb.DMatrix(X, label=y)
    plain = xgb.cv(_params(eta=0.3), dtrain, num_boost_round=6, nfold=3, metrics={"error"}, seed=1,
                   early_stopping_rounds=3, as_pandas=False)
    mbx.autolog(disable=True)
    expected = xgb.cv(_params(eta=0.3), dtrain, num_boost_round=6, nfold=3, metrics={"error"}, seed=1,
                      early_stopping_rounds=3, as_pandas=False)
    assert plain == expected
    run = _only_run(autologged)
    assert run.name == "xgboost.cv" and run.status == "finished" and not run.models()
    assert run.params["eta"] == 0.3 and run.params["cv.nfold"] == 3 and run.params["cv.metrics"] == "error"
    assert run.params["early_stopping_rounds"] == 3 and run.params["num_boost_round"] == 6
    means = [p.value for p in run.metrics("test-error-mean")]
    assert means == pytest.approx(expected["test-error-mean"])
    assert [p.value for p in run.metrics("train-error-std")] == pytest.approx(expected["train-error-std"])
    assert run.metrics("best_iteration")[-1].value == len(expected["test-error-mean"]) - 1
