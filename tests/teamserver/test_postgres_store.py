"""The PostgreSQL store against a real PostgreSQL server: same answers as the SQLite store,
exactly-once batches, ordered change feed and immutable final models under concurrent writers,
libpq password sources, precise connection errors, versioned migrations."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

import modelbox_autolog as mbx
from modelbox_autolog._records import Batch, ModelFile, ModelRecord, RunStart, new_id
from modelbox_autolog.backends import (
    BackendError,
    BackendUnavailable,
    ImmutableModel,
    open_backend,
    pg_migrations,
)
from modelbox_autolog.backends.postgres import PostgresStore
from modelbox_autolog.cli import main as cli_main

from .components import PG_PASSWORD, free_port

pytestmark = pytest.mark.timeout(300)


def _batch(records) -> Batch:
    return Batch(new_id(), "w", list(records))


def _write(path, data: bytes) -> str:
    with open(path, "wb") as handle:
        handle.write(data)
    return str(path)


def test_every_record_type_round_trips(pg_uri, tmp_path):
    uri = f"{pg_uri}?artifacts={tmp_path}/files"
    mbx.autolog(backend=uri, experiment="pg", capture_console=False)
    (tmp_path / "model").mkdir()
    _write(tmp_path / "model" / "weights.bin", os.urandom(2000))
    with mbx.start_run(name="baseline", tags={"team": "vision"}) as run:
        run.log_params({"lr": 1e-3, "optimizer": {"name": "adam", "betas": [0.9, 0.99]}})
        for step in range(100):
            run.log_metric("loss", 1.0 / (step + 1), step=step, epoch=step // 10)
        run.log_metrics({"acc": 0.9, "nan": float("nan")}, step=100)
        with run.event("data_loading", epoch=2):
            pass
        run.log_artifact(_write(tmp_path / "table.csv", b"a,b\n1,2\n"), name="tables/t.csv")
        model = run.log_model(str(tmp_path / "model"), name="churn", framework="generic", metadata={"auc": 0.91},
                              labels={"env": "staging"})
        run.log_input("s3://bucket/train.parquet", kind="dataset", rows=10)
        run.set_progress(0.5)
    assert mbx.flush(30)
    client = mbx.Client(uri)
    r = client.run(run.id)
    assert (r.name, r.status, r.experiment, r.progress, r.tags["team"]) == ("baseline", "finished", "pg", 0.5, "vision")
    assert r.params["lr"] == 1e-3 and r.params["optimizer.betas"] == [0.9, 0.99]
    assert sorted(r.metric_keys()) == ["acc", "loss", "nan"]
    loss = r.metrics("loss")
    assert [p.step for p in loss] == list(range(100)) and loss[3].value == 0.25 and loss[99].epoch == 9
    assert r.metrics("nan")[0].value != r.metrics("nan")[0].value
    assert [e.name for e in r.events()] == ["data_loading"]
    [artifact] = r.artifacts()
    assert artifact.name == "tables/t.csv" and artifact.bytes == 8 and os.path.isfile(artifact.path_or_uri)
    assert [i.ref for i in r.inputs()] == ["s3://bucket/train.parquet"]
    [m] = r.models()
    assert (m.id, m.version, m.metadata, m.labels) == (model.id, 1, {"auc": 0.91}, {"env": "staging"})
    assert "s3cret" not in m.url  # never shown with its password
    folder = client.download_model(m.id, tmp_path / "out")
    assert os.path.getsize(os.path.join(folder, "weights.bin")) == 2000
    assert [e.name for e in client.experiments()] == ["pg"] and len(client.runs(experiment="pg")) == 1
    assert client.run(run.id[:8]).id == run.id
    kinds = [(c.kind, c.object_type) for c in client.store.changes(0)]
    assert ("created", "run") in kinds and ("created", "model") in kinds


def test_the_cli_reads_a_postgres_store(pg_uri, capsys):
    mbx.autolog(backend=pg_uri, experiment="cli", capture_console=False)
    with mbx.start_run(name="from-cli") as run:
        run.log_metric("loss", 0.5, step=1)
    assert mbx.flush(30)
    assert cli_main(["--backend", pg_uri, "runs", "--json"]) == 0
    [shown] = json.loads(capsys.readouterr().out)
    assert (shown["id"], shown["name"], shown["status"]) == (run.id, "from-cli", "finished")
    assert cli_main(["show", run.id[:8], "--backend", pg_uri]) == 0
    assert "loss" in capsys.readouterr().out


def test_a_resent_batch_is_stored_once_even_concurrently(pg_uri):
    run_id = new_id()
    batch = _batch([RunStart(run_id, "e", "r", 1.0), *[(run_id, "x", float(i), i, 1.0, None) for i in range(500)]])
    stores = [PostgresStore(pg_uri) for _ in range(4)]
    try:
        barrier = threading.Barrier(4)

        def send(store):
            barrier.wait()
            store.write(batch)

        threads = [threading.Thread(target=send, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stores[0].write(batch)
        assert len(stores[0].metrics(run_id, "x")) == 500
        assert stores[0].applied(batch.id)
    finally:
        for s in stores:
            s.close()


def test_change_sequence_is_gapless_in_commit_order_across_writers(pg_uri):
    """Several stores (as several replicas would) write concurrently while a reader follows
    ``seq > last``: the reader must end up having seen every change exactly once."""
    writers = [PostgresStore(pg_uri, pool_size=2) for _ in range(4)]
    reader = PostgresStore(pg_uri)
    done = threading.Event()
    seen: list[int] = []

    def follow():
        last = 0
        while True:
            finished = done.is_set()
            batch = reader.changes(last, 500)
            seen.extend(c.seq for c in batch)
            if batch:
                last = batch[-1].seq
            elif finished:
                return

    def write(store):
        for _ in range(40):
            run_id = new_id()
            store.write(_batch([RunStart(run_id, "feed", None, 1.0), (run_id, "m", 1.0, 0, 1.0, None)]))

    follower = threading.Thread(target=follow)
    follower.start()
    threads = [threading.Thread(target=write, args=(w,)) for w in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    follower.join(60)
    try:
        total = reader.last_change_seq()
        assert seen == sorted(seen) and len(set(seen)) == len(seen)
        assert len(seen) == len(reader.changes(0, 100_000)) == 40 * 4 * 2 + 1  # run + metrics each, one experiment
        assert seen[-1] == total
    finally:
        for s in (*writers, reader):
            s.close()


def test_final_models_stay_immutable_and_versions_unique_under_concurrent_writers(pg_uri, tmp_path):
    stores = [PostgresStore(f"{pg_uri}?artifacts={tmp_path}/files") for _ in range(3)]
    source = _write(tmp_path / "w.bin", b"weights")
    try:
        def log_models(store):
            for _ in range(5):
                store.write(_batch([ModelRecord(new_id(), None, "shared", "generic", [ModelFile("w.bin", source)], 1.0)]))

        threads = [threading.Thread(target=log_models, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        models = stores[0].models(name="shared")
        assert sorted(m.version for m in models) == list(range(1, 16))
        target = models[0].id
        errors: list[BaseException] = []
        barrier = threading.Barrier(6)

        def finalize(store):
            barrier.wait()
            store.finalize_model(target)

        def update(store, i):
            barrier.wait()
            try:
                store.update_model(target, metadata={f"k{i}": i})
            except ImmutableModel as exc:
                errors.append(exc)

        threads = [threading.Thread(target=finalize, args=(stores[0],))]
        threads += [threading.Thread(target=update, args=(stores[i % 3], i)) for i in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        final = stores[1].model(target)
        assert final.status == "final"
        assert len(final.metadata) + len(errors) == 5  # each update either landed before, or was refused
        frozen = dict(final.metadata)
        with pytest.raises(ImmutableModel):
            stores[2].update_model(target, labels={"stage": "prod"})
        assert stores[0].model(target).metadata == frozen
    finally:
        for s in stores:
            s.close()


def test_password_from_pgpassword_and_pgpass(pg_cluster, pg_uri, tmp_path, monkeypatch):
    database = pg_uri.rsplit("/", 1)[1]
    bare = pg_cluster.uri(database, password=None)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "nothing"))
    monkeypatch.delenv("PGPASSWORD", raising=False)
    with pytest.raises(BackendError, match="cannot log in.*PGPASSWORD"):
        PostgresStore(bare)
    monkeypatch.setenv("PGPASSWORD", PG_PASSWORD)
    PostgresStore(bare).close()
    monkeypatch.delenv("PGPASSWORD")
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"127.0.0.1:{pg_cluster.port}:*:modelbox:{PG_PASSWORD}\n")
    pgpass.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    store = PostgresStore(bare)
    assert store.uri == bare and store.runs() == []
    store.close()


def test_precise_errors_wrong_password_missing_database_unreachable(pg_cluster, pg_uri):
    database = pg_uri.rsplit("/", 1)[1]
    with pytest.raises(BackendError, match="cannot log in to PostgreSQL 127.0.0.1.*password authentication failed"):
        open_backend(pg_cluster.uri(database, password="wrong"))
    with pytest.raises(BackendError, match='database "no_such_db" does not exist'):
        open_backend(pg_cluster.uri("no_such_db"))
    with pytest.raises(BackendUnavailable, match="cannot reach PostgreSQL"):
        open_backend(f"postgresql://modelbox:x@127.0.0.1:{free_port()}/db")


def test_schema_versions_older_is_upgraded_only_when_asked_newer_is_refused(pg_cluster, pg_uri, capsys):
    import psycopg

    with psycopg.connect(pg_uri, autocommit=True) as conn:
        pg_migrations.upgrade(conn, target=1)  # a store written by an older release
        conn.execute("INSERT INTO experiments VALUES ('e1', 'old', 1.0)")
    with pytest.raises(BackendError, match=r"schema v1, older .* modelbox db upgrade"):
        PostgresStore(pg_uri)
    assert cli_main(["db", "upgrade", pg_uri]) == 0
    out = capsys.readouterr().out
    assert "v1" in out and f"v{pg_migrations.LATEST}" in out and "store_settings" in out
    store = PostgresStore(pg_uri)
    assert [e.name for e in store.experiments()] == ["old"]
    store.close()
    assert cli_main(["db", "upgrade", pg_uri]) == 0
    assert "up to date" in capsys.readouterr().out
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        conn.execute("INSERT INTO modelbox_schema VALUES (%s, 'future', 0)", (pg_migrations.LATEST + 1,))
    with pytest.raises(BackendError, match="newer modelbox-autolog"):
        PostgresStore(pg_uri)
    assert cli_main(["db", "upgrade", pg_uri]) == 2


def test_client_watch_on_postgres_is_woken_by_notify(pg_uri):
    store = PostgresStore(pg_uri)
    seen = []

    def watch():
        for change in mbx.Client(pg_uri).watch(poll_interval=30, timeout=20):
            seen.append((change, time.monotonic()))
            return

    thread = threading.Thread(target=watch)
    thread.start()
    time.sleep(1.0)
    began = time.monotonic()
    store.write(_batch([RunStart(new_id(), "watched", None, 1.0)]))
    thread.join(30)
    store.close()
    assert seen and seen[0][0].object_type == "experiment"
    assert seen[0][1] - began < 5  # NOTIFY, not the 30 s poll
