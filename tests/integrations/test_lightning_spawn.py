"""A spawn-launched Lightning strategy (``ddp_spawn``: the trainer, our callback included, is
pickled into two worker processes): the fit works as without autolog and logs once, from rank 0."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning")
if not torch.distributed.is_available():
    pytest.skip("torch.distributed is not available", allow_module_level=True)

import modelbox_autolog as mbx  # noqa: E402

SCRIPT = textwrap.dedent(
    """
    import sys
    import modelbox_autolog as mbx
    mbx.autolog(backend=sys.argv[1], experiment="spawn", capture_console=False, capture_env=False)

    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset


    class Tiny(L.LightningModule):
        def __init__(self, lr=0.05):
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("train_loss", loss, on_step=False, on_epoch=True, sync_dist=True)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


    if __name__ == "__main__":
        torch.manual_seed(0)
        data = DataLoader(TensorDataset(torch.randn(32, 4), torch.randn(32, 1)), batch_size=8)
        trainer = L.Trainer(strategy="ddp_spawn", accelerator="cpu", devices=2, max_epochs=2, logger=False,
                            enable_progress_bar=False, enable_model_summary=False, default_root_dir=sys.argv[2])
        model = Tiny()
        trainer.fit(model, data)
        assert trainer.state.finished, trainer.state
        assert mbx.flush(30)
        print("weights", float(model.net.weight.abs().sum()))
    """
)


def _run(script, *args, autolog_testing="1"):
    env = {**os.environ, "MODELBOX_AUTOLOG_TESTING": autolog_testing, "PYTHONPATH": os.pathsep.join(sys.path),
           "PL_DISABLE_FORK": "1"}
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=env, timeout=300)


def test_ddp_spawn_fit_logs_once_from_rank_zero(store_uri, client, tmp_path):
    script = tmp_path / "train_spawn.py"
    script.write_text(SCRIPT)
    done = _run(script, store_uri, str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Can't pickle" not in done.stderr and "modelbox" not in done.stderr.lower()
    runs = client.runs()
    assert len(runs) == 1, [(r.name, r.status) for r in runs]
    (run,) = runs
    assert run.name == "Tiny" and run.status == "finished"
    assert run.params["lr"] == 0.05 and run.params["trainer.world_size"] == 2
    assert run.params["trainer.strategy"] == "DDPStrategy"
    assert [p.step for p in run.metrics("train_loss")] == [0, 1]  # one value per epoch: rank 0 only
    assert [e.attrs["epoch"] for e in run.events("epoch")] == [0, 1]
    assert len(run.models()) == 1


def test_our_callback_and_runs_pickle_by_reference(autologged, tmp_path):
    from lightning.pytorch import Callback

    from modelbox_autolog.integrations import lightning as integration

    with mbx.start_run(name="r") as run:
        callback = integration.callback_class("lightning.pytorch")(run, None)
        assert isinstance(callback, Callback)
        copy = pickle.loads(pickle.dumps(callback))
        assert type(copy) is type(callback) and copy.run is run  # in this process: the run itself
    assert b"ModelboxLightningCallback" in pickle.dumps(callback)
