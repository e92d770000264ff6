"""PyTorch workload: a plain training loop (no fit call) over a DataLoader, 2-layer MLP on
20,000 x 20, 10 epochs, batch 128, Adam, ``torch.save`` of the state dict after every epoch."""

from __future__ import annotations

import os
import tempfile

import numpy as np

DESCRIPTION = "plain torch loop: 2-layer MLP on 20,000 x 20, 10 epochs, batch 128, torch.save(state_dict) per epoch"
EPOCHS = 10


def prepare():
    import torch

    torch.set_num_threads(1)  # a tiny MLP: thread hand-offs only add noise on a shared machine
    from torch.utils.data import DataLoader, TensorDataset

    rng = np.random.default_rng(0)
    X = rng.standard_normal((20_000, 20), dtype=np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] * X[:, 2] + 0.1 * rng.standard_normal(20_000) > 0).astype(np.float32)
    dataset = TensorDataset(torch.from_numpy(X), torch.from_numpy(y).unsqueeze(1))
    return torch, DataLoader, dataset, tempfile.mkdtemp(prefix="bench-torch-")


def train(state) -> None:
    torch, DataLoader, dataset, folder = state
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    loader = DataLoader(dataset, batch_size=128, shuffle=True)
    for _epoch in range(EPOCHS):
        for xb, yb in loader:
            optimizer.zero_grad()
            loss_fn(model(xb), yb).backward()
            optimizer.step()
        torch.save(model.state_dict(), os.path.join(folder, "model.pt"))
