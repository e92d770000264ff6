"""Distributed training: a real two-process gloo DDP run on CPU, where only rank 0 logs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():
    pytest.skip("torch.distributed is not available", allow_module_level=True)

import modelbox_autolog as mbx  # noqa: E402

SCRIPT = textwrap.dedent(
    """
    import os, sys
    import modelbox_autolog as mbx
    mbx.autolog(experiment="ddp", capture_console=False, capture_env=False)

    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = DistributedDataParallel(torch.nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1 * (rank + 1))
    data = TensorDataset(torch.randn(64, 4), torch.randn(64, 1))
    loader = DataLoader(data, batch_size=8, sampler=DistributedSampler(data))
    for epoch in range(2):
        loader.sampler.set_epoch(epoch)
        for xb, yb in loader:
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(xb), yb).backward()
            optimizer.step()
        torch.save(model.module.state_dict(), os.path.join(sys.argv[1], f"rank{rank}-epoch{epoch}.pt"))
    dist.barrier()
    dist.destroy_process_group()
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_only_rank_zero_logs(store_uri, client, tmp_path):
    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT)
    out = tmp_path / "out"
    out.mkdir()
    port = str(_free_port())
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "MODELBOX_BACKEND": store_uri,
               "PYTHONPATH": repo + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, str(script), str(out)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    for proc in procs:
        try:
            stdout, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            for other in procs:
                other.kill()
            raise
        outputs.append(stdout)
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert len(list(out.iterdir())) == 4  # both ranks really trained and saved

    mbx.flush(10)
    runs = client.runs()
    assert len(runs) == 1, runs
    run = runs[0]
    assert run.status == "finished"  # the process-level run ends at exit
    assert run.params["distributed.rank"] == 0 and run.params["distributed.world_size"] == 2
    assert float(run.params["optimizer.lr"]) == pytest.approx(0.1)  # rank 1 used 0.2
    paths = [os.path.basename(e.attrs["path"]) for e in run.events("checkpoint_saved")]
    assert paths == ["rank0-epoch0.pt", "rank0-epoch1.pt"]
    assert len(run.events("data_loading")) == 2
    assert {m.name for m in client.models()} == {"rank0-epoch0", "rank0-epoch1"}
