"""Plain PyTorch autologging on real torch: checkpoints, optimizer params, DataLoader timing."""

from __future__ import annotations

import io
import os

import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader, TensorDataset  # noqa: E402
from torch.utils.data import dataloader as torch_dataloader  # noqa: E402

import modelbox_autolog as mbx  # noqa: E402


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))


def _loader(num_workers=0):
    generator = torch.Generator().manual_seed(0)
    X, y = torch.randn(96, 4, generator=generator), torch.randn(96, 1, generator=generator)
    return DataLoader(TensorDataset(X, y), batch_size=16, shuffle=True, num_workers=num_workers)


def _train(model, optimizer, loader, epochs, save_dir):
    for epoch in range(epochs):
        for xb, yb in loader:
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(xb), yb).backward()
            optimizer.step()
        torch.save(model.state_dict(), os.path.join(save_dir, "model.pt"))
        torch.save({"epoch": epoch, "model_state_dict": model.state_dict(),
                    "optimizer_state_dict": optimizer.state_dict()}, os.path.join(save_dir, "ckpt.pt"))


def _only_run(client):
    mbx.flush(10)
    runs = client.runs()
    assert len(runs) == 1, runs
    return runs[0]


def test_training_loop_with_saves_and_two_worker_loader(autologged, tmp_path):
    model = _model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.95), weight_decay=1e-4)
    _train(model, optimizer, _loader(num_workers=2), epochs=2, save_dir=str(tmp_path))

    run = _only_run(autologged)
    assert run.status == "running"  # the process-level run stays open until exit
    assert run.tags["framework"] == "pytorch"
    params = run.params
    assert params["optimizer.name"] == "Adam"
    assert float(params["optimizer.lr"]) == pytest.approx(0.01)
    assert params["optimizer.betas"] == [0.8, 0.95]
    assert float(params["optimizer.weight_decay"]) == pytest.approx(1e-4)

    loading = run.events("data_loading")
    assert [e.attrs["epoch"] for e in loading] == [0, 1]
    for event in loading:
        assert event.attrs["num_workers"] == 2
        assert event.attrs["batches"] == 6
        assert event.attrs["wait_s"] >= 0 and event.attrs["compute_s"] >= 0
        assert 0 <= event.attrs["wait_fraction"] <= 1

    saves = run.events("checkpoint_saved")
    assert len(saves) == 4
    by_kind = {}
    for event in saves:
        by_kind.setdefault(event.attrs["kind"], []).append(event)
        assert event.attrs["bytes"] == os.path.getsize(event.attrs["path"])
        assert event.duration_s is not None and event.duration_s >= 0
    assert len(by_kind["state_dict"]) == 2
    assert [e.attrs["epoch"] for e in by_kind["checkpoint"]] == [0, 1]

    models = {(m.name, m.version): m for m in autologged.models()}
    assert set(models) == {("model", 1), ("model", 2), ("ckpt", 1), ("ckpt", 2)}
    assert all(m.run_id == run.id and m.framework == "pytorch" for m in models.values())
    loaded = autologged.load_model(models[("model", 2)].id)
    for key, tensor in model.state_dict().items():
        assert torch.equal(loaded[key], tensor)
    checkpoint = autologged.load_model(models[("ckpt", 2)].id)
    assert checkpoint["epoch"] == 1 and "optimizer_state_dict" in checkpoint


def test_load_and_module_and_torchscript_round_trip(autologged, tmp_path):
    model = _model()
    module_path, script_path = tmp_path / "whole.pt", tmp_path / "scripted.pt"
    torch.save(model, module_path)
    assert isinstance(torch.load(module_path, weights_only=False), torch.nn.Module)
    torch.jit.save(torch.jit.script(model), str(script_path))
    torch.jit.load(str(script_path))

    run = _only_run(autologged)
    loads = run.events("checkpoint_loaded")
    assert [e.attrs["kind"] for e in loads] == ["module", "script_module"]
    assert {i.ref for i in run.inputs()} == {str(module_path), str(script_path)}

    models = {m.name: m for m in autologged.models()}
    x = torch.randn(3, 4)
    whole = autologged.load_model(models["whole"].id)
    assert isinstance(whole, torch.nn.Sequential)
    assert torch.allclose(whole(x), model(x))
    scripted = autologged.load_model(models["scripted"].id)
    assert isinstance(scripted, torch.jit.ScriptModule)
    assert torch.allclose(scripted(x), model(x))


def test_buffers_and_file_objects_are_events_without_bytes(autologged, tmp_path):
    model = _model()
    buffer = io.BytesIO()
    assert torch.save(model.state_dict(), buffer) is None
    assert buffer.getbuffer().nbytes > 0
    with open(tmp_path / "handle.pt", "wb") as handle:
        torch.save(model.state_dict(), handle)
    buffer.seek(0)
    assert set(torch.load(buffer)) == set(model.state_dict())

    run = _only_run(autologged)
    saves = run.events("checkpoint_saved")
    assert [e.attrs.get("bytes") for e in saves] == [None, None]
    assert saves[0].attrs.get("path") is None
    assert saves[1].attrs["path"] == str(tmp_path / "handle.pt")
    assert autologged.models() == []


def test_a_failing_save_raises_the_same_exception(store_uri, client, tmp_path):
    target = tmp_path / "missing-dir" / "model.pt"
    with pytest.raises(RuntimeError) as plain:
        torch.save({"w": torch.ones(2)}, str(target))
    mbx.autolog(backend=store_uri, experiment="test", capture_console=False)
    with pytest.raises(RuntimeError) as logged:
        torch.save({"w": torch.ones(2)}, str(target))
    assert str(logged.value) == str(plain.value)
    assert logged.value.__cause__ is None or type(logged.value.__cause__) is type(plain.value.__cause__)

    run = _only_run(client)
    failed = run.events("checkpoint_save_failed")
    assert len(failed) == 1 and failed[0].attrs["path"] == str(target)
    assert "RuntimeError" in failed[0].attrs["error"]


def test_records_go_to_the_active_run(autologged, tmp_path):
    with mbx.start_run(name="manual") as run:
        optimizer = torch.optim.SGD(_model().parameters(), lr=0.1, momentum=0.9)
        torch.save(optimizer.state_dict(), tmp_path / "opt.pt")
    view = _only_run(autologged)
    assert view.id == run.id and view.name == "manual"
    assert view.params["optimizer.name"] == "SGD"
    assert [e.attrs["kind"] for e in view.events("checkpoint_saved")] == ["optimizer_state"]
    assert [a.name for a in view.artifacts()] == ["opt.pt"]
    assert autologged.models() == []


def test_disable_restores_the_originals(store_uri):
    originals = (torch.save, torch.load, torch.jit.save, torch.jit.load, torch.optim.Optimizer.__init__,
                 torch_dataloader._BaseDataLoaderIter.__dict__["__next__"])
    mbx.autolog(backend=store_uri, capture_console=False)
    assert torch.save is not originals[0]
    assert torch_dataloader._BaseDataLoaderIter.__dict__["__next__"] is not originals[5]
    mbx.autolog(disable=True)
    restored = (torch.save, torch.load, torch.jit.save, torch.jit.load, torch.optim.Optimizer.__init__,
                torch_dataloader._BaseDataLoaderIter.__dict__["__next__"])
    assert all(a is b for a, b in zip(originals, restored, strict=True))
