"""Plain loops: module-level logging, the process-level run as ``mbx.active_run()``, and how later
fits relate to it (adopted: they log into it; never adopted: one run per outermost fit)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import modelbox_autolog as mbx


def test_plain_loop_under_autolog_has_an_active_run(autologged, tmp_path):
    run = mbx.active_run()
    assert run is not None and run is mbx.active_run()  # one process-level run, not one per call
    assert run.name == "process"
    for step in range(3):
        mbx.log_metric("loss", 1.0 / (step + 1), step=step)
    mbx.log_metrics({"acc": 0.9, "f1": 0.8}, step=2)
    mbx.log_param("lr", 0.01)
    mbx.log_params({"optimizer": {"name": "adam"}})
    notes = tmp_path / "notes.txt"
    notes.write_text("plain loop")
    assert mbx.log_artifact(str(notes)) is not None
    assert mbx.flush(10)
    (stored,) = autologged.runs()
    assert stored.id == run.id and stored.status == "running" and stored.tags["scope"] == "process"
    assert [(p.step, p.value) for p in stored.metrics("loss")] == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]
    assert stored.metrics("acc")[0].step == 2
    assert {"lr": 0.01, "optimizer.name": "adam"}.items() <= stored.params.items()
    assert [a.name for a in stored.artifacts()] == ["notes.txt"]


def test_module_level_logging_goes_to_the_open_run(autologged):
    with mbx.start_run(name="mine") as run:
        mbx.log_metric("x", 1.0)
        assert mbx.active_run() is run
    mbx.flush(10)
    (stored,) = autologged.runs()
    assert stored.id == run.id and stored.metric_keys() == ["x"]


def test_without_autolog_logging_opens_a_run(store_uri, client):
    from modelbox_autolog import _config

    _config.set_current(_config.build_config(backend=store_uri, capture_console=False))
    assert mbx.active_run() is None  # nothing open, autolog not called: None, as before
    mbx.log_metric("x", 2.0)
    run = mbx.active_run()
    assert run is not None and run.name == "process"
    mbx.flush(10)
    assert [p.value for p in client.run(run.id).metrics("x")] == [2.0]


def test_fits_after_manual_logging_log_into_the_process_run(autologged):
    from sklearn.linear_model import LogisticRegression

    X = np.random.default_rng(0).normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(int)
    mbx.log_param("dataset", "v2")  # the script logs by hand: its process-level run is the active run
    LogisticRegression().fit(X, y)
    mbx.flush(10)
    (stored,) = autologged.runs()  # as under start_run: the fit logs into the active run
    assert stored.name == "process" and stored.params["dataset"] == "v2"
    assert stored.params["C"] == 1.0 and "training_accuracy_score" in stored.metric_keys()


def test_scripts_that_never_log_by_hand_keep_one_run_per_fit(autologged, tmp_path):
    torch = pytest.importorskip("torch")
    from sklearn.linear_model import LogisticRegression

    torch.save(torch.nn.Linear(2, 1).state_dict(), tmp_path / "w.pt")  # an automatic capture: a background run
    X = np.random.default_rng(0).normal(size=(40, 3))
    LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    LogisticRegression(C=2.0).fit(X, (X[:, 1] > 0).astype(int))
    mbx.flush(10)
    names = sorted(r.name for r in autologged.runs())
    assert names == ["LogisticRegression", "LogisticRegression", "process"]


def test_non_zero_rank_logs_nothing(store_uri, client, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    mbx.autolog(backend=store_uri, capture_console=False)
    assert isinstance(mbx.active_run(), mbx.NullRun)
    mbx.log_metric("loss", 1.0)
    mbx.log_param("lr", 0.1)
    mbx.flush(10)
    assert client.runs() == []


def test_process_run_ends_at_exit_in_a_real_script(store_uri, client, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f"""
        import modelbox_autolog as mbx
        mbx.autolog(backend={store_uri!r}, capture_console=False)
        for step in range(5):
            mbx.log_metric("loss", 1.0 / (step + 1), step=step)
        print(mbx.active_run().id)
    """))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    run = client.run(done.stdout.strip())
    assert run.status == "finished" and run.experiment == "train" and len(run.metrics("loss")) == 5
