"""The store-side durability contract (tests/backends/test_durability_contract.py) on PostgreSQL:
a final status is set once, liveness marks dead runs killed and yields to their owner, names are
refused by the server's rule, delivery drops only refused records, and v3 stores gain liveness."""

from __future__ import annotations

import time

import pytest

from modelbox_autolog import _liveness
from modelbox_autolog._names import MAX_NAME_CHARS
from modelbox_autolog._records import Batch, Event, Metric, Param, RunStart, RunUpdate, new_id
from modelbox_autolog.backends import RecordRefused, pg_migrations
from modelbox_autolog.backends.delivery import deliver
from modelbox_autolog.backends.postgres import PostgresStore


@pytest.fixture
def store(pg_uri):
    store = PostgresStore(pg_uri)
    yield store
    store.close()


def _write(store: PostgresStore, *records) -> bool:
    return store.write(Batch(new_id(), "w", list(records)))


def _start(run_id: str, owner: dict | None = None) -> RunStart:
    return RunStart(run_id, "exp", "r", time.time(), owner=owner)


def test_a_final_status_is_never_overwritten_by_a_late_or_replayed_update(store):
    run_id = new_id()
    _write(store, _start(run_id))
    failed = {"type": "RuntimeError", "message": "diverged", "traceback": "Traceback..."}
    _write(store, RunUpdate(run_id, status="failed", end_time=10.0, failure=failed))
    _write(store, RunUpdate(run_id, status="finished", end_time=5.0))  # a forked child's, replayed late
    _write(store, RunUpdate(run_id, status="running"))
    info = store.run(run_id)
    assert (info.status, info.end_time) == ("failed", 10.0)
    assert (info.failure.type, info.failure.message) == ("RuntimeError", "diverged")
    batch = Batch(new_id(), "w", [RunUpdate(run_id, progress=0.5)])
    assert store.write(batch) is True and store.write(batch) is False  # False: stored before


def test_liveness_marks_a_dead_owner_killed_and_yields_when_the_owner_speaks(store):
    dead = {**_liveness.process_owner(), "pid": 2**22 + 12345, "start": 1, "lease_s": 30.0}
    alive = {**_liveness.process_owner(), "lease_s": 30.0}
    remote = {"host": "elsewhere", "boot_id": "x", "pidns": "y", "pid": 1, "start": 1, "lease_s": 2.0}
    ids = {name: new_id() for name in ("dead", "alive", "remote")}
    _write(store, _start(ids["dead"], dead), _start(ids["alive"], alive), _start(ids["remote"], remote))
    assert store.run(ids["dead"]).status == "killed" and store.run(ids["dead"]).failure.type == "ProcessLost"
    assert store.run(ids["alive"]).status == "running" and store.run(ids["remote"]).status == "running"
    assert store.count_runs(where="status = 'killed'") == 1
    store.reap(now=time.time() + 5)
    assert "no sign of life" in store.run(ids["remote"]).failure.message
    _write(store, RunUpdate(ids["remote"], heartbeat=time.time()))  # cut off, not dead: it revives
    assert store.run(ids["remote"]).status == "running" and store.run(ids["remote"]).failure is None
    store.reap(now=time.time() + 5)
    _write(store, RunUpdate(ids["remote"], status="finished", end_time=time.time()))
    assert store.run(ids["remote"]).status == "finished" and store.run(ids["remote"]).failure is None
    kinds = [(c.kind, c.payload.get("status")) for c in store.changes() if c.object_id == ids["dead"]]
    assert kinds.count(("updated", "killed")) == 1  # watchers hear of it, once


def test_a_killed_run_ends_at_its_last_sign_of_life_not_at_its_start(store):
    dead = {**_liveness.process_owner(), "pid": 2**22 + 12346, "start": 1, "lease_s": 30.0}
    run_id, started = new_id(), time.time() - 60
    _write(store, RunStart(run_id, "exp", "r", started, owner=dead), Metric(run_id, "loss", 0.5, 0, started + 5),
           Metric(run_id, "loss", 0.4, 1, started + 9), Event(new_id(), run_id, "epoch", started + 12, 1.0, {}))
    store.reap()
    info = store.run(run_id)
    assert info.status == "killed" and info.end_time == pytest.approx(started + 12)


@pytest.mark.parametrize("bad", ["", "nul\x00byte", "k" * (MAX_NAME_CHARS + 1)], ids=["empty", "nul", "too-long"])
def test_the_store_refuses_exactly_the_names_the_server_refuses(store, bad):
    run_id = new_id()
    _write(store, _start(run_id))
    for record in (Metric(run_id, bad, 1.0, 0, 1.0), Param(run_id, bad, "1"), Event(new_id(), run_id, bad, 1.0)):
        with pytest.raises(RecordRefused) as refused:
            _write(store, record)
        assert refused.value.refusals[0][0] is record


def test_delivery_drops_only_the_refused_records_and_is_idempotent_on_resend(store):
    run_id = new_id()
    records = [_start(run_id)] + [Metric(run_id, "m", float(i), i, 1.0) for i in range(100)]
    records.insert(50, Metric(run_id, "", 1.0, 0, 1.0))  # refused by name
    records.insert(70, (run_id, "huge", 1.0, 2**70, 1.0, None))  # refused by the store (not a 64-bit step)
    batch = Batch(new_id(), "w", records)
    refused: list = []
    deliver(store, batch, lambda record, reason, detail: refused.append(record))
    assert refused == [records[50], records[70]]
    assert [p.step for p in store.metrics(run_id, "m")] == list(range(100))
    deliver(store, batch, lambda record, reason, detail: None)
    assert [p.step for p in store.metrics(run_id, "m")] == list(range(100))  # nothing twice


def test_a_version_3_store_gains_liveness_columns(pg_uri):
    import psycopg

    with psycopg.connect(pg_uri, autocommit=True) as conn:
        pg_migrations.upgrade(conn, target=3)
        conn.execute("INSERT INTO experiments VALUES ('e1', 'old', 1.0)")
        conn.execute("INSERT INTO runs (id, experiment_id, name, status, start_time) VALUES ('r1', 'e1', 'before', 'finished', 1.0)")
    store = PostgresStore(pg_uri, upgrade=True)
    try:
        assert store.run("r1").status == "finished" and store.run("r1").failure is None
        run_id = new_id()
        _write(store, _start(run_id, {**_liveness.process_owner(), "lease_s": 30.0}), RunUpdate(run_id, status="finished"))
        assert store.run(run_id).status == "finished"
    finally:
        store.close()
