"""Every object we inject into a user's objects pickles (module-level classes, no closures), and a
run pickled into another process logs into the same run there (spawned workers hold our callbacks)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap

import pytest

import modelbox_autolog as mbx


def _round_trip(obj):
    copy = pickle.loads(pickle.dumps(obj))
    assert type(copy) is type(obj)
    return copy


def test_xgboost_and_lightgbm_callbacks_pickle(autologged):
    xgboost = pytest.importorskip("xgboost")
    pytest.importorskip("lightgbm")
    from modelbox_autolog.integrations import lightgbm as lgb_integration
    from modelbox_autolog.integrations import xgboost as xgb_integration

    with mbx.start_run(name="r") as run:
        ours = xgb_integration.ModelboxCallback(run, 10)
        assert isinstance(ours, xgboost.callback.TrainingCallback)
        assert _round_trip(ours)._run is run
        assert _round_trip(lgb_integration._MetricsCallback(run, 10))._run is run


def test_keras_callback_pickles(autologged):
    pytest.importorskip("keras")
    from modelbox_autolog.integrations.keras import ModelBoxCallback

    callback = ModelBoxCallback(log_every_n_steps=2)
    assert _round_trip(callback).log_every_n_steps == 2


def test_fastai_callback_pickles(autologged):
    pytest.importorskip("fastai")
    import fastai.learner  # noqa: F401

    from modelbox_autolog.integrations import fastai as fastai_integration

    with mbx.start_run(name="r") as run:
        callback = fastai_integration.ModelboxFastaiCallback(run, 0, True, None)
        assert _round_trip(callback).mbx_run is run


READER = textwrap.dedent(
    """
    import pickle, sys
    import modelbox_autolog as mbx
    with open(sys.argv[1], "rb") as handle:
        run = pickle.load(handle)
    run.log_metric("from_the_worker", 7.0, step=0)
    run.log_params({"worker": True})
    assert mbx.flush(30)
    """
)


def test_a_run_pickled_into_another_process_logs_into_the_same_run(store_uri, client, tmp_path):
    mbx.autolog(backend=store_uri, experiment="test", capture_console=False)
    with mbx.start_run(name="parent") as run:
        run.log_metric("here", 1.0)
        mbx.flush(10)
        blob = tmp_path / "run.pkl"
        blob.write_bytes(pickle.dumps(run))
        script = tmp_path / "worker.py"
        script.write_text(READER)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        done = subprocess.run([sys.executable, str(script), str(blob)], capture_output=True, text=True, env=env,
                              timeout=120)
        assert done.returncode == 0, done.stderr
    mbx.flush(10)
    (view,) = client.runs()  # not a second run: the worker attached to this one and did not end it
    assert view.name == "parent" and view.status == "finished"
    assert [p.value for p in view.metrics("from_the_worker")] == [7.0]
    assert view.params["worker"] is True
