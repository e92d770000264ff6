"""Keras autologging against real Keras 3 (TensorFlow backend) on tiny data and a real SQLite store."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
keras = pytest.importorskip("keras")

import modelbox_autolog as mbx  # noqa: E402
from modelbox_autolog.integrations import keras as keras_integration  # noqa: E402


def _data(n: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    return x, y


def _model(lr: float = 0.01) -> keras.Model:
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="binary_crossentropy", metrics=["accuracy"])
    return model


class Recorder(keras.callbacks.Callback):
    """A user callback: remembers which epochs it saw."""

    def __init__(self, name: str, seen: list[str]) -> None:
        super().__init__()
        self.name, self.seen = name, seen

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append(f"{self.name}{epoch}")


def _only_run(client):
    mbx.flush(10)
    runs = client.runs()
    assert len(runs) == 1, runs
    return runs[0]


def test_fit_with_validation_logs_params_metrics_summary_and_model(autologged):
    x, y = _data()
    model = _model()
    history = model.fit(x, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0)
    assert isinstance(history, keras.callbacks.History) and len(history.epoch) == 3

    run = _only_run(autologged)
    assert run.status == "finished"
    params = run.params
    assert params["optimizer.class"] == "Adam" and params["optimizer.learning_rate"] == pytest.approx(0.01)
    assert params["loss"] == "binary_crossentropy" and params["metrics"] == ["accuracy"]
    assert params["epochs"] == 3 and params["batch_size"] == 16 and params["validation_split"] == 0.25
    assert params["model.total_params"] == model.count_params() == 5 * 8 + 8 + 8 + 1
    keys = set(run.metric_keys())
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "epoch_time_s", "lr"} <= keys
    assert not any(k.endswith("_step") for k in keys)  # epoch level only by default
    losses = run.metrics("loss")
    assert [p.step for p in losses] == [0, 1, 2] and [p.epoch for p in losses] == [0, 1, 2]
    assert [p.value for p in losses] == pytest.approx(history.history["loss"])
    epochs = run.events("epoch")
    assert [e.attrs["epoch"] for e in epochs] == [0, 1, 2] and all(e.duration_s > 0 for e in epochs)
    summary = [a for a in run.artifacts() if a.name.endswith("_summary.txt")]
    assert len(summary) == 1 and summary[0].bytes > 100
    models = run.models()
    assert len(models) == 1 and models[0].framework == "keras" and models[0].files[0].name == "model.keras"
    assert models[0].metadata["epochs_trained"] == 3


def test_user_callbacks_untouched_and_a_reused_list_logs_each_fit(autologged):
    x, y = _data()
    seen: list[str] = []
    first, second = Recorder("a", seen), Recorder("b", seen)
    callbacks = [first, second]
    model = _model()
    # positional: x, y, batch_size, epochs, verbose, callbacks
    model.fit(x, y, 32, 2, 0, callbacks)
    assert callbacks == [first, second] and seen == ["a0", "b0", "a1", "b1"]  # order kept, list not mutated
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=callbacks)
    assert callbacks == [first, second] and seen[-2:] == ["a0", "b0"]

    mbx.flush(10)
    runs = autologged.runs()
    assert len(runs) == 2
    for run, epochs in zip(sorted(runs, key=lambda r: len(r.metrics("loss"))), (1, 2), strict=True):
        assert run.status == "finished"
        assert [p.step for p in run.metrics("loss")] == list(range(epochs))  # each fit once, no leftovers


def test_explicit_callback_is_not_doubled_and_works_without_autolog(store_uri, client):
    x, y = _data()
    callback_cls = keras_integration.ModelBoxCallback
    assert issubclass(callback_cls, keras.callbacks.Callback)

    # without autolog: it opens a run for the fit and logs into it
    mbx.autolog(backend=store_uri, experiment="manual", capture_console=False)
    mbx.autolog(frameworks="keras", disable=True)  # the store stays configured, nothing is patched
    assert "fit" not in keras.Model.__dict__
    _model().fit(x, y, epochs=2, verbose=0, callbacks=[callback_cls()])
    mbx.flush(10)
    (manual,) = client.runs()
    assert manual.status == "finished" and len(manual.metrics("loss")) == 2 and len(manual.models()) == 1

    # with autolog: the user's instance is used, ours is not added
    mbx.autolog(backend=store_uri, experiment="auto", capture_console=False)
    mine = callback_cls()
    callbacks = [mine]
    _model().fit(x, y, epochs=2, verbose=0, callbacks=callbacks)
    assert callbacks == [mine] and mine.run is None  # detached after the fit
    mbx.flush(10)
    auto = client.runs(experiment="auto")
    assert len(auto) == 1
    assert [p.step for p in auto[0].metrics("loss")] == [0, 1]  # logged once per epoch, not twice
    assert len(auto[0].models()) == 1


def test_early_stopping_and_learning_rate_changes(autologged):
    x, y = _data()
    model = _model()
    # no change counts as an improvement: stops after `patience` epochs
    stopper = keras.callbacks.EarlyStopping(monitor="loss", patience=1, min_delta=100.0, restore_best_weights=True)
    halve = keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.5 ** epoch * 0.01)
    model.fit(x, y, epochs=20, verbose=0, callbacks=[halve, stopper])
    assert stopper.stopped_epoch > 0

    run = _only_run(autologged)
    assert run.params["early_stopping.stopped_epoch"] == stopper.stopped_epoch
    assert run.params["early_stopping.restore_best_weights"] is True
    (event,) = run.events("early_stopping")
    assert event.attrs["stopped_epoch"] == stopper.stopped_epoch and event.attrs["monitor"] == "loss"
    lrs = [p.value for p in run.metrics("lr")]
    assert lrs[0] == pytest.approx(0.01) and lrs[1] == pytest.approx(0.005)
    assert len(run.events("lr_changed")) == len(lrs) - 1


def test_model_checkpoint_and_backup_are_recorded_once(autologged, tmp_path):
    x, y = _data()
    model = _model()
    best = tmp_path / "best.keras"
    weights = tmp_path / "ep{epoch}.weights.h5"
    callbacks = [
        keras.callbacks.ModelCheckpoint(str(best), monitor="loss", save_best_only=False),
        keras.callbacks.ModelCheckpoint(str(weights), save_weights_only=True),
        keras.callbacks.BackupAndRestore(str(tmp_path / "backup")),
    ]
    model.fit(x, y, epochs=2, verbose=0, callbacks=callbacks)
    run = _only_run(autologged)
    with mbx.start_run(name="restore") as restore:
        model.load_weights(tmp_path / "ep2.weights.h5")
    mbx.flush(10)
    (loaded,) = autologged.run(restore.id).inputs()
    assert loaded.kind == "model" and loaded.ref == str(tmp_path / "ep2.weights.h5")

    saved = run.events("checkpoint_saved")
    by_source: dict[str, list] = {}
    for event in saved:
        by_source.setdefault(event.attrs["source"], []).append(event)
    assert len(by_source["ModelCheckpoint"]) == 4  # 2 epochs x 2 callbacks, model.save not counted again
    assert len(by_source["BackupAndRestore"]) == 2
    assert set(by_source) == {"ModelCheckpoint", "BackupAndRestore"}
    full = [e for e in by_source["ModelCheckpoint"] if e.attrs["path"] == str(best)]
    assert len(full) == 2 and all(e.attrs["bytes"] > 0 and e.duration_s > 0 for e in full)
    assert {e.attrs["epoch"] for e in full} == {0, 1}
    artifacts = [a for a in run.artifacts() if a.name in ("best.keras", "ep1.weights.h5", "ep2.weights.h5")]
    assert sorted(a.name for a in artifacts) == ["best.keras", "best.keras", "ep1.weights.h5", "ep2.weights.h5"]
    assert len(run.models()) == 1  # checkpoints are artifacts; only the final model is a Model


def test_fit_that_raises_passes_the_exception_and_fails_the_run(autologged):
    x, y = _data()
    boom = RuntimeError("user callback failed")

    class Explode(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise boom

    with pytest.raises(RuntimeError) as info:
        _model().fit(x, y, epochs=3, verbose=0, callbacks=[Explode()])
    assert info.value is boom
    run = _only_run(autologged)
    assert run.status == "failed"
    assert len(run.metrics("loss")) == 0 and run.models() == []


def test_fit_twice_two_runs_or_one_inside_start_run(autologged):
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=1, verbose=0)
    model.fit(x, y, epochs=1, verbose=0)
    mbx.flush(10)
    assert len(autologged.runs()) == 2

    with mbx.start_run(name="together") as run:
        model.fit(x, y, epochs=2, verbose=0)
        model.fit(x, y, epochs=2, verbose=0)
    mbx.flush(10)
    runs = autologged.runs()
    assert len(runs) == 3
    together = autologged.run(run.id)
    assert together.status == "finished"
    assert [p.step for p in together.metrics("loss")] == [0, 1, 2, 3]  # the second fit continues the axis
    assert [p.epoch for p in together.metrics("loss")] == [0, 1, 0, 1]


def test_per_step_metrics_every_n_steps(store_uri, client):
    mbx.autolog(backend=store_uri, experiment="test", capture_console=False, log_every_n_steps=2)
    x, y = _data(64)
    _model().fit(x, y, epochs=2, batch_size=8, verbose=0)  # 8 steps per epoch
    run = _only_run(client)
    steps = run.metrics("loss_step")
    assert [p.step for p in steps] == [2, 4, 6, 8, 10, 12, 14, 16]
    assert [p.epoch for p in steps] == [0] * 4 + [1] * 4
    assert [p.step for p in run.metrics("loss")] == [0, 1]


def test_evaluate_saves_and_loads_after_fit(autologged, tmp_path):
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=1, verbose=0, validation_split=0.25)
    loss, accuracy = model.evaluate(x, y, verbose=0)
    result = model.evaluate(x, y, verbose=0, return_dict=True)
    path = tmp_path / "mine.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # no run active: an input of the next fit
    loaded.fit(x, y, epochs=1, verbose=0)

    mbx.flush(10)
    first, second = sorted(autologged.runs(), key=lambda r: len(r.metric_keys()), reverse=True)
    assert [p.value for p in first.metrics("eval_loss")] == pytest.approx([loss, result["loss"]])
    assert [p.value for p in first.metrics("eval_accuracy")] == pytest.approx([accuracy, result["accuracy"]])
    assert len(first.metrics("val_loss")) == 1 and not second.metrics("eval_loss")  # fit's own validation is not eval_
    (saved,) = first.events("checkpoint_saved")
    assert saved.attrs["api"] == "Model.save" and saved.attrs["path"] == str(path)
    names = sorted(m.name for m in first.models())
    assert names == sorted(["mine", model.name])  # the final model and the user's explicit save
    (source,) = second.inputs()
    assert source.kind == "model" and source.ref == str(path)


def test_load_model_round_trip_and_disable_restores(store_uri, client):
    import tensorflow as tf
    from keras.src.saving import saving_api

    inherited_fit, own_save, save_model = keras.Model.fit, keras.Model.__dict__["save"], keras.saving.save_model
    assert "fit" not in keras.Model.__dict__  # Model inherits fit from the backend's trainer
    mbx.autolog(backend=store_uri, experiment="test", capture_console=False)
    assert keras.Model.fit is not inherited_fit and keras.saving.save_model is not save_model

    x, y = _data()
    model = _model()
    tf.keras.Sequential.fit(model, x, y, epochs=1, verbose=0)  # tf.keras is Keras 3: the same patched method
    run = _only_run(client)
    (logged,) = run.models()
    restored = client.load_model(logged.id)
    np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    assert run.inputs() == []  # loading it back is not an input of the run

    mbx.autolog(disable=True)
    assert "fit" not in keras.Model.__dict__
    assert keras.Model.fit is inherited_fit and tf.keras.Model.fit is inherited_fit
    assert keras.Model.__dict__["save"] is own_save
    assert keras.saving.save_model is save_model is saving_api.save_model
