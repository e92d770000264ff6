"""The store-side contract every metadata store implements (docs/ARCHITECTURE.md, "Run status and
liveness"): a final status is set once, liveness marks dead runs killed and yields to the owner,
an older schema is upgraded in place, names are refused by the same rule as the server's, and
the journal's format survives a torn tail."""

from __future__ import annotations

import os
import sqlite3
import time

import pytest

from modelbox_autolog import _liveness
from modelbox_autolog._journal import Journal, read_frames, replay_segment, segment_files
from modelbox_autolog._names import MAX_NAME_CHARS
from modelbox_autolog._records import Batch, Event, Metric, Param, RunStart, RunUpdate, new_id
from modelbox_autolog.backends import RecordRefused
from modelbox_autolog.backends.delivery import deliver
from modelbox_autolog.backends.sqlite import SCHEMA, SCHEMA_VERSION, SQLiteStore
from modelbox_autolog.proto import convert


def _write(store: SQLiteStore, *records) -> None:
    store.write(Batch(new_id(), "w", list(records)))


def _start(run_id: str, owner: dict | None = None) -> RunStart:
    return RunStart(run_id, "exp", "r", time.time(), owner=owner)


def test_a_final_status_is_never_overwritten_by_a_late_or_replayed_update(store_uri):
    store = SQLiteStore(store_uri)
    run_id = new_id()
    _write(store, _start(run_id))
    failed = {"type": "RuntimeError", "message": "diverged", "traceback": "Traceback..."}
    _write(store, RunUpdate(run_id, status="failed", end_time=10.0, failure=failed))
    _write(store, RunUpdate(run_id, status="finished", end_time=5.0))  # a forked child's, replayed late
    _write(store, RunUpdate(run_id, status="running"))
    info = store.run(run_id)
    assert (info.status, info.end_time) == ("failed", 10.0)
    assert (info.failure.type, info.failure.message) == ("RuntimeError", "diverged")


def test_liveness_marks_a_dead_owner_killed_and_yields_when_the_owner_speaks(store_uri):
    store = SQLiteStore(store_uri)
    dead = {**_liveness.process_owner(), "pid": 2**22 + 12345, "start": 1, "lease_s": 30.0}  # no such process here
    alive = {**_liveness.process_owner(), "lease_s": 30.0}
    remote = {"host": "elsewhere", "boot_id": "x", "pidns": "y", "pid": 1, "start": 1, "lease_s": 2.0}
    ids = {name: new_id() for name in ("dead", "alive", "remote", "old")}
    _write(store, _start(ids["dead"], dead), _start(ids["alive"], alive), _start(ids["remote"], remote),
           RunStart(ids["old"], "exp", "r", time.time()))  # no owner (an older version): left as it is
    assert store.run(ids["dead"]).status == "killed"
    assert store.run(ids["dead"]).failure.type == "ProcessLost"
    assert store.run(ids["alive"]).status == "running" and store.run(ids["old"]).status == "running"
    assert store.run(ids["remote"]).status == "running"  # within its lease
    store.reap(now=time.time() + 5)
    remote_info = store.run(ids["remote"])
    assert remote_info.status == "killed" and "no sign of life" in remote_info.failure.message
    # The remote owner was only cut off: its heartbeat revives the run, its own word ends it.
    _write(store, RunUpdate(ids["remote"], heartbeat=time.time()))
    assert store.run(ids["remote"]).status == "running" and store.run(ids["remote"]).failure is None
    store.reap(now=time.time() + 5)
    _write(store, RunUpdate(ids["remote"], status="finished", end_time=time.time()))
    assert store.run(ids["remote"]).status == "finished" and store.run(ids["remote"]).failure is None
    kinds = [(c.kind, c.payload.get("status")) for c in store.changes() if c.object_id == ids["dead"]]
    assert ("updated", "killed") in kinds  # watchers hear of it


def test_a_killed_run_ends_at_its_last_sign_of_life_not_at_its_start(store_uri):
    """Killed before its first heartbeat (most crashes of short jobs): the run lasted until its
    latest point or event, not zero seconds."""
    dead = {**_liveness.process_owner(), "pid": 2**22 + 12346, "start": 1, "lease_s": 30.0}
    run_id, started = new_id(), time.time() - 60
    store = SQLiteStore(store_uri)
    with _liveness_paused(store):
        _write(store, RunStart(run_id, "exp", "r", started, owner=dead),
               Metric(run_id, "loss", 0.5, 0, started + 5), Metric(run_id, "loss", 0.4, 1, started + 9),
               Event(new_id(), run_id, "epoch", started + 12, 1.0, {}))
    store.reap()
    info = store.run(run_id)
    assert info.status == "killed" and info.end_time == pytest.approx(started + 12)


class _liveness_paused:
    """Hold reaping while the records go in (a write reaps now and then)."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    def __enter__(self) -> None:
        self.reap, self.store.reap = self.store.reap, lambda *a, **k: []

    def __exit__(self, *exc) -> None:
        del self.store.reap


def test_a_version_1_store_is_upgraded_in_place(tmp_path):
    path = tmp_path / "old.db"
    version_1 = SCHEMA.replace(",\n    owner TEXT, heartbeat_at REAL, lease_s REAL, failure TEXT, lost_at REAL", "")
    assert "owner" not in version_1
    conn = sqlite3.connect(path)
    conn.executescript(version_1 + """
        INSERT INTO experiments VALUES ('e1', 'old', 1.0);
        INSERT INTO runs(id, experiment_id, name, status, start_time) VALUES ('r1', 'e1', 'before', 'finished', 1.0);
        PRAGMA user_version=1;
    """)
    conn.close()
    store = SQLiteStore(f"sqlite:///{path}")
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    columns = {row[1] for row in sqlite3.connect(path).execute("PRAGMA table_info(runs)")}
    assert {"owner", "heartbeat_at", "lease_s", "failure", "lost_at"} <= columns
    assert store.run("r1").status == "finished" and store.run("r1").failure is None
    run_id = new_id()
    _write(store, _start(run_id, {**_liveness.process_owner(), "lease_s": 30.0}), RunUpdate(run_id, status="finished"))
    assert store.run(run_id).status == "finished"


BAD_NAMES = ["", "nul\x00byte", "k" * (MAX_NAME_CHARS + 1), "lone\ud800surrogate"]


@pytest.mark.parametrize("bad", BAD_NAMES, ids=["empty", "nul", "too-long", "surrogate"])
def test_the_store_refuses_exactly_the_names_the_server_refuses(store_uri, bad):
    store = SQLiteStore(store_uri)
    run_id = new_id()
    _write(store, _start(run_id))
    for record in (Metric(run_id, bad, 1.0, 0, 1.0), Param(run_id, bad, "1"), Event(new_id(), run_id, bad, 1.0)):
        with pytest.raises(RecordRefused) as refused:
            _write(store, record)
        assert refused.value.refusals[0][0] is record
        with pytest.raises(convert.InvalidRequest):
            convert.check_name(bad, "name")
    good = "k" * MAX_NAME_CHARS
    _write(store, Metric(run_id, good, 1.0, 0, 1.0))
    convert.check_name(good, "name")
    assert store.metric_keys(run_id) == [good]


def test_delivery_drops_only_the_refused_records_and_is_idempotent_on_resend(store_uri):
    store = SQLiteStore(store_uri)
    run_id = new_id()
    records = [_start(run_id)] + [Metric(run_id, "m", float(i), i, 1.0) for i in range(100)]
    records.insert(50, Metric(run_id, "", 1.0, 0, 1.0))  # refused by name
    records.insert(70, (run_id, "huge", 1.0, 2**70, 1.0, None))  # refused by the store (not a 64-bit step)
    batch = Batch(new_id(), "w", records)
    refused: list = []
    deliver(store, batch, lambda record, reason, detail: refused.append((record, reason)))
    assert [r for r, _ in refused] == [records[50], records[70]]
    assert [p.step for p in store.metrics(run_id, "m")] == list(range(100))
    again: list = []
    deliver(store, batch, lambda record, reason, detail: again.append(record))  # a replay of the same batch
    assert [p.step for p in store.metrics(run_id, "m")] == list(range(100))  # nothing twice


def test_journal_frames_survive_a_torn_tail_and_acks_skip_delivered_batches(tmp_path):
    journal = Journal(str(tmp_path), "sqlite:///x.db", new_id())
    first = journal.append(Batch(new_id(), journal.writer, [_start(new_id())]))
    journal.append(Batch(new_id(), journal.writer, [Metric("r", "m", 1.0, 0, 1.0)]))
    journal.ack(first)
    (path,) = segment_files(journal.folder)
    journal.close()
    with open(path, "ab") as handle:
        handle.write(b"M\xff\xff\x00\x00partial")  # a process killed mid-write
    fd = os.open(path, os.O_RDONLY)
    kinds = [kind for kind, _offset, _payload in read_frames(fd, path)]
    os.close(fd)
    assert kinds == [b"M", b"M", b"A"]
    sent: list[Batch] = []
    result = replay_segment(path, lambda batch: sent.append(batch) or True)
    assert [len(b.records) for b in sent] == [1] and result.skipped_acked == 1  # the acked one is not re-sent
    assert not os.path.exists(path)
