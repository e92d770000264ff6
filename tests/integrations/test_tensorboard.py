"""TensorBoard capture on the real writers (torch, tensorboardX, tf.summary, Keras's callback,
Lightning's logger): recorded as written, event files unchanged, no metric twice."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests._components import require_module

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
torch = pytest.importorskip("torch")

import modelbox_autolog as mbx  # noqa: E402
from modelbox_autolog import _patching  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _event_scalars(logdir: str) -> dict[str, list[tuple[int, float]]]:
    """What TensorBoard itself reads back from the event files of ``logdir``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(logdir, size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _only_run(client):
    mbx.flush(10)
    runs = client.runs()
    assert len(runs) == 1, [(r.name, r.tags) for r in runs]
    return runs[0]


def _values(run, key):
    return [(p.step, pytest.approx(p.value, rel=1e-6)) for p in run.metrics(key)]


def _read_artifact(client, run, name, tmp_path) -> bytes:
    path = client.download_artifact(run.id, name, tmp_path / "dl")
    with open(path, "rb") as handle:
        return handle.read()


@pytest.mark.parametrize("flavour", ["torch", "tensorboardX"])
def test_plain_loop_summary_writer(autologged, tmp_path, flavour):
    if flavour == "torch":
        require_module("tensorboard", "pip install 'modelbox-autolog[tensorboard]'")
        from torch.utils.tensorboard import SummaryWriter
    else:
        SummaryWriter = require_module("tensorboardX", "pip install 'modelbox-autolog[tensorboard]'").SummaryWriter
    logdir = str(tmp_path / "runs" / "exp1")
    writer = SummaryWriter(logdir)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 3), torch.randn(32, 1)
    losses = []
    for step in range(5):  # a plain loop: no fit, nothing but the writer
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        writer.add_scalar("Loss/train", loss.item(), step)
    writer.add_scalar("no_step", 1.5)
    writer.add_scalar("no_step", 2.5)
    writer.add_scalars("lr", {"head": 0.1, "body": 0.01}, 4)
    weights = model.weight.detach().clone()
    writer.add_histogram("weights", weights, 4)
    writer.add_image("sample", np.random.default_rng(0).random((3, 8, 8)), 4)
    writer.add_text("notes", "first try", 2)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots()
    axes.plot(losses)
    writer.add_figure("curve", figure, 4)  # rendered by TensorBoard: one image, not also a saved figure
    writer.add_hparams({"lr": 0.1, "optimizer": "sgd"}, {"hparam/final_loss": losses[-1]})
    writer.close()

    run = _only_run(autologged)
    assert run.name == "process" and run.tags["scope"] == "process"
    assert _values(run, "Loss/train") == [(i, v) for i, v in enumerate(losses)]
    assert _values(run, "no_step") == [(0, 1.5), (1, 2.5)]  # no global_step: counted per key
    assert _values(run, "lr/head") == [(4, 0.1)] and _values(run, "lr/body") == [(4, 0.01)]
    flat = weights.numpy().ravel().astype(np.float64)
    assert run.metrics("weights/mean")[0].value == pytest.approx(flat.mean(), abs=1e-6)
    assert run.metrics("weights/std")[0].value == pytest.approx(flat.std(), abs=1e-5)
    assert run.metrics("weights/min")[0].value == pytest.approx(flat.min())
    assert run.metrics("weights/max")[0].step == 4
    assert run.params["lr"] == 0.1 and run.params["optimizer"] == "sgd"
    assert run.metrics("hparam/final_loss")[0].value == pytest.approx(losses[-1])
    texts = run.events("tensorboard_text")
    assert [(e.attrs["tag"], e.attrs["step"], e.attrs["text"]) for e in texts] == [("notes", 2, "first try")]
    images = sorted((a for a in run.artifacts() if a.kind == "image"), key=lambda a: a.name)
    assert [a.name for a in images] == ["tensorboard/curve-step4.png", "tensorboard/sample-step4.png"]
    assert not [a for a in run.artifacts() if a.kind == "plot"]
    assert _read_artifact(autologged, run, images[0].name, tmp_path).startswith(PNG_MAGIC)
    # the optimizer went to the same process-level run (one run for the whole loop)
    assert run.params["optimizer.name"] == "SGD"

    if flavour == "torch":  # the event files hold exactly what the writer was given
        scalars = _event_scalars(logdir)
        assert [(s, pytest.approx(v, rel=1e-6)) for s, v in scalars["Loss/train"]] == list(enumerate(losses))


def test_split_writers_prefix_their_tags_and_go_to_the_active_run(autologged, tmp_path):
    require_module("tensorboard", "pip install 'modelbox-autolog[tensorboard]'")
    from torch.utils.tensorboard import SummaryWriter

    with mbx.start_run(name="mine") as run:
        train, val = SummaryWriter(str(tmp_path / "tb" / "train")), SummaryWriter(str(tmp_path / "tb" / "validation"))
        for epoch in range(3):
            train.add_scalar("loss", 1.0 / (epoch + 1), epoch)
            val.add_scalar("loss", 2.0 / (epoch + 1), epoch)
        train.close()
        val.close()
    stored = _only_run(autologged)
    assert stored.id == run.id
    assert _values(stored, "train/loss") == [(0, 1.0), (1, 0.5), (2, 1 / 3)]
    assert _values(stored, "validation/loss") == [(0, 2.0), (1, 1.0), (2, 2 / 3)]


def test_tf_summary_in_a_plain_loop(autologged, tmp_path):
    tf = pytest.importorskip("tensorflow")
    require_module("tensorboard", "pip install 'modelbox-autolog[tensorboard]'")
    writer = tf.summary.create_file_writer(str(tmp_path / "tf" / "train"))
    with writer.as_default():
        for step in range(3):
            assert tf.summary.scalar("loss", 1.0 - 0.1 * step, step=step)
        tf.summary.histogram("weights", tf.constant([1.0, 2.0, 3.0, 4.0]), step=2)
        tf.summary.image("digits", np.full((2, 4, 4, 1), 0.5, dtype=np.float32), step=2, max_outputs=2)
        tf.summary.text("notes", "tf text", step=1)
        tf.summary.experimental.set_step(7)
        tf.summary.scalar("implicit_step", 3.0)
    writer.close()
    assert not bool(tf.summary.scalar("no_writer", 1.0, step=0))  # nothing written: nothing recorded

    run = _only_run(autologged)
    assert _values(run, "train/loss") == [(0, 1.0), (1, 0.9), (2, 0.8)]
    assert _values(run, "train/implicit_step") == [(7, 3.0)]
    assert "no_writer" not in run.metric_keys()
    assert run.metrics("train/weights/mean")[0].value == pytest.approx(2.5)
    assert run.metrics("train/weights/max")[0].value == pytest.approx(4.0)
    names = sorted(a.name for a in run.artifacts() if a.kind == "image")
    assert names == ["tensorboard/train/digits-step2.png", "tensorboard/train/digits/1-step2.png"]
    assert _read_artifact(autologged, run, names[0], tmp_path).startswith(PNG_MAGIC)
    assert [e.attrs["text"] for e in run.events("tensorboard_text")] == ["tf text"]


def _keras_fit(tmp_path):
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    logdir = str(tmp_path / "keras-logs")
    callback = keras.callbacks.TensorBoard(logdir, histogram_freq=1, write_images=True)
    history = model.fit(x, y, epochs=2, batch_size=16, validation_split=0.25, verbose=0, callbacks=[callback])
    return history, logdir


def test_keras_tensorboard_callback_with_our_keras_callback(autologged, tmp_path):
    pytest.importorskip("tensorflow")
    history, logdir = _keras_fit(tmp_path)
    run = _only_run(autologged)
    keys = set(run.metric_keys())
    assert {"loss", "val_loss"} <= keys  # ours, once
    assert not any(k.startswith(("train/epoch_", "validation/epoch_", "validation/evaluation_")) for k in keys), keys
    histograms = [k for k in keys if k.startswith("train/") and "/histogram/" in k]
    assert histograms and all(len(run.metrics(k)) == 2 for k in histograms)  # one per epoch
    assert any(a.kind == "image" for a in run.artifacts())  # write_images
    # TensorBoard's own files are as Keras wrote them
    assert [v for _, v in _event_tensors(os.path.join(logdir, "train"), "epoch_loss")] == pytest.approx(history.history["loss"])


def test_keras_tensorboard_callback_alone_is_recorded(store_uri, client, tmp_path):
    pytest.importorskip("tensorflow")
    mbx.autolog(frameworks=["tensorboard"], backend=store_uri, capture_console=False)
    history, _ = _keras_fit(tmp_path)
    run = _only_run(client)
    assert run.name == "process"
    assert [p.value for p in run.metrics("train/epoch_loss")] == pytest.approx(history.history["loss"])
    assert [p.value for p in run.metrics("validation/epoch_loss")] == pytest.approx(history.history["val_loss"])
    assert [p.step for p in run.metrics("train/epoch_loss")] == [0, 1]


def _event_tensors(logdir: str, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(logdir, size_guidance={"tensors": 0})
    acc.Reload()
    import tensorflow as tf

    return [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]


def test_lightning_tensorboard_logger_not_doubled_but_user_writes_kept(autologged, tmp_path):
    L = pytest.importorskip("lightning")
    require_module("tensorboard", "pip install 'modelbox-autolog[tensorboard]'")
    from lightning.pytorch.loggers import TensorBoardLogger
    from torch.utils.data import DataLoader, TensorDataset

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("train_loss", loss, on_step=False, on_epoch=True)
            self.logger.experiment.add_scalar("custom/grad_scale", 0.5, self.global_step)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    generator = torch.Generator().manual_seed(0)
    data = DataLoader(TensorDataset(torch.randn(32, 4, generator=generator), torch.randn(32, 1, generator=generator)),
                      batch_size=16)
    trainer = L.Trainer(max_epochs=2, logger=TensorBoardLogger(str(tmp_path / "lightning")), enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, default_root_dir=str(tmp_path))
    trainer.fit(Tiny(), data)
    run = _only_run(autologged)
    keys = set(run.metric_keys())
    assert "train_loss" in keys and len(run.metrics("train_loss")) == 2  # ours, once per epoch
    assert not any(k in keys for k in ("epoch", "hp_metric")), keys  # the logger's own writes: not again
    assert len(run.metrics("custom/grad_scale")) == 4  # the user's own write through the logger's writer


def test_disable_restores_the_writers(autologged):
    require_module("tensorboard", "pip install 'modelbox-autolog[tensorboard]'")
    from torch.utils.tensorboard import writer

    assert hasattr(writer.FileWriter.__dict__["add_summary"], "__wrapped__")
    mbx.autolog(disable=True)
    assert not hasattr(writer.FileWriter.__dict__["add_summary"], "__wrapped__")
    assert not _patching.patches("tensorboard")
