"""Exiting with work left: a large backlog and no server, many quick fits. At exit, whatever is
not stored is in the journal or counted, and one line says so; replaying it stores it all once."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

import modelbox_autolog as mbx

from .conftest import child_env, run_script

pytestmark = pytest.mark.timeout(300)

REPORT = re.compile(r"modelbox-autolog: (\d+) record\(s\) for \S+ are kept in the journal (\S+);")
DROPPED = re.compile(r"(\d+) record\(s\) were dropped")


def _exit_report(stderr: str) -> tuple[int, int, str | None]:
    ours = [line for line in stderr.splitlines() if line.startswith("modelbox-autolog:")]
    assert len(ours) <= 2, stderr  # at most one warning for the cause, and one exit line; never one per record
    kept = REPORT.search(stderr)
    dropped = DROPPED.search(stderr)
    return (int(kept.group(1)) if kept else 0), (int(dropped.group(1)) if dropped else 0), (kept.group(2) if kept else None)


def _plots_of(client, run_ids, timeout: float = 90.0) -> dict[str, set[str]]:
    """The plot artifacts of these runs, once the detached plot worker has stored them all (it
    draws after the script exited: polled up to ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        found = {run_id: {a.name for a in client.run(run_id).artifacts() if a.kind == "plot"} for run_id in run_ids}
        if all(found.values()) or time.monotonic() > deadline:
            return found
        time.sleep(0.25)


BACKLOG = 300_000  # past queue_capacity (250,000): batches beyond it are read back from the journal, as with millions


def test_a_large_backlog_with_no_server_and_a_2_second_budget_is_all_journaled(tmp_path, server_factory, figures):
    server = server_factory()  # its port, but not started: nothing answers there yet
    env = child_env(tmp_path, MODELBOX_SHUTDOWN_TIMEOUT="2")
    started = time.time()
    result = run_script(f"""
        import time
        import modelbox_autolog as mbx
        mbx.autolog(backend={server.uri!r}, frameworks=[], capture_console=False, capture_env=False)
        with mbx.start_run(name="backlog") as run:
            print(run.id, flush=True)
            for i in range({BACKLOG}):
                run.log_metric("loss", 0.5, step=i)
        print(time.time(), flush=True)
    """, env, timeout=240)
    exited = time.time()
    assert result.returncode == 0, result.stderr
    run_id, loop_end = result.stdout.split()
    kept, dropped, journal = _exit_report(result.stderr)
    assert kept + dropped == BACKLOG + 2  # RunStart, the points, RunUpdate: every one accounted for
    assert dropped == 0 and journal is not None
    exit_s = exited - float(loop_end)
    assert exit_s < 2 + 3.0  # the budget, plus journaling what is still queued and the interpreter's exit

    server.start()
    synced = subprocess.run([sys.executable, "-m", "modelbox_autolog", "sync", journal], env=env, capture_output=True,
                            text=True, timeout=240)
    assert synced.returncode == 0, synced.stderr + synced.stdout
    run = mbx.Client(server.uri).run(run_id)
    steps = [p.step for p in run.metrics("loss")]
    assert steps == list(range(BACKLOG)) and run.status == "finished"
    figures(logged=BACKLOG + 2, stored_at_exit=0, journaled=kept, dropped=dropped, time_to_exit_s=round(exit_s, 2),
            budget_s=2, log_s=round(float(loop_end) - started, 1), stored_after_sync=len(steps) + 2)


def test_two_thousand_quick_fits_then_exit_keep_every_run(tmp_path, figures):
    """Default settings, diagnostic plots on: drawing (a quarter of a second a fit) yields to the
    fits' models and metrics, so every run and every model is kept; the fits whose plots were
    skipped say so on their run."""
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    uri = f"sqlite:///{tmp_path}/store/modelbox.db"
    env = child_env(tmp_path)
    result = run_script(f"""
        import time
        import modelbox_autolog as mbx
        mbx.autolog(backend={uri!r})
        from sklearn.datasets import load_iris
        from sklearn.svm import SVC
        X, y = load_iris(return_X_y=True)
        started = time.time()
        for _ in range(2000):
            SVC().fit(X, y)
        print(time.time() - started, time.time(), flush=True)
    """, env, timeout=280)
    exited = time.time()
    assert result.returncode == 0, result.stderr
    loop_s, loop_end = map(float, result.stdout.split())
    kept, dropped, journal = _exit_report(result.stderr)
    assert dropped == 0, result.stderr
    client = mbx.Client(uri)
    stored_at_exit = len([r for r in client.runs() if r.status == "finished"])
    if journal is not None:  # what the exit budget could not store is journaled: the next process delivers it
        next_run = run_script(f"""
            import modelbox_autolog as mbx
            mbx.autolog(backend={uri!r}, frameworks=[], capture_console=False, capture_env=False)
            assert mbx.flush(120)
        """, env, timeout=200)
        assert next_run.returncode == 0, next_run.stderr
    runs = client.runs()
    assert len(runs) == 2000 and {r.status for r in runs} == {"finished"}
    models = client.models()
    assert len(models) == 2000 and all(f.bytes for m in models for f in m.files)
    assert all(len(r.metric_keys()) >= 1 for r in runs[:20])
    with_plots = [r for r in runs if r.tags.get("plots_skipped") != "true"]
    skipped = [r for r in runs if r.tags.get("plots_skipped") == "true"]
    assert with_plots and skipped  # the first fits have their plots; the loop outran drawing
    for names in _plots_of(client, [r.id for r in with_plots[:3]]).values():
        assert names >= {"training_confusion_matrix.png"}
    for run in skipped[:3]:
        assert not [a for a in run.artifacts() if a.kind == "plot"]
        (event,) = run.events("plots_not_logged")
        assert event.attrs["reason"]
    figures(fits=2000, loop_s=round(loop_s, 1), time_to_exit_s=round(exited - loop_end, 1), runs_stored_at_exit=stored_at_exit,
            records_journaled_at_exit=kept, dropped=dropped, runs_after_replay=len(runs), models_after_replay=len(models),
            runs_with_plots=len(with_plots), runs_with_plots_skipped=len(skipped))


def test_a_short_script_exits_without_waiting_for_its_plots_and_gets_them(tmp_path):
    """The user never waits for our plots: a one-fit script exits at once (its plot job handed to
    the detached plot worker) and its plots are in the store a bounded time after it exited."""
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    uri = f"sqlite:///{tmp_path}/store/modelbox.db"
    result = run_script(f"""
        import time
        import modelbox_autolog as mbx
        mbx.autolog(backend={uri!r})
        from sklearn.datasets import load_breast_cancer
        from sklearn.ensemble import RandomForestClassifier
        X, y = load_breast_cancer(return_X_y=True)
        print(RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y).score(X, y))
        print(time.time(), flush=True)
    """, child_env(tmp_path), timeout=120)
    exited = time.time()
    assert result.returncode == 0, result.stderr
    assert not [line for line in result.stderr.splitlines() if line.startswith("modelbox-autolog:")], result.stderr
    client = mbx.Client(uri)
    (run,) = client.runs()
    assert run.status == "finished" and run.models()  # stored by the script itself, before it exited
    assert "plots_skipped" not in run.tags and not run.events("plots_not_logged")
    assert _plots_of(client, [run.id])[run.id] == {
        "training_confusion_matrix.png", "training_roc_curve.png", "training_precision_recall_curve.png"}
    delivered = time.time()
    # The exit did not wait for drawing (a quarter of a second, plus the worker's start), and the
    # worker delivered within a bounded time after it.
    assert exited - float(result.stdout.split()[-1]) < 5.0 and delivered - exited < 90
    deadline = time.monotonic() + 30
    while list((tmp_path / "journal").glob("*/plots/*.job")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not list((tmp_path / "journal").glob("*/plots/*.job"))  # every job drawn, stored and removed


def test_quick_fits_whose_background_work_outlasts_the_exit_budget_are_all_accounted_for(tmp_path, figures):
    """With diagnostic plots (drawn per fit, off the training thread) the background work of many
    quick fits can outlast a short exit budget: every run is kept; each background item that could
    not run is counted and reported in the exit line; nothing vanishes silently."""
    pytest.importorskip("sklearn")
    uri = f"sqlite:///{tmp_path}/store/modelbox.db"
    env = child_env(tmp_path, MODELBOX_SHUTDOWN_TIMEOUT="2")
    result = run_script(f"""
        import modelbox_autolog as mbx
        mbx.autolog(backend={uri!r}, log_plots=True)
        from sklearn.datasets import load_iris
        from sklearn.svm import SVC
        X, y = load_iris(return_X_y=True)
        for _ in range(200):
            SVC().fit(X, y)
    """, env, timeout=280)
    assert result.returncode == 0, result.stderr
    kept, dropped, journal = _exit_report(result.stderr)
    if journal is not None:
        next_run = run_script(f"""
            import modelbox_autolog as mbx
            mbx.autolog(backend={uri!r}, frameworks=[], capture_console=False, capture_env=False)
            assert mbx.flush(120)
        """, env, timeout=200)
        assert next_run.returncode == 0, next_run.stderr
    client = mbx.Client(uri)
    runs = client.runs()
    assert len(runs) == 200 and {r.status for r in runs} == {"finished"}, result.stderr
    models = client.models()
    without_env = sum(1 for r in runs if not r.env)
    # Each run has two background items (its environment; its model, metrics and plots): each one
    # ran and its records are stored, or it is counted as dropped, with the reason.
    assert (200 - len(models)) + without_env == dropped
    if dropped:
        assert "background items" in result.stderr and "MODELBOX_SHUTDOWN_TIMEOUT" in result.stderr
    figures(fits=200, budget_s=2, runs_kept=len(runs), models_kept=len(models), background_items_dropped_with_reason=dropped,
            records_journaled_at_exit=kept)
