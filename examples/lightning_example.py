"""Lightning: a LightningModule with ``save_hyperparameters`` and ``self.log`` metrics, trained
with a ``ModelCheckpoint`` keeping the best two epochs by validation loss. Hyperparameters,
per-epoch metrics, epoch timings, checkpoint events (with their scores) and the best checkpoint
as a Model are recorded."""

from __future__ import annotations

REQUIRES = ("lightning", "torch")


def main() -> None:
    import tempfile

    import lightning as L
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint
    from torch.utils.data import DataLoader, TensorDataset

    class Classifier(L.LightningModule):
        def __init__(self, lr: float = 1e-2, hidden: int = 32) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Sequential(torch.nn.Linear(10, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
            self.loss_fn = torch.nn.BCEWithLogitsLoss()

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = self.loss_fn(self.net(x), y)
            self.log("train_loss", loss, on_step=False, on_epoch=True)
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            logits = self.net(x)
            self.log("val_loss", self.loss_fn(logits, y))
            self.log("val_acc", ((logits > 0).float() == y).float().mean())

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    torch.manual_seed(0)
    X = torch.randn(2_000, 10)
    y = (X[:, 0] + 0.5 * X[:, 1] * X[:, 2] > 0).float().unsqueeze(1)
    train = DataLoader(TensorDataset(X[:1_600], y[:1_600]), batch_size=64, shuffle=True)
    val = DataLoader(TensorDataset(X[1_600:], y[1_600:]), batch_size=200)
    folder = tempfile.mkdtemp(prefix="lightning-example-")
    checkpoint = ModelCheckpoint(dirpath=folder, monitor="val_loss", save_top_k=2)
    trainer = L.Trainer(max_epochs=5, callbacks=[checkpoint], logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=folder)
    trainer.fit(Classifier(), train, val)
    print(f"Lightning classifier: best val_loss {float(checkpoint.best_model_score):.3f}")


if __name__ == "__main__":
    import modelbox_autolog as mbx

    mbx.autolog()
    main()
