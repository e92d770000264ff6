"""Manual logging: what integrations call, usable directly around any training loop."""

from __future__ import annotations

import math
import os
import random
import tempfile

import modelbox_autolog as mbx

REQUIRES: tuple[str, ...] = ()


def main() -> None:
    random.seed(0)
    with mbx.start_run(name="manual-loop", tags={"kind": "manual"}) as run:
        run.log_params({"lr": 0.05, "optimizer": {"name": "sgd", "momentum": 0.9}, "epochs": 5})
        weight = 0.0
        for epoch in range(5):
            with run.event("epoch", epoch=epoch):
                losses = []
                for _ in range(20):
                    x = random.uniform(-1, 1)
                    error = weight * x - 3 * x
                    weight -= 0.05 * error * x
                    losses.append(error * error)
                run.log_metric("loss", sum(losses) / len(losses), step=epoch, epoch=epoch)
                run.log_metric("weight", weight, step=epoch, epoch=epoch)
            run.set_progress((epoch + 1) / 5)
        folder = tempfile.mkdtemp()
        path = os.path.join(folder, "weights.txt")
        with open(path, "w") as handle:
            handle.write(f"{weight}\n")
        run.log_model(path, name="linear-weight", framework="text", metadata={"final_loss": losses[-1]},
                      labels={"stage": "demo"}, datasets=["synthetic://uniform(-1,1)"])
        run.log_metric("sanity", math.nan)  # NaN is stored as such


if __name__ == "__main__":
    mbx.autolog()
    main()
