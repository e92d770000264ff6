"""Lightning workload: a small LightningModule (2-layer MLP) on 20,000 x 20, 10 epochs, batch 128,
with a validation loader; Trainer defaults (logger, checkpointing, progress bar) in both variants;
``per_step`` also logs step metrics at every step."""

from __future__ import annotations

import tempfile

import numpy as np

DESCRIPTION = "lightning Trainer.fit: 2-layer MLP on 20,000 x 20, 10 epochs, batch 128, Trainer defaults"
VARIANTS = {"per_step": {"log_every_n_steps": 1}}


def prepare():
    import lightning as L
    import torch

    torch.set_num_threads(1)  # a tiny MLP: thread hand-offs only add noise on a shared machine
    from torch.utils.data import DataLoader, TensorDataset

    class MLP(L.LightningModule):
        def __init__(self, lr: float = 1e-3, hidden: int = 64) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Sequential(torch.nn.Linear(20, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
            self.loss_fn = torch.nn.BCEWithLogitsLoss()

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = self.loss_fn(self.net(x), y)
            self.log("train_loss", loss, on_step=True, on_epoch=True)
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", self.loss_fn(self.net(x), y))

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    rng = np.random.default_rng(0)
    X = rng.standard_normal((22_000, 20), dtype=np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] * X[:, 2] + 0.1 * rng.standard_normal(22_000) > 0).astype(np.float32)
    X_t, y_t = torch.from_numpy(X), torch.from_numpy(y).unsqueeze(1)
    train_set, val_set = TensorDataset(X_t[:20_000], y_t[:20_000]), TensorDataset(X_t[20_000:], y_t[20_000:])
    return L, torch, MLP, DataLoader, train_set, val_set


def train(state) -> None:
    L, torch, MLP, DataLoader, train_set, val_set = state
    torch.manual_seed(0)
    trainer = L.Trainer(max_epochs=10, default_root_dir=tempfile.mkdtemp(prefix="bench-lightning-"))
    trainer.fit(MLP(), DataLoader(train_set, batch_size=128, shuffle=True), DataLoader(val_set, batch_size=512))
