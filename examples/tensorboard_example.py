"""A plain PyTorch loop as most scripts are written: the loss goes to TensorBoard, the accuracy
through ``mbx.log_metric``, a matplotlib figure is saved at the end. All of it lands in one run
(the script's process-level run), with the machine's CPU and memory use beside it."""

from __future__ import annotations

import os

REQUIRES = ("torch", "tensorboard", "matplotlib")


def main() -> None:
    import tempfile

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from torch.utils.tensorboard import SummaryWriter

    import modelbox_autolog as mbx

    torch.manual_seed(0)
    X = torch.randn(2_000, 10)
    y = (X[:, 0] - X[:, 1] > 0).float().unsqueeze(1)
    model = torch.nn.Sequential(torch.nn.Linear(10, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    folder = tempfile.mkdtemp(prefix="tensorboard-example-")
    writer = SummaryWriter(os.path.join(folder, "runs", "train"))
    losses = []
    for step in range(100):
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(X), y)
        loss.backward()
        optimizer.step()
        writer.add_scalar("loss", loss.item(), step)  # recorded as train/loss, step by step
        losses.append(loss.item())
        if step % 20 == 19:
            accuracy = ((model(X) > 0).float() == y).float().mean().item()
            mbx.log_metric("accuracy", accuracy, step=step)  # one line into the same run
    writer.close()
    fig, ax = plt.subplots()
    ax.plot(losses)
    ax.set_title("Training loss")
    fig.savefig(os.path.join(folder, "loss.png"))  # kept as a plot artifact of the run
    plt.close(fig)
    print(f"plain loop with TensorBoard: final loss {losses[-1]:.3f}, run {mbx.active_run().id[:8]}")


if __name__ == "__main__":
    import modelbox_autolog as mbx

    mbx.autolog()
    main()
