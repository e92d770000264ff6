"""LightGBM autologging on the real library: ``train``, ``cv`` and the scikit-learn wrappers."""

from __future__ import annotations

import csv
import sys

import numpy as np
import pytest

lgb = pytest.importorskip("lightgbm")
joblib = pytest.importorskip("joblib")

import lightgbm.basic  # noqa: E402
import lightgbm.engine  # noqa: E402
import lightgbm.sklearn  # noqa: E402

import modelbox_autolog as mbx  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:The argument 'eval_set' is deprecated")

PARAMS = {"objective": "binary", "num_threads": 1, "verbose": -1, "num_leaves": 4, "min_data_in_leaf": 5}


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((160, 4))
    y = (X[:, 0] + 0.3 * X[:, 1] > 0).astype(int)
    return X, y


def _only_run(client):
    mbx.flush(10)
    runs = client.runs()
    assert len(runs) == 1, runs
    return runs[0]


def test_train_logs_metrics_early_stopping_importance_and_model(autologged, data, tmp_path):
    X, y = data
    dtrain = lgb.Dataset(X[:120], label=y[:120], feature_name=["a", "b", "c", "d"])
    dvalid = lgb.Dataset(X[120:], label=y[120:], reference=dtrain)
    params = {**PARAMS, "metric": ["binary_logloss", "auc"]}
    params_before = dict(params)
    callbacks = [lgb.early_stopping(3, verbose=False)]
    booster = lgb.train(params, dtrain, 300, valid_sets=[dtrain, dvalid], valid_names=["train", "valid"],
                        callbacks=callbacks)
    assert isinstance(booster, lgb.Booster) and isinstance(lgb.Booster, type)
    assert params == params_before and len(callbacks) == 1

    run = _only_run(autologged)
    assert run.name == "lightgbm.train" and run.status == "finished"
    assert run.params["num_leaves"] == 4 and run.params["num_boost_round"] == 300
    assert {"train-binary_logloss", "train-auc", "valid-binary_logloss", "valid-auc"} <= set(run.metric_keys())
    assert 0 < booster.best_iteration < 300
    steps = [p.step for p in run.metrics("valid-auc")]
    assert steps == list(range(len(steps))) and len(steps) == booster.best_iteration + 3
    assert run.metrics("best_iteration")[-1].value == booster.best_iteration
    assert run.metrics("best_score.valid-auc")[-1].value == pytest.approx(booster.best_score["valid"]["auc"])

    (table,) = [a for a in run.artifacts() if a.name == "feature_importance.csv"]
    assert table.kind == "table"
    with open(autologged.download_artifact(run.id, table.name, tmp_path / "dl"), newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["feature", "gain", "split"] and sorted(r[0] for r in rows[1:]) == ["a", "b", "c", "d"]

    (model,) = run.models()
    assert model.framework == "lightgbm" and [f.name for f in model.files] == ["model.txt"]
    loaded = autologged.load_model(model.id)
    assert isinstance(loaded, lgb.Booster)
    np.testing.assert_allclose(loaded.predict(X), booster.predict(X), rtol=1e-6)


def test_cv_logs_mean_and_stdv_per_iteration(autologged, data):
    X, y = data
    results = lgb.cv(PARAMS, lgb.Dataset(X, label=y), 5, nfold=3)
    run = _only_run(autologged)
    assert run.name == "lightgbm.cv" and run.status == "finished"
    assert {"valid-binary_logloss-mean", "valid-binary_logloss-stdv"} <= set(run.metric_keys())
    logged = [p.value for p in run.metrics("valid-binary_logloss-mean")]
    np.testing.assert_allclose(logged, results["valid binary_logloss-mean"])


def test_classifier_and_regressor_fits_are_one_run_each(autologged, data):
    X, y = data
    clf = lgb.LGBMClassifier(n_estimators=6, num_leaves=4, n_jobs=1, verbose=-1, min_child_samples=5)
    assert clf.fit(X, y, eval_set=[(X[:40], y[:40]), (X[40:80], y[40:80])]) is clf
    reg = lgb.LGBMRegressor(n_estimators=4, num_leaves=4, n_jobs=1, verbose=-1, min_child_samples=5)
    reg.fit(X, X[:, 1])
    mbx.flush(10)
    runs = {r.name: r for r in autologged.runs()}
    assert sorted(runs) == ["LGBMClassifier", "LGBMRegressor"]
    run = runs["LGBMClassifier"]
    assert run.params["estimator_class"] == "lightgbm.sklearn.LGBMClassifier" and run.params["n_estimators"] == 6
    assert {"valid_0-binary_logloss", "valid_1-binary_logloss"} <= set(run.metric_keys())
    (model,) = run.models()
    assert sorted(f.name for f in model.files) == ["model.pkl", "model.txt"]
    loaded = autologged.load_model(model.id)
    assert isinstance(loaded, lgb.LGBMClassifier)
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), rtol=1e-6)


def test_failing_training_raises_unchanged_and_marks_run_failed(autologged, data):
    X, y = data
    error = RuntimeError("stop here")
    calls = []

    def failing(env):
        calls.append(env.iteration)
        if env.iteration == 2:
            raise error

    with pytest.raises(RuntimeError) as caught:
        lgb.train(PARAMS, lgb.Dataset(X, label=y), 10, callbacks=[failing])
    assert caught.value is error and calls == [0, 1, 2]
    run = _only_run(autologged)
    assert run.status == "failed" and run.models() == []


def test_save_and_model_file_load_are_recorded(autologged, data, tmp_path):
    X, y = data
    booster = lgb.train(PARAMS, lgb.Dataset(X, label=y), 3)
    path = tmp_path / "saved.txt"
    booster.save_model(str(path))
    with mbx.start_run(name="serving"):
        restored = lgb.Booster(model_file=str(path))
    assert isinstance(restored, lgb.Booster)
    np.testing.assert_allclose(restored.predict(X), booster.predict(X), rtol=1e-6)
    mbx.flush(10)
    runs = {r.name: r for r in autologged.runs()}
    (event,) = runs["lightgbm.train"].events("model_saved")
    assert event.attrs["path"] == str(path)
    assert "saved.txt" in [a.name for a in runs["lightgbm.train"].artifacts()]
    assert [(i.kind, i.ref) for i in runs["serving"].inputs()] == [("model", str(path))]


def test_joblib_round_trip_of_a_wrapper(autologged, data, tmp_path):
    X, y = data
    clf = lgb.LGBMClassifier(n_estimators=4, num_leaves=4, n_jobs=1, verbose=-1, min_child_samples=5).fit(X, y)
    path = tmp_path / "clf.joblib"
    joblib.dump(clf, path)
    restored = joblib.load(path)
    assert type(restored) is lgb.LGBMClassifier
    np.testing.assert_allclose(restored.predict_proba(X), clf.predict_proba(X), rtol=1e-6)
    if "modelbox_autolog.integrations.sklearn" not in sys.modules:
        pytest.skip("the sklearn integration (joblib capture) is not present")
    run = _only_run(autologged)
    assert any(f.name == "clf.joblib" for m in run.models() for f in m.files)


def test_disable_restores_originals_by_identity(store_uri):
    owners = [(lgb, "train"), (lgb, "cv"), (lightgbm.engine, "train"), (lightgbm.engine, "cv"),
              (lightgbm.sklearn, "train"), (lightgbm.basic.Booster, "save_model"),
              (lightgbm.basic.Booster, "__init__"), (lightgbm.sklearn.LGBMModel, "fit"),
              (lightgbm.sklearn.LGBMClassifier, "fit")]
    before = [owner.__dict__[attr] for owner, attr in owners]
    mbx.autolog(backend=store_uri, capture_console=False)
    assert all(owner.__dict__[attr] is not orig for (owner, attr), orig in zip(owners, before, strict=True))
    assert isinstance(lgb.Booster, type)
    mbx.autolog(disable=True)
    assert all(owner.__dict__[attr] is orig for (owner, attr), orig in zip(owners, before, strict=True))


def test_grid_search_candidates_are_child_runs_of_the_search(autologged, data):
    model_selection = pytest.importorskip("sklearn.model_selection")
    if "modelbox_autolog.integrations.sklearn" not in sys.modules:
        pytest.skip("the sklearn integration is not present")
    X, y = data
    base = lgb.LGBMClassifier(n_estimators=3, n_jobs=1, verbose=-1, min_child_samples=5)
    model_selection.GridSearchCV(base, {"num_leaves": [3, 4]}, cv=2).fit(X, y)
    mbx.flush(10)
    runs = autologged.runs()
    (search,) = [r for r in runs if r.name == "GridSearchCV"]
    fits = [r for r in runs if r.name == "LGBMClassifier"]
    assert len(fits) == 5  # 2 candidates x 2 folds + the refit
    assert all(r.parent_run_id == search.id and r.models() == [] for r in fits)
