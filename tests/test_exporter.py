"""The exporter: batching, flush, journal spill and replay, fork safety, drop accounting.

Failures are real: another connection holds an exclusive lock on the SQLite file, the
backend path is unwritable, the process forks.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time

import pytest

import modelbox_autolog as mbx
from modelbox_autolog import _exporter
from modelbox_autolog.backends.sqlite import path_from_uri


@pytest.fixture
def configured(store_uri, client):
    mbx.autolog(backend=store_uri, frameworks=[], experiment="exp", capture_console=False, capture_env=False, silent=True)
    return client


def _lock_store(store_uri: str) -> sqlite3.Connection:
    """Hold an exclusive lock on the store, as a stuck writer in another process would."""
    conn = sqlite3.connect(path_from_uri(store_uri), isolation_level=None, timeout=0)
    conn.execute("BEGIN EXCLUSIVE")
    return conn


def test_flush_honours_its_timeout_while_the_store_is_locked(configured, store_uri):
    with mbx.start_run() as run:
        run.log_metric("warm", 1.0)
    assert mbx.flush(10)  # store exists
    lock = _lock_store(store_uri)
    try:
        with mbx.start_run() as run:
            run.log_metric("x", 1.0)
        started = time.monotonic()
        assert mbx.flush(timeout=0.5) is False
        assert time.monotonic() - started < 2.0
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert mbx.flush(timeout=30) is True  # replayed from the journal once the lock is gone
    assert [p.value for p in configured.run(run.id).metrics("x")] == [1.0]


def test_records_spill_to_journal_and_replay_exactly_once(configured, store_uri, tmp_path):
    with mbx.start_run() as warm:
        warm.log_metric("warm", 1.0)
    assert mbx.flush(10)
    lock = _lock_store(store_uri)
    try:
        with mbx.start_run(name="during-outage") as run:
            for i in range(50_000):
                run.log_metric("loss", i, step=i)
        exporter = _exporter.all_exporters()[0]
        deadline = time.monotonic() + 30
        while exporter.stats["journaled"] == 0 and time.monotonic() < deadline:
            time.sleep(0.1)  # the store answers "locked" after its busy timeout
        assert exporter.stats["journaled"] > 0
        assert os.listdir(tmp_path / "journal")
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert mbx.flush(timeout=60)
    points = configured.run(run.id).metrics("loss")
    assert [p.step for p in points] == list(range(50_000))  # all there, none twice
    assert configured.run(run.id).status == "finished"
    assert exporter.stats["dropped"] == 0


def test_journal_left_by_a_dead_process_is_replayed_by_the_next(tmp_path, store_uri, client):
    import subprocess
    import sys
    import textwrap

    # A process whose store is locked for its whole life exits with its records in the journal.
    script = textwrap.dedent(f"""
        import sqlite3, modelbox_autolog as mbx
        from modelbox_autolog.backends.sqlite import SQLiteStore
        SQLiteStore({store_uri!r}).close()
        lock = sqlite3.connect({path_from_uri(store_uri)!r}, isolation_level=None, timeout=0)
        lock.execute("BEGIN EXCLUSIVE")
        mbx.autolog(backend={store_uri!r}, frameworks=[], experiment="dead", capture_console=False)
        with mbx.start_run(name="orphan") as run:
            for i in range(1000):
                run.log_metric("m", i)
        mbx.shutdown(timeout=1.0)
    """)
    env = {**os.environ, "MODELBOX_JOURNAL_DIR": str(tmp_path / "journal"), "MODELBOX_AUTOLOG_TESTING": "0"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "kept in the journal" in result.stderr and "modelbox sync" in result.stderr
    # The next process to write to that store replays it first.
    mbx.autolog(backend=store_uri, frameworks=[], capture_console=False, capture_env=False)
    with mbx.start_run(name="next"):
        pass
    assert mbx.flush(30)
    runs = {r.name: r for r in client.runs()}
    assert runs["orphan"].status == "finished"
    assert len(runs["orphan"].metrics("m")) == 1000




def test_journal_refusal_is_counted_and_reported(tmp_path, monkeypatch, capsys):
    # The journal folder is a regular file: no journal can be written there (works as root too).
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("MODELBOX_JOURNAL_DIR", str(blocker))
    store_uri = f"sqlite:///{tmp_path}/db/modelbox.db"
    mbx.autolog(backend=store_uri, frameworks=[], capture_console=False, capture_env=False)
    with mbx.start_run() as run:
        run.log_metric("ok", 1.0)
    assert mbx.flush(10)  # the journal refuses, the store takes them straight from memory
    lock = _lock_store(store_uri)
    try:
        monkeypatch.setenv("MODELBOX_AUTOLOG_TESTING", "0")
        with mbx.start_run() as run:
            for i in range(100):
                run.log_metric("lost", i)
        assert mbx.flush(timeout=7) is False  # waiting in memory: neither stored nor lost yet
        exporter = _exporter.all_exporters()[0]
        assert exporter.stats["dropped"] == 0
        _exporter.shutdown_all(1)  # the store is still locked at exit: now they are lost, and counted
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert exporter.stats["dropped"] == 102  # RunStart, 100 points, RunUpdate
    assert any("journal" in reason for reason in exporter.drop_reasons)
    assert "102 record(s) were dropped" in capsys.readouterr().err


def test_unopenable_backend_keeps_records_in_journal(tmp_path, monkeypatch):
    # The store path is taken by a file where a folder is needed: opening fails on the exporter thread.
    (tmp_path / "blocked").write_text("")
    monkeypatch.setenv("MODELBOX_AUTOLOG_TESTING", "0")
    from modelbox_autolog import _config

    _config.set_current(_config.build_config(backend=f"sqlite:///{tmp_path}/blocked/sub/modelbox.db", silent=True))
    with mbx.start_run() as run:
        run.log_metric("kept", 1.0)
    assert mbx.flush(timeout=1.0) is False
    exporter = _exporter.all_exporters()[0]
    assert exporter.stats["journaled"] >= 2 and exporter.stats["dropped"] == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_child_neither_deadlocks_nor_duplicates(configured):
    with mbx.start_run(name="parent") as run:
        for i in range(1000):
            run.log_metric("before_fork", i)  # still queued when we fork
        pid = os.fork()
        if pid == 0:  # child: logs its own run and exits without touching the parent's records
            code = 1
            try:
                with mbx.start_run(name="child") as child:
                    child.log_metric("in_child", 1.0)
                code = 0 if mbx.flush(timeout=20) else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0
        for i in range(10):
            run.log_metric("after_fork", i)
    assert mbx.flush(20)
    runs = {r.name: r for r in configured.runs()}
    assert len(runs["parent"].metrics("before_fork")) == 1000  # not duplicated by the child
    assert len(runs["parent"].metrics("after_fork")) == 10
    assert [p.value for p in runs["child"].metrics("in_child")] == [1.0]


def test_multiprocessing_fork_pool_does_not_deadlock(configured):
    import multiprocessing

    with mbx.start_run() as run:
        for i in range(2000):
            run.log_metric("m", i)
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(2) as pool:
            assert pool.map(abs, range(-5, 5)) == [5, 4, 3, 2, 1, 0, 1, 2, 3, 4]
    assert mbx.flush(20)
    assert len(configured.run(run.id).metrics("m")) == 2000


def test_batches_respect_size_and_many_threads_logging(configured):
    def work(k: int) -> None:
        with mbx.start_run(name=f"w{k}") as run:
            for i in range(5000):
                run.log_metric("m", i)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert mbx.flush(30)
    for r in configured.runs():
        assert [p.step for p in r.metrics("m")] == list(range(5000))


def test_a_record_the_store_refuses_is_isolated_and_counted(configured):
    with mbx.start_run() as run:
        for i in range(10):
            run.log_metric("fine", i)
        # Past the call's checks (as a journal of an older version could hold it): the store refuses it alone.
        run._submit((run.id, "huge_step", 1.0, 2**70, time.time(), None))
        for i in range(10, 20):
            run.log_metric("fine", i)
    assert mbx.flush(10) is False  # something was dropped, and flush says so
    stored = configured.run(run.id)
    assert len(stored.metrics("fine")) == 20 and stored.status == "finished"
    exporter = _exporter.all_exporters()[0]
    assert exporter.stats["dropped"] == 1 and exporter.stats["written"] == 22
    assert any("refused" in reason for reason in exporter.drop_reasons)


def test_an_out_of_range_step_is_refused_at_the_call_naming_its_key(store_uri, client, caplog):
    mbx.autolog(backend=store_uri, frameworks=[], experiment="exp", capture_console=False, capture_env=False)
    configured = client
    with mbx.start_run() as run:
        run.log_metric("huge_step", 1.0, step=2**70)
        run.log_metric("huge_step", 2.0, step=2**70)
        run.log_metric("fine", 1.0)
    assert mbx.flush(10) is True  # nothing accepted was lost: the user's value was refused
    exporter = _exporter.all_exporters()[0]
    assert exporter.stats["rejected"] == 2 and exporter.reject_reasons == {"step refused": 2}
    warnings = [r.getMessage() for r in caplog.records if "huge_step" in r.getMessage()]
    assert len(warnings) == 1 and "64-bit" in warnings[0]  # once per key, naming it
    assert configured.run(run.id).metric_keys() == ["fine"]


def _stored_params(store_uri: str) -> int:
    """Rows in the store, read without flushing (a Client would flush this process's records first)."""
    conn = sqlite3.connect(path_from_uri(store_uri))
    try:
        return conn.execute("SELECT COUNT(*) FROM params").fetchone()[0]
    except sqlite3.OperationalError:  # no schema yet
        return 0
    finally:
        conn.close()


def test_records_wait_while_a_fit_runs_but_never_long(configured, store_uri):
    """A fit in progress keeps the exporter from writing (no competition for the GIL), for at most HOLD_MAX_S."""
    from modelbox_autolog import _patching
    from tests.toylib import Trainer

    seen: dict[str, float] = {}

    def hook(call):
        with mbx.start_run() as run:
            run.log_params({"during": 1})
            yield None

    def slow_epoch(epoch, loss):
        if epoch == 0:
            time.sleep(0.6)  # several flush intervals: nothing may be written yet
            seen["during_fit"] = _stored_params(store_uri)
            deadline = time.monotonic() + _exporter.HOLD_MAX_S + 3
            while _stored_params(store_uri) == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            seen["held_s"] = time.monotonic()

    assert _patching.patch_call("toy", Trainer, "fit", hook, group="toy.fit")
    try:
        started = time.monotonic()
        Trainer(epochs=1).fit([1.0], callbacks=[slow_epoch])
    finally:
        _patching.revert("toy")
    assert seen["during_fit"] == 0
    assert seen["held_s"] - started < _exporter.HOLD_MAX_S + 1.5  # written while the fit still ran
    assert _stored_params(store_uri) == 1


def test_flush_during_a_fit_is_not_held_back(configured, store_uri):
    from modelbox_autolog import _patching
    from tests.toylib import Trainer

    flushed: list[bool] = []

    def hook(call):
        with mbx.start_run() as run:
            run.log_params({"during": 1})
            flushed.append(mbx.flush(5))
            yield None

    _patching.patch_call("toy", Trainer, "fit", hook, group="toy.fit")
    try:
        started = time.monotonic()
        Trainer(epochs=1).fit([1.0])
        elapsed = time.monotonic() - started
    finally:
        _patching.revert("toy")
    assert flushed == [True] and _stored_params(store_uri) == 1
    assert elapsed < _exporter.HOLD_MAX_S


def test_exporter_threads_end_with_shutdown(store_uri):
    for _ in range(3):
        mbx.autolog(backend=store_uri, frameworks=[], capture_console=False, silent=True)
        with mbx.start_run() as run:
            run.log_metric("x", 1.0)
        assert mbx.flush(10)
        mbx.shutdown()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(t.name.startswith("modelbox-") for t in threading.enumerate()):
        time.sleep(0.05)
    assert [t.name for t in threading.enumerate() if t.name.startswith("modelbox-")] == []


def test_a_failing_background_item_is_counted_with_its_reason(configured):
    """Background work (a model file, training metrics) that raises is never silently lost."""
    from modelbox_autolog._exporter import Deferred

    def broken():
        raise FileNotFoundError("model.pkl")

    with mbx.start_run() as run:
        run._submit(Deferred(broken, background=True))
        run.log_metric("kept", 1.0)
    assert mbx.flush(10) is False
    exporter = _exporter.all_exporters()[0]
    assert exporter.stats["dropped"] == 1
    assert exporter.drop_reasons == {"background work failed (FileNotFoundError)": 1}
    assert [p.value for p in configured.run(run.id).metrics("kept")] == [1.0]
