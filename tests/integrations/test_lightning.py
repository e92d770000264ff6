"""Lightning autologging on the real library: callback metrics, ModelCheckpoint, best model."""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning")

from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import modelbox_autolog as mbx  # noqa: E402


class TinyRegressor(L.LightningModule):
    def __init__(self, lr: float = 0.05, hidden: int = 8) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def _loaders():
    generator = torch.Generator().manual_seed(0)
    X, y = torch.randn(64, 4, generator=generator), torch.randn(64, 1, generator=generator)
    return DataLoader(TensorDataset(X, y), batch_size=16), DataLoader(TensorDataset(X, y), batch_size=32)


def _trainer(tmp_path, callbacks, **kwargs):
    return L.Trainer(max_epochs=3, callbacks=callbacks, logger=False, enable_progress_bar=False,
                     enable_model_summary=False, default_root_dir=str(tmp_path), **kwargs)


def test_fit_with_model_checkpoint(autologged, tmp_path):
    torch.manual_seed(0)
    checkpoint = ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), monitor="val_loss", save_top_k=2)
    callbacks = [checkpoint]
    trainer = _trainer(tmp_path, callbacks)
    model = TinyRegressor(lr=0.05)
    train, val = _loaders()
    assert trainer.fit(model, train, val) is None
    assert callbacks == [checkpoint]  # the user's list is not touched
    assert not any(type(c).__name__ == "ModelboxLightningCallback" for c in trainer.callbacks)

    mbx.flush(10)
    runs = autologged.runs()
    assert len(runs) == 1
    run = runs[0]
    assert run.status == "finished" and run.name == "TinyRegressor"
    params = run.params
    assert float(params["lr"]) == pytest.approx(0.05) and int(params["hidden"]) == 8
    assert params["trainer.max_epochs"] == 3
    assert params["optimizer.name"] == "SGD"
    assert params["checkpoint.monitor"] == "val_loss"

    for key in ("val_loss", "train_loss_epoch", "epoch_time_s"):
        points = run.metrics(key)
        assert [(p.step, p.epoch) for p in points] == [(0, 0), (1, 1), (2, 2)], key
    assert [e.attrs["epoch"] for e in run.events("epoch")] == [0, 1, 2]

    saves = run.events("checkpoint_saved")
    assert len(saves) == 3  # once each: not again as plain torch.save events
    assert all(e.attrs["api"] == "Trainer.save_checkpoint" for e in saves)
    for event in saves:
        assert event.attrs["monitor"] == "val_loss" and "score" in event.attrs and event.attrs["bytes"] > 0

    models = autologged.models()
    assert len(models) == 1
    best = models[0]
    assert best.framework == "lightning" and best.run_id == run.id
    assert best.metadata["best_model_path"] == checkpoint.best_model_path
    assert best.metadata["best_model_score"] == pytest.approx(float(checkpoint.best_model_score))
    kept = {os.path.basename(p) for p in checkpoint.best_k_models} - {os.path.basename(checkpoint.best_model_path)}
    assert {a.name for a in run.artifacts()} == kept

    assert best.metadata["module_class"] == f"{TinyRegressor.__module__}:TinyRegressor"
    restored = autologged.load_model(best.id)  # a live LightningModule, via load_from_checkpoint
    assert isinstance(restored, TinyRegressor) and not restored.training
    assert restored.hparams.lr == pytest.approx(0.05)
    reference = torch.load(checkpoint.best_model_path, weights_only=False)["state_dict"]
    assert all(torch.equal(restored.state_dict()[k], v) for k, v in reference.items())
    assert [e.name for e in run.events("data_loading")].count("data_loading") >= 3


def test_step_metrics_and_final_weights_without_checkpointing(store_uri, client, tmp_path):
    mbx.autolog(backend=store_uri, experiment="test", capture_console=False, log_every_n_steps=2)
    trainer = _trainer(tmp_path, [], enable_checkpointing=False)
    train, val = _loaders()
    trainer.fit(TinyRegressor(), train, val)
    mbx.flush(10)
    run = client.runs()[0]
    steps = [p.step for p in run.metrics("train_loss_step")]
    assert steps == [2, 4, 6, 8, 10, 12]
    (model,) = client.models()
    assert model.metadata["final_weights"] is True
    live = client.load_model(model.id)  # our own final-weights checkpoint loads live too
    assert isinstance(live, TinyRegressor)
    x = torch.randn(3, 4)
    assert torch.allclose(live(x), trainer.lightning_module.eval()(x))


def test_failing_fit_marks_the_run_failed(autologged, tmp_path):
    class Broken(TinyRegressor):
        def training_step(self, batch, batch_idx):
            raise ValueError("boom")

    train, val = _loaders()
    with pytest.raises(ValueError, match="boom"):
        _trainer(tmp_path, []).fit(Broken(), train, val)
    mbx.flush(10)
    assert [r.status for r in autologged.runs()] == ["failed"]


def test_disable_restores_trainer_methods(store_uri):
    fit, save = L.Trainer.fit, L.Trainer.save_checkpoint
    mbx.autolog(backend=store_uri, capture_console=False)
    assert L.Trainer.fit is not fit
    mbx.autolog(disable=True)
    assert L.Trainer.fit is fit and L.Trainer.save_checkpoint is save


def test_load_model_says_why_when_the_class_cannot_be_found(store_uri, client, tmp_path, caplog):
    class LocalModule(TinyRegressor):  # defined inside a function: nothing can import it
        pass

    mbx.autolog(backend=store_uri, experiment="test", capture_console=False)
    trainer = _trainer(tmp_path, [], enable_checkpointing=False)
    train, val = _loaders()
    trainer.fit(LocalModule(), train, val)
    mbx.flush(10)
    (model,) = client.models()
    with caplog.at_level("WARNING", logger="modelbox_autolog"):
        loaded = client.load_model(model.id)
    assert set(loaded["state_dict"]) == set(TinyRegressor().state_dict())  # the checkpoint dict
    assert "defined inside a function" in caplog.text
