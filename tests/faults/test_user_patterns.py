"""Everyday patterns that used to change what was stored without a word: files rewritten or deleted
after logging them, a failed run's reason and console, values that do not fit as given."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

import modelbox_autolog as mbx
from modelbox_autolog import _exporter

from .conftest import child_env, run_script

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def logging_to(tmp_path):
    uri = f"sqlite:///{tmp_path}/store/modelbox.db"
    mbx.autolog(backend=uri, frameworks=[], capture_console=False, capture_env=False)
    return mbx.Client(uri)


def _exporter_of(client) -> _exporter.Exporter:
    return _exporter._exporters[client.uri]


def test_log_artifact_keeps_the_content_the_file_had_at_the_call(logging_to, tmp_path, monkeypatch, figures):
    monkeypatch.setenv("MODELBOX_AUTOLOG_TESTING", "0")
    plot = tmp_path / "plot.txt"
    big = tmp_path / "weights.bin"
    with mbx.start_run() as run:
        for epoch in range(3):  # the same file rewritten every epoch, logged after each write
            plot.write_text(f"epoch {epoch}")
            run.log_artifact(plot)
        temporary = tmp_path / "tmp-table.csv"
        temporary.write_text("a,b\n1,2\n")
        run.log_artifact(temporary)
        temporary.unlink()  # a temporary file, deleted right after logging it
        big.write_bytes(b"\x01" * (20 << 20))  # larger than what is copied at the call: hard-linked
        run.log_artifact(big)
        big.unlink()
        big.write_bytes(b"\x02" * (20 << 20))  # a new file under the same name: the logged one is kept
    assert mbx.flush(30) is True
    stored = {}
    for artifact in logging_to.run(run.id).artifacts():
        with open(artifact.path_or_uri, "rb") as handle:
            stored.setdefault(artifact.name, []).append(handle.read())
    assert stored["plot.txt"] == [b"epoch 0", b"epoch 1", b"epoch 2"]
    assert stored["tmp-table.csv"] == [b"a,b\n1,2\n"]
    assert stored["weights.bin"] == [b"\x01" * (20 << 20)]
    figures(rewritten_then_logged=3, deleted_after_logging=2, stored_as_at_the_call=5, dropped=0)


def test_a_large_file_rewritten_in_place_before_it_is_stored_is_refused_and_counted(tmp_path, tmpfs, monkeypatch, figures):
    """On another filesystem than the journal, a large file is only fingerprinted at the call: if it
    changes before the exporter copies it, it is refused with that reason, and flush says so."""
    monkeypatch.setenv("MODELBOX_AUTOLOG_TESTING", "0")
    other_disk = tmpfs("64m")
    uri = f"sqlite:///{tmp_path}/store/modelbox.db"
    mbx.autolog(backend=uri, frameworks=[], capture_console=False, capture_env=False, silent=True)
    checkpoint = os.path.join(other_disk.path, "checkpoint.bin")
    with open(checkpoint, "wb") as handle:
        handle.write(b"\x01" * (20 << 20))
    from modelbox_autolog import _patching
    from tests.toylib import Trainer

    def hook(call):  # a fit in progress: the exporter holds records back, as it does during training
        yield None

    _patching.patch_call("toy", Trainer, "fit", hook, group="toy.fit")
    try:
        with mbx.start_run() as run:
            def epoch_end(epoch, loss):
                run.log_artifact(checkpoint)
                with open(checkpoint, "r+b") as handle:  # overwritten in place by the next save
                    handle.write(b"\x02" * 1024)

            Trainer(epochs=1).fit([1.0], callbacks=[epoch_end])
    finally:
        _patching.revert("toy")
    assert mbx.flush(30) is False
    exporter = _exporter.all_exporters()[0]
    assert exporter.stats["dropped"] == 1
    assert list(exporter.drop_reasons) == ["the file changed or was removed before it could be stored"]
    assert mbx.Client(uri).run(run.id).artifacts() == []
    figures(refused=1, reason=list(exporter.drop_reasons)[0], flush_returned=False)


def test_values_are_stored_as_given_or_refused_with_a_warning_naming_the_key(logging_to, caplog, figures):
    caplog.set_level(logging.WARNING, logger="modelbox_autolog")
    import numpy as np

    with mbx.start_run() as run:
        run.log_param("big", "x" * 10_000_000)  # 10 MB: stored whole
        run.log_metric("loss", 1.0, step=2.0)  # a whole float: stored as step 2
        run.log_metric("loss", 1.0, step=np.int64(3))
        run.log_metric("loss", 1.0, step=1.5)  # not a whole number: refused
        run.log_metric("loss", 1.0, step=1.5)  # (said once per key)
        run.log_metric("acc", 1.0, step=2**63)  # outside 64 bits: refused, the warning names the key
        run.log_metric("acc", 1.0, epoch=-(2**63))  # the value that means "no epoch": refused
        run.log_metric("acc", 1.0, epoch=-(2**63) + 1)  # the lowest storable epoch: kept
        run.set_progress(7)  # not a fraction: refused, not clamped
        run.set_progress(0.25)
        run.log_metric("", 1.0)  # no store takes an empty key
        run.log_metric("k" * 5000, 1.0)
    run.log_metric("late", 3.0)  # after the run ended: stored, with a warning
    run.log_metric("late", 4.0)
    assert mbx.flush(10) is True
    stored = logging_to.run(run.id)
    assert stored.params["big"] == "x" * 10_000_000
    assert [p.step for p in stored.metrics("loss")] == [2, 3]
    assert [(p.step, p.epoch) for p in stored.metrics("acc")] == [(0, -(2**63) + 1)]
    assert stored.progress == 0.25
    assert [p.value for p in stored.metrics("late")] == [3.0, 4.0]
    exporter = _exporter_of(logging_to)
    assert exporter.reject_reasons == {"step refused": 3, "epoch refused": 1, "progress refused": 1, "metric key refused": 2}
    assert exporter.stats["rejected"] == 7 and exporter.stats["after_end"] == 2 and exporter.stats["dropped"] == 0
    messages = [r.getMessage() for r in caplog.records]
    assert sum("'loss'" in m and "1.5" in m for m in messages) == 1
    assert any("'acc'" in m and "64-bit" in m for m in messages)
    assert any("set_progress(7)" in m for m in messages)
    assert sum("late" in m and "already ended" in m for m in messages) == 1
    figures(refused_with_reason=dict(exporter.reject_reasons), stored_after_end_with_warning=2)


SCRIPT = """
import sys, time
import modelbox_autolog as mbx
mbx.autolog(backend={uri!r}, capture_env=False)
from sklearn.linear_model import LogisticRegression
import numpy as np
X, y = np.random.RandomState(0).rand(40, 3), np.arange(40) % 2
print("loading data: done")
for pct in (10, 50, 100):  # a progress bar drawn with carriage returns
    sys.stdout.write(f"\\rtraining {{pct}}%")
    sys.stdout.flush()
print()
LogisticRegression().fit(X, y)
print("accuracy after the first fit: 0.9")
LogisticRegression().fit(X, np.array(["a"] * 40))  # one class only: sklearn raises
"""


def test_a_failed_run_stores_its_reason_and_the_whole_console(tmp_path, figures):
    pytest.importorskip("sklearn")
    uri = f"sqlite:///{tmp_path}/store/modelbox.db"
    env = child_env(tmp_path)
    result = subprocess.run([sys.executable, "-c", SCRIPT.format(uri=uri)], env=env, capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode == 1 and "ValueError" in result.stderr
    runs = sorted(mbx.Client(uri).runs(), key=lambda r: r.start_time)
    assert [r.status for r in runs] == ["finished", "failed"]
    failure = runs[1].failure
    assert failure.type == "ValueError" and "class" in failure.message and "Traceback" in failure.traceback
    consoles = []
    for run in runs:
        (console,) = [a for a in run.artifacts() if a.kind == "console"]
        with open(console.path_or_uri, encoding="utf-8") as handle:
            consoles.append(handle.read())
    assert consoles[0].startswith("loading data: done\ntraining 100%\n")  # before the fit; the bar's last frame
    assert "training 10%" not in consoles[0] and "accuracy after the first fit: 0.9" in consoles[0]
    assert "Traceback (most recent call last)" in consoles[1] and "ValueError" in consoles[1]  # up to exit
    shown = subprocess.run([sys.executable, "-m", "modelbox_autolog", "--backend", uri, "show", runs[1].id], env=env,
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "ValueError" in shown.stdout and "Traceback" in shown.stdout
    figures(statuses=[r.status for r in runs], failure_type=failure.type, console_parts=len(consoles))


INTERRUPTED_SCRIPT = """
import warnings
import modelbox_autolog as mbx
mbx.autolog(backend={uri!r}, capture_env=False, system_metrics_interval=None)
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
warnings.simplefilter("ignore", ConvergenceWarning)
X, y = np.random.RandomState(0).rand(40, 3), np.arange(40) % 2
print("loading data: done")
plt.plot([3.0, 2.0, 1.0])
plt.savefig("baseline.png")  # saved with no run active: opens the process-level run
print("baseline plotted")
MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, verbose=True).fit(X, y)  # a run of its own
print("mlp fitted")
MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, verbose=True).fit(X, y)
print("summary: done")
"""


def test_a_fit_interrupting_the_process_run_takes_only_its_own_console(tmp_path):
    """The process-level run is open, fits open runs of their own: each fit's console.log holds
    what it printed, and the process-level run gets the console back after each fit, in one file."""
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    uri = f"sqlite:///{tmp_path}/store/modelbox.db"
    result = subprocess.run([sys.executable, "-c", INTERRUPTED_SCRIPT.format(uri=uri)], env=child_env(tmp_path),
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    runs = sorted(mbx.Client(uri).runs(), key=lambda r: r.start_time)
    assert [r.name for r in runs] == ["process", "MLPClassifier", "MLPClassifier"]
    consoles = []
    for run in runs:
        (console,) = [a for a in run.artifacts() if a.kind == "console"]
        with open(console.path_or_uri, encoding="utf-8") as handle:
            consoles.append(handle.read().splitlines())
    assert consoles[0] == ["loading data: done", "baseline plotted", "mlp fitted", "summary: done"]
    for lines, iterations in zip(consoles[1:], (3, 2), strict=True):
        assert [line.split(",")[0] for line in lines] == [f"Iteration {i}" for i in range(1, iterations + 1)]


def test_killed_run_reason_in_show_and_json(tmp_path):
    uri = f"sqlite:///{tmp_path}/store/modelbox.db"
    env = child_env(tmp_path)
    done = run_script(f"""
        import os, signal
        import modelbox_autolog as mbx
        mbx.autolog(backend={uri!r}, frameworks=[], capture_console=False, capture_env=False)
        run = mbx.start_run(name="doomed")
        run.log_metric("x", 1.0)
        assert mbx.flush(10)
        print(run.id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """, env)
    assert done.returncode == -9
    run_id = done.stdout.strip()
    shown = subprocess.run([sys.executable, "-m", "modelbox_autolog", "--backend", uri, "show", run_id, "--json"], env=env,
                           capture_output=True, text=True, timeout=60)
    import json

    doc = json.loads(shown.stdout)
    assert doc["status"] == "killed" and doc["failure"]["type"] == "ProcessLost"


def test_saving_a_model_after_its_fit_prints_nothing_of_ours(tmp_path):
    """fit, then joblib.dump: the integration links the file to the fit's (ended) run; that is ours
    to do, not the user logging into an ended run, so no warning is printed."""
    pytest.importorskip("sklearn")
    uri = f"sqlite:///{tmp_path}/store/modelbox.db"
    result = run_script(f"""
        import joblib
        import numpy as np
        import modelbox_autolog as mbx
        mbx.autolog(backend={uri!r})
        from sklearn.linear_model import LogisticRegression
        X = np.random.default_rng(0).normal(size=(100, 3))
        model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
        joblib.dump(model, {str(tmp_path / "model.joblib")!r})
    """, child_env(tmp_path), timeout=120)
    assert result.returncode == 0, result.stderr
    assert not [line for line in result.stderr.splitlines() if "modelbox" in line], result.stderr
    (run,) = mbx.Client(uri).runs()
    assert any(e.name == "model_saved" for e in run.events()) and len(run.models()) == 2  # the fit's model, the saved file
