"""fastai autologging on the real library: a tiny tabular learner from a pandas DataFrame."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("fastai")
np = pytest.importorskip("numpy")
pd = pytest.importorskip("pandas")
torch = pytest.importorskip("torch")

from fastai.learner import Learner  # noqa: E402
from fastai.tabular.all import (  # noqa: E402
    Categorify,
    CategoryBlock,
    Normalize,
    TabularDataLoaders,
    accuracy,
    tabular_learner,
)

import modelbox_autolog as mbx  # noqa: E402


def _learner(path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=120), "b": rng.normal(size=120), "c": rng.choice(["x", "y"], 120)})
    df["y"] = (df.a + df.b > 0).astype(int)
    dls = TabularDataLoaders.from_df(
        df, path=str(path), procs=[Categorify, Normalize], cat_names=["c"], cont_names=["a", "b"],
        y_names="y", y_block=CategoryBlock(), bs=32, valid_idx=list(range(90, 120)),
    )
    torch.manual_seed(0)
    return tabular_learner(dls, layers=[8], n_out=2, metrics=accuracy)


def _only_run(client):
    mbx.flush(10)
    runs = client.runs()
    assert len(runs) == 1, runs
    return runs[0]


def test_fine_tune_save_export(autologged, tmp_path):
    learn = _learner(tmp_path)
    with learn.no_bar(), learn.no_logging():
        learn.fine_tune(2, base_lr=1e-2)
        saved = learn.save("weights")
        learn.export("export.pkl")
        learn.load("weights")

    run = _only_run(autologged)  # fine_tune's two fits: one run
    assert run.status == "finished" and run.name == "TabularModel"
    params = run.params
    assert params["fit_method"] == "fine_tune"
    assert params["fine_tune.epochs"] == 2 and float(params["fine_tune.base_lr"]) == pytest.approx(1e-2)
    assert params["optimizer.name"] == "Adam" and params["batch_size"] == 32 and params["train_size"] == 90
    assert params["metrics"] == ["accuracy"]

    for key in ("train_loss", "valid_loss", "accuracy", "epoch_time_s"):
        assert [(p.step, p.epoch) for p in run.metrics(key)] == [(0, 0), (1, 1), (2, 2)], key
    assert len(run.events("epoch")) == 3

    saves = run.events("checkpoint_saved")  # once each, not again as torch.save
    assert [e.attrs["api"] for e in saves] == ["Learner.save", "Learner.export"]
    assert saves[0].attrs["path"] == str(saved) and saves[0].attrs["bytes"] == os.path.getsize(saved)
    assert [e.attrs["api"] for e in run.events("checkpoint_loaded")] == ["Learner.load"]
    assert [a.name for a in run.artifacts()] == ["weights.pth"]

    models = {m.name: m for m in autologged.models()}
    assert set(models) == {"TabularModel", "export"}
    assert all(m.framework == "fastai" for m in models.values())
    trained = autologged.load_model(models["TabularModel"].id)  # the fit's model: a Learner export
    assert isinstance(trained, Learner) and set(trained.model.state_dict()) == set(learn.model.state_dict())
    assert models["TabularModel"].metadata["kind"] == "fastai_export"
    exported = autologged.load_model(models["export"].id)
    assert isinstance(exported, Learner)
    row = pd.DataFrame({"a": [0.5], "b": [0.5], "c": ["x"]})
    assert exported.predict(row.iloc[0])[2].shape == (2,)


def test_plain_fit_and_lr_find_is_not_a_run(autologged, tmp_path):
    learn = _learner(tmp_path)
    with learn.no_bar(), learn.no_logging():
        learn.lr_find(num_it=20, show_plot=False)
        learn.fit(1, lr=1e-2)
    run = _only_run(autologged)
    assert run.params["n_epoch"] == 1
    assert [p.step for p in run.metrics("valid_loss")] == [0]


def test_disable_restores_learner_methods(store_uri):
    methods = ("fit", "save", "load", "export", "fine_tune", "fit_one_cycle")
    originals = {m: Learner.__dict__[m] for m in methods}
    mbx.autolog(backend=store_uri, capture_console=False)
    assert Learner.__dict__["fit"] is not originals["fit"]
    mbx.autolog(disable=True)
    assert all(Learner.__dict__[m] is originals[m] for m in methods)


def test_learner_that_cannot_be_exported_keeps_its_state_and_logs_weights(autologged, tmp_path):
    import threading

    learn = _learner(tmp_path)
    learn.model.guard = threading.Lock()  # not picklable: Learner.export fails
    dls = learn.dls
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, lr=1e-2)
    run = _only_run(autologged)
    assert learn.dls is dls and learn.opt is not None  # export's swaps were put back
    (failed,) = run.events("learner_export_failed")
    assert "lock" in failed.attrs["reason"].lower()
    (model,) = autologged.models()
    assert model.metadata["kind"] == "state_dict"
    assert set(autologged.load_model(model.id)) == set(learn.model.state_dict())
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, lr=1e-2)  # the Learner still trains
