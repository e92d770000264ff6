"""SQLite store robustness, the file:// spool and `sync` idempotence, URI validation."""

from __future__ import annotations

import sqlite3

import pytest

import modelbox_autolog as mbx
from modelbox_autolog._records import Batch, Metric, RunStart, RunUpdate, new_id
from modelbox_autolog.backends import BackendError, open_backend
from modelbox_autolog.backends.spool import replay
from modelbox_autolog.backends.sqlite import SCHEMA_VERSION, SQLiteStore


def _batch(run_id: str, n: int = 3) -> Batch:
    records = [RunStart(run_id, "exp", "r", 1.0)]
    records += [Metric(run_id, "m", float(i), i, 1.0 + i) for i in range(n)]
    records.append(RunUpdate(run_id, status="finished", end_time=9.0))
    return Batch(new_id(), "w", records)


def test_same_batch_twice_is_stored_once(store_uri):
    store = SQLiteStore(store_uri)
    run_id = new_id()
    batch = _batch(run_id)
    store.write(batch)
    store.write(batch)
    assert [p.step for p in store.metrics(run_id, "m")] == [0, 1, 2]
    assert store.run(run_id).status == "finished"


def test_wal_mode_and_schema_version(store_uri):
    store = SQLiteStore(store_uri)
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_future_schema_version_is_refused_with_a_precise_message(tmp_path):
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(BackendError, match="newer modelbox-autolog.*v99"):
        SQLiteStore(f"sqlite:///{path}")


def test_corrupt_file_is_refused_with_a_precise_message(tmp_path):
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(BackendError, match="not a usable ModelBox store"):
        SQLiteStore(f"sqlite:///{path}")


def test_foreign_sqlite_database_is_refused(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers(id)")
    conn.commit()
    conn.close()
    with pytest.raises(BackendError, match="something else"):
        SQLiteStore(f"sqlite:///{path}")


def test_bad_uris_fail_early_and_precisely(tmp_path):
    with pytest.raises(BackendError, match="unknown backend scheme 'mysql://'"):
        mbx.autolog(backend="mysql://x/y")
    with pytest.raises(ValueError, match="not a URI"):
        mbx.autolog(backend="just-a-path.db")
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(BackendError, match="cannot write under"):
        mbx.autolog(backend=f"sqlite:///{blocked}/sub/x.db")
    with pytest.raises(BackendError, match="names no database file"):
        open_backend("sqlite:///")


def test_spool_then_sync_is_idempotent(tmp_path, store_uri):
    spool = tmp_path / "spool"
    model_file = tmp_path / "model.bin"
    model_file.write_bytes(b"weights")
    mbx.autolog(backend=f"file://{spool}", frameworks=[], experiment="offline", capture_console=False)
    with mbx.start_run(name="offline-run") as run:
        run.log_params({"lr": 0.1})
        for i in range(100):
            run.log_metric("loss", 1.0 / (i + 1), step=i)
        run.log_model(model_file, name="m", framework="raw")
    assert mbx.flush(10)
    model_file.unlink()  # the spool is self-contained: files were copied into it

    target = open_backend(store_uri)
    batches = replay(str(spool), target)
    assert batches >= 1
    assert replay(str(spool), target) == batches  # second sync: same batches read...
    client = mbx.Client(store_uri)
    (r,) = client.runs()  # ...and nothing duplicated
    assert r.name == "offline-run" and r.status == "finished" and r.params == {"lr": 0.1}
    assert len(r.metrics("loss")) == 100
    (m,) = client.models()
    folder = client.download_model(m.id, tmp_path / "dl")
    assert open(f"{folder}/model.bin", "rb").read() == b"weights"


def test_client_reads_a_spool_directly(tmp_path):
    spool = tmp_path / "spool"
    mbx.autolog(backend=f"file://{spool}", frameworks=[], capture_console=False)
    with mbx.start_run(name="s") as run:
        run.log_metric("x", 2.0)
    assert mbx.flush(10)
    view = mbx.Client(f"file://{spool}")
    assert [p.value for p in view.run(run.id).metrics("x")] == [2.0]


def test_torn_last_line_of_a_spool_is_ignored(tmp_path, store_uri):
    spool = tmp_path / "spool"
    mbx.autolog(backend=f"file://{spool}", frameworks=[], capture_console=False, capture_env=False)
    with mbx.start_run():
        pass
    assert mbx.flush(10)
    (path,) = spool.glob("spool-*.jsonl")
    with open(path, "a") as handle:
        handle.write('{"v":1,"id":"half')  # a writer died mid-line
    assert replay(str(spool), open_backend(store_uri)) == 1


def test_a_new_store_opened_by_several_connections_at_once(tmp_path):
    import threading

    errors: list[str] = []
    for attempt in range(15):
        uri = f"sqlite:///{tmp_path}/race{attempt}/modelbox.db"

        def open_store(uri: str = uri) -> None:
            try:
                SQLiteStore(uri).runs()
            except Exception as exc:  # collected: the assertion below shows them
                errors.append(repr(exc))

        threads = [threading.Thread(target=open_store) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
