"""CatBoost autologging on the real library: every model class's ``fit``, save and load."""

from __future__ import annotations

import csv
import os
import sys

import numpy as np
import pytest

catboost = pytest.importorskip("catboost")
joblib = pytest.importorskip("joblib")

import modelbox_autolog as mbx  # noqa: E402

COMMON = {"thread_count": 1, "verbose": False, "depth": 2, "allow_writing_files": False}


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


def test_classifier_fit_logs_metrics_of_every_set_best_iteration_importance_and_model(autologged, data, tmp_path):
    X, y = data
    model = catboost.CatBoostClassifier(iterations=300, eval_metric="AUC", **COMMON)
    assert model.fit(X[:100], y[:100], eval_set=[(X[100:130], y[100:130]), (X[130:], y[130:])],
                     early_stopping_rounds=5) is model

    run = _only_run(autologged)
    assert run.name == "CatBoostClassifier" and run.status == "finished"
    assert run.params["iterations"] == 300 and run.params["loss_function"] == "Logloss"
    assert {"learn-Logloss", "validation_0-AUC", "validation_0-Logloss", "validation_1-AUC"} <= set(run.metric_keys())
    history = model.get_evals_result()["validation_1"]["AUC"]
    assert len(history) < 300  # stopped early
    points = run.metrics("validation_1-AUC")
    assert [p.step for p in points] == list(range(len(history)))
    np.testing.assert_allclose([p.value for p in points], history)
    assert run.metrics("best_iteration")[-1].value == model.get_best_iteration()
    best = model.get_best_score()["validation_1"]["AUC"]
    assert run.metrics("best_score.validation_1-AUC")[-1].value == pytest.approx(best)

    (table,) = [a for a in run.artifacts() if a.name == "feature_importance.csv"]
    assert table.kind == "table"
    with open(autologged.download_artifact(run.id, table.name, tmp_path / "dl"), newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["feature", "importance"] and len(rows) == 5

    (logged,) = run.models()
    assert logged.framework == "catboost" and [f.name for f in logged.files] == ["model.cbm"]
    loaded = autologged.load_model(logged.id)
    assert isinstance(loaded, catboost.CatBoostClassifier)
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X), rtol=1e-6)


def test_metric_period_maps_values_to_their_iterations(autologged, data):
    X, y = data
    catboost.CatBoostRegressor(iterations=12, **COMMON).fit(X, X[:, 1], metric_period=5)
    run = _only_run(autologged)
    assert [p.step for p in run.metrics("learn-RMSE")] == [0, 5, 10, 11]


def test_regressor_ranker_and_base_class_are_one_run_each(autologged, data):
    X, y = data
    catboost.CatBoostRegressor(iterations=5, **COMMON).fit(X, X[:, 1])
    groups = np.repeat(np.arange(16), 10)
    catboost.CatBoostRanker(iterations=5, **COMMON).fit(X, y, group_id=groups)
    catboost.CatBoost({"iterations": 5, "loss_function": "RMSE", **COMMON}).fit(X, X[:, 2])
    mbx.flush(10)
    runs = autologged.runs()
    assert sorted(r.name for r in runs) == ["CatBoost", "CatBoostRanker", "CatBoostRegressor"]
    assert all(r.status == "finished" and len(r.models()) == 1 for r in runs)
    assert all("learn-RMSE" in r.metric_keys() for r in runs if r.name != "CatBoostRanker")
    base = next(r for r in runs if r.name == "CatBoost")
    assert type(autologged.load_model(base.models()[0].id)) is catboost.CatBoost


def _failing_fit(X, y):
    """A fit whose user callback raises at the third iteration; returns (exception, iterations run)."""
    seen = []

    class Failing:
        def after_iteration(self, info):
            seen.append(info.iteration)
            if len(seen) == 3:
                raise ValueError("user callback failed")
            return True

    with pytest.raises(Exception) as caught:
        catboost.CatBoostClassifier(iterations=20, **COMMON).fit(X, y, callbacks=[Failing()])
    return caught.value, seen


def test_failing_fit_fails_once_exactly_as_without_autolog(store_uri, client, data):
    X, y = data
    plain_error, plain_seen = _failing_fit(X, y)
    mbx.autolog(backend=store_uri, capture_console=False)
    error, seen = _failing_fit(X, y)
    # CatBoost chains earlier callback errors into its message by itself, so compare the last line
    assert type(error) is type(plain_error)
    assert str(error).strip().splitlines()[-1] == str(plain_error).strip().splitlines()[-1]
    assert str(error).strip().endswith("ValueError: user callback failed")
    assert seen == plain_seen and len(seen) == 3  # the fit ran once: never retried
    run = _only_run(client)
    assert run.status == "failed" and run.models() == []


def test_training_files_are_written_as_without_autolog(autologged, data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    X, y = data
    catboost.CatBoostClassifier(iterations=3, thread_count=1, verbose=False).fit(X, y)
    assert os.path.isdir(tmp_path / "catboost_info")  # CatBoost's default, untouched


def test_save_and_load_model_are_recorded(autologged, data, tmp_path):
    X, y = data
    model = catboost.CatBoostClassifier(iterations=4, **COMMON).fit(X, y)
    path = tmp_path / "saved.cbm"
    model.save_model(str(path))
    with mbx.start_run(name="serving"):
        restored = catboost.CatBoostClassifier().load_model(str(path))
    np.testing.assert_allclose(restored.predict_proba(X), model.predict_proba(X), rtol=1e-6)
    mbx.flush(10)
    runs = {r.name: r for r in autologged.runs()}
    (event,) = runs["CatBoostClassifier"].events("model_saved")
    assert event.attrs["path"] == str(path) and event.attrs["format"] == "cbm"
    assert "saved.cbm" in [a.name for a in runs["CatBoostClassifier"].artifacts()]
    assert [(i.kind, i.ref) for i in runs["serving"].inputs()] == [("model", str(path))]


def test_joblib_round_trip(autologged, data, tmp_path):
    try:  # binds the sklearn integration (which captures joblib.dump), when it is there
        import sklearn  # noqa: F401
    except ImportError:
        pass
    X, y = data
    model = catboost.CatBoostClassifier(iterations=4, **COMMON).fit(X, y)
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    restored = joblib.load(path)
    assert type(restored) is catboost.CatBoostClassifier
    np.testing.assert_allclose(restored.predict_proba(X), model.predict_proba(X), rtol=1e-6)
    if "modelbox_autolog.integrations.sklearn" not in sys.modules:
        pytest.skip("the sklearn integration (joblib capture) is not present")
    run = _only_run(autologged)
    assert any(f.name == "model.joblib" for m in run.models() for f in m.files)


def test_disable_restores_originals_by_identity(store_uri):
    owners = [(catboost.core.CatBoost, "_fit"), (catboost.core.CatBoost, "save_model"),
              (catboost.core.CatBoost, "load_model")]
    before = [owner.__dict__[attr] for owner, attr in owners]
    mbx.autolog(backend=store_uri, capture_console=False)
    assert all(owner.__dict__[attr] is not orig for (owner, attr), orig in zip(owners, before, strict=True))
    mbx.autolog(disable=True)
    assert all(owner.__dict__[attr] is orig for (owner, attr), orig in zip(owners, before, strict=True))


def test_a_refitted_model_keeps_each_runs_model(autologged, data):
    from modelbox_autolog import _patching

    X, y = data
    model = catboost.CatBoostClassifier(iterations=5, **COMMON)
    with _patching._in_progress_lock:  # our background work (the model saves) held, as during a fit
        _patching._in_progress[0] += 1
    try:
        first = model.fit(X, y).predict_proba(X)
        second = model.fit(X, 1 - y).predict_proba(X)  # the same object, refitted in place
    finally:
        with _patching._in_progress_lock:
            _patching._in_progress[0] -= 1
    mbx.flush(10)
    runs = sorted(autologged.runs(), key=lambda r: r.start_time)
    stored = [autologged.load_model(r.models()[0].id).predict_proba(X) for r in runs]
    np.testing.assert_allclose(stored[0], first)
    np.testing.assert_allclose(stored[1], second)
