"""TensorBoard workload: the torch workload's plain loop (2-layer MLP on 20,000 x 20, 10 epochs,
batch 128, Adam) reporting its loss through ``SummaryWriter.add_scalar`` at every step (1,570
scalars), as most PyTorch scripts in the wild do."""

from __future__ import annotations

import tempfile

import numpy as np

DESCRIPTION = "plain torch loop, SummaryWriter.add_scalar('loss') every step: MLP on 20,000 x 20, 10 epochs, batch 128"
EPOCHS = 10


def prepare():
    import torch

    torch.set_num_threads(1)  # a tiny MLP: thread hand-offs only add noise on a shared machine
    from torch.utils.data import DataLoader, TensorDataset
    from torch.utils.tensorboard import SummaryWriter

    rng = np.random.default_rng(0)
    X = rng.standard_normal((20_000, 20), dtype=np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] * X[:, 2] + 0.1 * rng.standard_normal(20_000) > 0).astype(np.float32)
    dataset = TensorDataset(torch.from_numpy(X), torch.from_numpy(y).unsqueeze(1))
    return torch, DataLoader, SummaryWriter, dataset


def train(state) -> None:
    torch, DataLoader, SummaryWriter, dataset = state
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    loader = DataLoader(dataset, batch_size=128, shuffle=True)
    writer = SummaryWriter(tempfile.mkdtemp(prefix="bench-tb-"))
    step = 0
    for _epoch in range(EPOCHS):
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            writer.add_scalar("loss", loss.item(), step)
            step += 1
    writer.close()
