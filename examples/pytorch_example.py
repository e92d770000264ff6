"""PyTorch: a plain training loop (no fit method). The optimizer's hyperparameters, the
DataLoader's wait-versus-compute time per epoch, and every ``torch.save`` (a checkpoint each
epoch, the final weights as a model) are recorded; ``torch.load`` is recorded as lineage."""

from __future__ import annotations

import os

REQUIRES = ("torch",)


def main() -> None:
    import tempfile

    import torch
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    X = torch.randn(2_000, 10)
    y = (X[:, 0] + 0.5 * X[:, 1] * X[:, 2] > 0).float().unsqueeze(1)
    train = DataLoader(TensorDataset(X[:1_600], y[:1_600]), batch_size=64, shuffle=True)
    model = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    folder = tempfile.mkdtemp(prefix="pytorch-example-")

    for epoch in range(5):
        for xb, yb in train:
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
        torch.save({"epoch": epoch, "model_state_dict": model.state_dict(),
                    "optimizer_state_dict": optimizer.state_dict(), "loss": loss.item()},
                   os.path.join(folder, "checkpoint.pt"))
    torch.save(model.state_dict(), os.path.join(folder, "mlp.pt"))

    model.load_state_dict(torch.load(os.path.join(folder, "mlp.pt")))
    with torch.no_grad():
        accuracy = ((model(X[1_600:]) > 0).float() == y[1_600:]).float().mean().item()
    print(f"PyTorch MLP: 5 epochs, test accuracy {accuracy:.3f}")


if __name__ == "__main__":
    import modelbox_autolog as mbx

    mbx.autolog()
    main()
