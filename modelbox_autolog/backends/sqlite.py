"""The embedded default store: one SQLite file (WAL) plus an artifacts folder beside it.

Writes: one transaction per batch, ``executemany`` per record type, the batch id recorded in
the same transaction so a re-sent batch is skipped whole. Metric points are stored as
chunks: per batch and series, packed little-endian arrays of steps, values, timestamps and
epochs (one row per chunk, not per point), which is what lets one writer keep up with
hundreds of thousands of points a second. Reads: the queries behind Client.

Run status follows the store-side contract in docs/ARCHITECTURE.md ("Run status and
liveness"): a final status is set once; runs whose process died read as ``killed``.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
from array import array
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from .._actor import LIVENESS_ACTOR, current_actor
from .._records import Artifact as ArtifactRecord
from .._records import (
    Batch,
    Metric,
    ModelRecord,
    Param,
    RunStart,
    RunUpdate,
    name_refusals,
    new_id,
)
from .._records import Event as EventRecord
from .._records import Input as InputRecord
from ..artifacts import ArtifactStore, open_artifacts, place_files
from ..artifacts.layout import Placed
from ..entities import (
    MetricPoint,
)
from . import change_feed
from .base import (
    Backend,
    BackendError,
    BackendUnavailable,
    RecordRefused,
    Store,
    StoreUnwritable,
)
from .search_sql import SQLITE
from .sql_store import SqlStore, Tx, only_heartbeats
from .sql_store import dumps as _dumps
from .uris import artifacts_param, sqlite_path

# 2: the queryable side (SEARCH_STATEMENTS); 3: run liveness and failure (LIVENESS_COLUMNS);
# 4: the registry and the run lifecycle (REGISTRY_STATEMENTS); 5: access tokens, owners, actors (ACCESS_STATEMENTS)
SCHEMA_VERSION = 5

SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, experiment_id TEXT NOT NULL, name TEXT, status TEXT NOT NULL,
    parent_run_id TEXT, start_time REAL NOT NULL, end_time REAL, progress REAL,
    tags TEXT NOT NULL DEFAULT '{}', env TEXT NOT NULL DEFAULT '{}', updated_at REAL,
    owner TEXT, heartbeat_at REAL, lease_s REAL, failure TEXT, lost_at REAL);
CREATE INDEX IF NOT EXISTS runs_by_experiment ON runs(experiment_id, start_time);
CREATE TABLE IF NOT EXISTS params (
    run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (run_id, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS metric_series (
    id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, key TEXT NOT NULL, UNIQUE (run_id, key));
CREATE TABLE IF NOT EXISTS metric_chunks (
    id INTEGER PRIMARY KEY, series_id INTEGER NOT NULL, count INTEGER NOT NULL,
    min_step INTEGER NOT NULL, max_step INTEGER NOT NULL,
    steps BLOB NOT NULL, vals BLOB NOT NULL, times BLOB NOT NULL, epochs BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS metric_chunks_by_series ON metric_chunks(series_id, id);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY, run_id TEXT NOT NULL, name TEXT NOT NULL, timestamp REAL NOT NULL,
    duration_s REAL, attrs TEXT NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS events_by_run ON events(run_id, timestamp);
CREATE TABLE IF NOT EXISTS inputs (
    id TEXT PRIMARY KEY, run_id TEXT NOT NULL, kind TEXT NOT NULL, ref TEXT NOT NULL,
    timestamp REAL NOT NULL, attrs TEXT NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS inputs_by_run ON inputs(run_id);
CREATE TABLE IF NOT EXISTS artifacts (
    id TEXT PRIMARY KEY, run_id TEXT NOT NULL, name TEXT NOT NULL, path TEXT NOT NULL,
    bytes INTEGER, sha256 TEXT, kind TEXT NOT NULL, created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS artifacts_by_run ON artifacts(run_id);
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, version INTEGER NOT NULL, framework TEXT NOT NULL,
    run_id TEXT, experiment_id TEXT, metadata TEXT NOT NULL, labels TEXT NOT NULL,
    datasets TEXT NOT NULL, status TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,
    UNIQUE (name, version));
CREATE TABLE IF NOT EXISTS model_files (
    model_id TEXT NOT NULL, name TEXT NOT NULL, path TEXT NOT NULL, bytes INTEGER, sha256 TEXT,
    PRIMARY KEY (model_id, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS applied_batches (id TEXT PRIMARY KEY, applied_at REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, object_type TEXT NOT NULL,
    object_id TEXT NOT NULL, payload TEXT NOT NULL, timestamp REAL NOT NULL);
"""

# Version 2: params and the latest/min/max of each metric series in queryable, indexed form,
# for run search (backends/search_sql.py). Params are kept by a trigger, so every writer of the
# params table keeps them; metric summaries are updated with each batch of points.
_PARAM_NUM_SQL = """CASE WHEN json_valid(value) THEN CASE json_type(value)
    WHEN 'integer' THEN json_extract(value, '$') WHEN 'real' THEN json_extract(value, '$')
    WHEN 'true' THEN 1.0 WHEN 'false' THEN 0.0 END END"""
_PARAM_TEXT_SQL = "CASE WHEN json_valid(value) AND json_type(value) = 'text' THEN json_extract(value, '$') ELSE value END"
SEARCH_STATEMENTS = (
    "ALTER TABLE metric_series ADD COLUMN count INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE metric_series ADD COLUMN last_step INTEGER",
    "ALTER TABLE metric_series ADD COLUMN last_value REAL",
    "ALTER TABLE metric_series ADD COLUMN last_time REAL",
    "ALTER TABLE metric_series ADD COLUMN min_value REAL",
    "ALTER TABLE metric_series ADD COLUMN max_value REAL",
    "CREATE INDEX IF NOT EXISTS metric_series_by_last ON metric_series(key, last_value)",
    "CREATE INDEX IF NOT EXISTS metric_series_by_min ON metric_series(key, min_value)",
    "CREATE INDEX IF NOT EXISTS metric_series_by_max ON metric_series(key, max_value)",
    "CREATE TABLE IF NOT EXISTS param_values (run_id TEXT NOT NULL, key TEXT NOT NULL, num REAL, text TEXT,"
    " PRIMARY KEY (run_id, key)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS param_values_by_num ON param_values(key, num)",
    "CREATE INDEX IF NOT EXISTS param_values_by_text ON param_values(key, text)",
    "CREATE TRIGGER IF NOT EXISTS params_kept_queryable AFTER INSERT ON params BEGIN"
    " INSERT OR REPLACE INTO param_values VALUES (NEW.run_id, NEW.key, "
    + _PARAM_NUM_SQL.replace("value", "NEW.value") + ", " + _PARAM_TEXT_SQL.replace("value", "NEW.value") + "); END",
)

# Version 4: the registry and the run lifecycle: aliases, archived runs and experiments, a run's
# note, models registered by reference (source_uri), and the indexes deletes walk by.
REGISTRY_STATEMENTS = (
    "ALTER TABLE runs ADD COLUMN archived_at REAL",
    "ALTER TABLE runs ADD COLUMN note TEXT",
    "ALTER TABLE experiments ADD COLUMN archived_at REAL",
    "ALTER TABLE models ADD COLUMN source_uri TEXT",
    "CREATE TABLE IF NOT EXISTS model_aliases (name TEXT NOT NULL, alias TEXT NOT NULL, model_id TEXT NOT NULL,"
    " version INTEGER NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (name, alias)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS model_aliases_by_model ON model_aliases(model_id)",
    "CREATE INDEX IF NOT EXISTS runs_by_parent ON runs(parent_run_id)",
    "CREATE INDEX IF NOT EXISTS models_by_run ON models(run_id)",
)

# Version 5: who did what. Per-user access tokens of a team server (only a sha256 of each token
# is kept), the user who created each run and model (a writer may change only its own), and the
# actor of every change event (the feed is the audit log). Rows from before have no owner.
ACCESS_STATEMENTS = (
    "ALTER TABLE runs ADD COLUMN created_by TEXT",
    "ALTER TABLE models ADD COLUMN created_by TEXT",
    "ALTER TABLE changes ADD COLUMN actor TEXT",
    "CREATE TABLE IF NOT EXISTS access_tokens (id TEXT PRIMARY KEY, user_name TEXT NOT NULL, role TEXT NOT NULL,"
    " token_sha256 TEXT NOT NULL, created_at REAL NOT NULL, created_by TEXT, revoked_at REAL, revoked_by TEXT)",
    "CREATE INDEX IF NOT EXISTS access_tokens_by_user ON access_tokens(user_name)",
)

SUMMARY_UPDATE = """UPDATE metric_series SET count = count + ?1,
    last_value = CASE WHEN last_step IS NULL OR ?2 >= last_step THEN ?3 ELSE last_value END,
    last_time = CASE WHEN last_step IS NULL OR ?2 >= last_step THEN ?4 ELSE last_time END,
    last_step = CASE WHEN last_step IS NULL OR ?2 >= last_step THEN ?2 ELSE last_step END,
    min_value = min(coalesce(min_value, ?5), coalesce(?5, min_value)),
    max_value = max(coalesce(max_value, ?6), coalesce(?6, max_value))
    WHERE id = ?7"""


MODEL_INSERT_COLUMNS = ("id, name, version, framework, run_id, experiment_id, metadata, labels, datasets, status, created_at,"
                        " updated_at, source_uri, created_by")


def model_created(m: ModelRecord, version: int) -> dict[str, Any]:
    """The payload of a model's "created" change event (both SQL stores)."""
    payload = {"name": m.name, "version": version, "framework": m.framework, "run_id": m.run_id}
    if m.source_uri:
        payload["source_uri"] = m.source_uri
    return payload


def series_summary(series_id: int, points: list[tuple]) -> tuple:
    """Parameters of SUMMARY_UPDATE for one series' new points (tuples read by position);
    the latest is the point with the highest step (the last logged among equals); NaN is left
    out of min/max (and stored as NULL, as SQL has no NaN)."""
    last = points[0]
    for point in points:
        if point[3] >= last[3]:
            last = point
    finite = [p[2] for p in points if p[2] == p[2]]
    return (len(points), last[3], last[2], last[4], min(finite) if finite else None, max(finite) if finite else None, series_id)


# Version 3: who runs a run (owner: host, boot id, pid...), its lease (heartbeat_at + lease_s),
# why it failed (failure: JSON {type, message, traceback}) and when liveness declared it lost.
LIVENESS_COLUMNS = (
    ("owner", "TEXT"), ("heartbeat_at", "REAL"), ("lease_s", "REAL"), ("failure", "TEXT"), ("lost_at", "REAL"),
)
LIVENESS_INDEX = "CREATE INDEX IF NOT EXISTS runs_running ON runs(status) WHERE status = 'running'"
VERIFY_BUDGET_S = 2.0  # the damaged-page check when a writer opens the store reads at most this long

# SQLite result codes (the low byte of sqlite_errorcode): which failures are whose.
_BUSY = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED: another writer; retry
_DISK = {10, 13}  # SQLITE_IOERR, SQLITE_FULL: the disk; retry
_UNWRITABLE = {3, 8, 14, 23}  # SQLITE_PERM, SQLITE_READONLY, SQLITE_CANTOPEN, SQLITE_AUTH: someone must act
_DAMAGED = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
_TRANSIENT = ("locked", "busy", "disk i/o", "full", "unable to open")


NO_EPOCH = -(2**63)  # an absent epoch, inside a packed int64 array
_SWAP = sys.byteorder != "little"  # chunks are little-endian on disk whatever the machine


def _packed(typecode: str, values: list) -> bytes:
    packed = array(typecode, values)
    if _SWAP:
        packed.byteswap()
    return packed.tobytes()


def _unpacked(typecode: str, blob: bytes) -> array:
    values = array(typecode)
    values.frombytes(blob)
    if _SWAP:
        values.byteswap()
    return values


def pack_points(points: list[tuple]) -> tuple[int, int, int, bytes, bytes, bytes, bytes]:
    """(count, min_step, max_step, steps, values, timestamps, epochs) of one series' points."""
    steps = [p[3] for p in points]
    epochs = [NO_EPOCH if p[5] is None else p[5] for p in points]
    return (
        len(points), min(steps), max(steps), _packed("q", steps), _packed("d", [p[2] for p in points]),
        _packed("d", [p[4] for p in points]), _packed("q", epochs),
    )


def unpack_points(steps: bytes, values: bytes, times: bytes, epochs: bytes) -> list[MetricPoint]:
    return [
        MetricPoint(s, v, t, None if e == NO_EPOCH else e)
        for s, v, t, e in zip(_unpacked("q", steps), _unpacked("d", values), _unpacked("d", times),
                              _unpacked("q", epochs), strict=True)
    ]


path_from_uri = sqlite_path


def _classify(exc: sqlite3.Error, where: str) -> BackendError:
    """Transient (busy, disk full), unwritable (read-only, permission, damaged) or permanent."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        code &= 0xFF
        if code in _BUSY or code in _DISK:
            return BackendUnavailable(f"{where}: {exc}")
        if code in _UNWRITABLE:
            return StoreUnwritable(f"{where}: {exc} (the store is read-only or not ours to write; fix its permissions)")
        if code in _DAMAGED:
            return StoreUnwritable(f"{where}: {exc} (the store file is damaged)")
        return BackendError(f"{where}: {exc}")
    text = str(exc).lower()
    if "readonly" in text or "read-only" in text:
        return StoreUnwritable(f"{where}: {exc}")
    if isinstance(exc, sqlite3.OperationalError) and any(word in text for word in _TRANSIENT):
        return BackendUnavailable(f"{where}: {exc}")
    return BackendError(f"{where}: {exc}")


def _liveness_statements(conn: sqlite3.Connection) -> list[str]:
    """ALTER TABLE statements for the liveness columns the runs table does not have yet."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(runs)").fetchall()}
    return [f"ALTER TABLE runs ADD COLUMN {name} {kind}" for name, kind in LIVENESS_COLUMNS if name not in have]


class SQLiteStore(SqlStore, Backend, Store):
    """Both sides of a SQLite store; safe to share between threads (one connection, one lock)."""

    scheme = "sqlite"
    dialect = SQLITE
    read_only: str | None = None  # why registry writes are refused (a spool's private view)

    def __init__(self, uri: str, *, database: str | None = None, artifacts_dir: str | None = None,
                 artifacts: ArtifactStore | None = None) -> None:
        super().__init__(uri)
        artifacts_dir = artifacts_dir or artifacts_param(uri)
        self.path = database if database is not None else os.path.abspath(path_from_uri(uri))
        in_memory = self.path == ":memory:"
        if not in_memory:
            query = uri.split("#", 1)[0].partition("?")[2]
            self.uri = "sqlite:///" + self.path + (f"?{query}" if query else "")
            folder = os.path.dirname(self.path)
            try:
                os.makedirs(folder, exist_ok=True)
            except OSError as exc:
                raise BackendError(f"cannot create the store folder {folder}: {exc.strerror}") from exc
            if not os.access(folder, os.W_OK):
                raise StoreUnwritable(f"the store folder {folder} is read-only or not ours to write; fix its permissions")
        if artifacts is None:
            artifacts = open_artifacts(artifacts_dir or os.path.join(os.path.dirname(self.path), "artifacts"))
        self.artifact_store = artifacts  # where file bytes live: composed, not owned by the SQL
        self.artifacts_dir = getattr(artifacts, "root", None)  # the local folder, when it is one
        self._lock = threading.RLock()
        self._series: dict[tuple[str, str], int] = {}
        self._dead_seen: dict[str, str] = {}  # run id -> failure JSON: found dead, but the store is read-only
        try:
            self._conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
            self._prepare_when_free()
        except sqlite3.DatabaseError as exc:
            code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
            if code in _UNWRITABLE or code in _BUSY or code in _DISK:  # read-only, locked, full: not the file's fault
                raise _classify(exc, f"cannot open {self.path}") from exc
            raise BackendError(f"{self.path} is not a usable ModelBox store: {exc}") from exc

    # ---------------------------------------------------------------- setup
    def _prepare_when_free(self, budget_s: float = 15.0) -> None:
        """Set up the connection, retrying while another connection is creating the same new
        store (switching to WAL and creating tables can answer "locked" without waiting)."""
        deadline = time.monotonic() + budget_s
        delay = 0.01
        while True:
            try:
                self._prepare()
                return
            except sqlite3.OperationalError as exc:
                text = str(exc).lower()
                if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.25)

    def _prepare(self) -> None:
        conn = self._conn
        if self.path != ":memory:":
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.execute("PRAGMA cache_size=-65536")
        conn.execute("PRAGMA busy_timeout=5000")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise BackendError(
                f"{self.path} was written by a newer modelbox-autolog (schema v{version}; this version "
                f"reads up to v{SCHEMA_VERSION}); upgrade modelbox-autolog to use it"
            )
        if version == 0:
            tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[0]
            if tables:
                known = conn.execute("SELECT count(*) FROM sqlite_master WHERE name='runs'").fetchone()[0]
                if not known:
                    raise BackendError(f"{self.path} is a SQLite database of something else, not a ModelBox store")
            try:
                conn.execute("BEGIN IMMEDIATE")
                if conn.execute("PRAGMA user_version").fetchone()[0] == 0:  # not created meanwhile by another connection
                    for statement in [*SCHEMA.split(";"), *SEARCH_STATEMENTS, LIVENESS_INDEX, *REGISTRY_STATEMENTS,
                                      *ACCESS_STATEMENTS]:
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except sqlite3.Error:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        elif version < SCHEMA_VERSION:
            self._upgrade(conn)

    def _upgrade(self, conn: sqlite3.Connection) -> None:
        """An older store, upgraded in place in one transaction (another connection may race us):
        version 1 -> 2 adds the queryable side and fills it from what is stored; -> 3 adds the
        liveness and failure columns of runs; -> 4 the registry (aliases, archive, notes, references);
        -> 5 the access tokens, owners and actors (existing runs and models have no owner)."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version >= SCHEMA_VERSION:  # another connection did it meanwhile
                conn.execute("ROLLBACK")
                return
            if version < 2:
                for statement in SEARCH_STATEMENTS:
                    conn.execute(statement)
                conn.execute(f"INSERT OR REPLACE INTO param_values SELECT run_id, key, {_PARAM_NUM_SQL}, {_PARAM_TEXT_SQL} FROM params")
                for (series_id,) in conn.execute("SELECT id FROM metric_series").fetchall():
                    chunks = conn.execute("SELECT steps, vals, times, epochs FROM metric_chunks WHERE series_id=? ORDER BY id", (series_id,))
                    points = [(None, None, p.value, p.step, p.timestamp, p.epoch) for chunk in chunks for p in unpack_points(*chunk)]
                    if points:
                        conn.execute(SUMMARY_UPDATE, series_summary(series_id, points))
            for statement in _liveness_statements(conn):
                conn.execute(statement)
            conn.execute(LIVENESS_INDEX)
            if version < 4:
                for statement in REGISTRY_STATEMENTS:
                    conn.execute(statement)
            if version < 5:
                for statement in ACCESS_STATEMENTS:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def verify(self) -> None:
        """Damaged pages are found before anything is written into them (a full read of the file)."""
        if self.path == ":memory:":
            return
        deadline = time.monotonic() + VERIFY_BUDGET_S
        with self._lock:
            # Bounded: a very large store is checked as far as the budget goes (a damaged page met
            # later still fails the write that reads it, as SQLITE_CORRUPT, before it changes anything).
            self._conn.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
            try:
                problems = [row[0] for row in self._conn.execute("PRAGMA quick_check(5)").fetchall()]
            except sqlite3.OperationalError as exc:
                problems = ["ok"] if "interrupt" in str(exc).lower() else [str(exc)]
            except sqlite3.DatabaseError as exc:
                problems = [str(exc)]
            finally:
                self._conn.set_progress_handler(None, 0)
        if problems != ["ok"]:
            found = "; ".join(" ".join(str(p).split()) for p in problems)[:300]
            raise StoreUnwritable(
                f"the store {self.path} is damaged ({found}); nothing is written into it. "
                f"Recover it with: sqlite3 {self.path} .recover | sqlite3 recovered.db"
            )

    def store(self) -> SQLiteStore:
        return self

    def fork_lock(self) -> Any:
        return self._lock  # every use of the connection holds it

    def close(self) -> None:
        with self._lock:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass

    # ---------------------------------------------------------------- write side
    def write(self, batch: Batch, placed: Placed | None = None, actor: str | None = None) -> bool:
        """Store a batch once; ``placed`` names files already in the artifact store (the server's
        verified uploads), the others are copied there first, outside the transaction. ``actor``
        creates the batch's runs and models and is recorded on its change events (see _actor)."""
        actor = current_actor(actor)
        groups = batch.by_type()
        heartbeat_only = only_heartbeats(groups)
        if not heartbeat_only and self._applied(batch.id):
            return False  # re-sent (retry, replay, sync): its files are stored already
        refusals = name_refusals(groups)
        if refusals:
            raise RecordRefused(refusals)  # the same names every store and the server refuse
        files = place_files(self.artifact_store, groups, placed)  # slow part first, outside the transaction
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _classify(exc, f"cannot write to {self.path}") from exc
            new_series: dict[tuple[str, str], int] = {}
            try:
                now = time.time()
                if not heartbeat_only:  # heartbeats are idempotent: no batch id to remember
                    if conn.execute("SELECT 1 FROM applied_batches WHERE id=?", (batch.id,)).fetchone():
                        conn.execute("ROLLBACK")
                        return False
                    conn.execute("INSERT INTO applied_batches VALUES (?, ?)", (batch.id, now))
                changes: list[tuple[str, str, str, str, float]] = []
                self._apply(conn, groups, files, new_series, changes, now, actor)
                if changes:
                    conn.executemany(
                        "INSERT INTO changes(kind, object_type, object_id, payload, timestamp, actor) VALUES (?,?,?,?,?,?)",
                        [(*change, actor) for change in changes],
                    )
                conn.execute("COMMIT")
            except BaseException as exc:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                if isinstance(exc, sqlite3.Error):
                    raise _classify(exc, f"writing to {self.path}") from exc
                raise
            self._series.update(new_series)
        return True

    def _applied(self, batch_id: str) -> bool:
        with self._lock:
            try:
                return self._conn.execute("SELECT 1 FROM applied_batches WHERE id=?", (batch_id,)).fetchone() is not None
            except sqlite3.Error as exc:
                raise _classify(exc, f"cannot read {self.path}") from exc

    def applied(self, batch_id: str) -> bool:
        """Whether a batch id was stored before (a re-sent batch)."""
        return self._applied(batch_id)

    def _experiment_id(self, conn: sqlite3.Connection, name: str, now: float, changes: list) -> str:
        row = conn.execute("SELECT id, archived_at FROM experiments WHERE name=?", (name,)).fetchone()
        if row:
            if row[1] is not None:  # a new run in an archived experiment brings it back
                conn.execute("UPDATE experiments SET archived_at=NULL WHERE id=?", (row[0],))
                changes.append(("updated", "experiment", row[0], _dumps({"name": name, "archived": False}), now))
            return row[0]
        exp_id = new_id()
        conn.execute("INSERT INTO experiments (id, name, created_at) VALUES (?,?,?)", (exp_id, name, now))
        changes.append(("created", "experiment", exp_id, _dumps({"name": name}), now))
        return exp_id

    def _series_id(self, conn: sqlite3.Connection, run_id: str, key: str, new_series: dict) -> int:
        ident = (run_id, key)
        sid = new_series.get(ident)
        if sid is None:
            cur = conn.execute("INSERT OR IGNORE INTO metric_series(run_id, key) VALUES (?,?)", ident)
            if cur.rowcount:
                sid = cur.lastrowid
            else:
                sid = conn.execute("SELECT id FROM metric_series WHERE run_id=? AND key=?", ident).fetchone()[0]
            new_series[ident] = sid
        return sid

    def _apply(self, conn, groups, files, new_series, changes, now, actor) -> None:  # noqa: C901 - one step per type
        for rec in groups.get(RunStart, ()):
            exp_id = self._experiment_id(conn, rec.experiment, now, changes)
            owner = rec.owner or None
            lease = owner.get("lease_s") if owner else None
            cur = conn.execute(
                "INSERT OR IGNORE INTO runs(id, experiment_id, name, status, parent_run_id, start_time, tags, updated_at,"
                " owner, heartbeat_at, lease_s, created_by) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (rec.run_id, exp_id, rec.name, "running", rec.parent_run_id, rec.start_time, _dumps(rec.tags), now,
                 _dumps(owner) if owner else None, min(rec.start_time, now) if owner else None, lease, actor),
            )
            if cur.rowcount:
                payload = {"name": rec.name, "experiment": rec.experiment, "parent_run_id": rec.parent_run_id}
                changes.append(("created", "run", rec.run_id, _dumps(payload), now))

        params = groups.get(Param)
        if params:
            conn.executemany("INSERT OR REPLACE INTO params VALUES (?,?,?)", [(p.run_id, p.key, p.value) for p in params])
            changes.extend(change_feed.param_changes(params, now))

        metrics = groups.get(Metric)
        if metrics:  # tuples (run_id, key, value, step, timestamp, epoch), read by position
            by_series: dict[tuple[str, str], list[tuple]] = {}
            for m in metrics:
                points = by_series.get((m[0], m[1]))
                if points is None:
                    points = by_series[(m[0], m[1])] = []
                points.append(m)
            rows, summaries, ranges = [], [], []
            for (run_id, key), points in by_series.items():
                sid = self._series.get((run_id, key)) or self._series_id(conn, run_id, key, new_series)
                packed = pack_points(points)
                rows.append((sid, *packed))
                summaries.append(series_summary(sid, points))
                ranges.append((run_id, key, packed[0], packed[1], packed[2]))
            conn.executemany(
                "INSERT INTO metric_chunks(series_id, count, min_step, max_step, steps, vals, times, epochs)"
                " VALUES (?,?,?,?,?,?,?,?)",
                rows,
            )
            conn.executemany(SUMMARY_UPDATE, summaries)
            changes.extend(change_feed.metric_changes(ranges, now))

        events = groups.get(EventRecord)
        if events:
            conn.executemany(
                "INSERT OR IGNORE INTO events VALUES (?,?,?,?,?,?)",
                [(e.id, e.run_id, e.name, e.timestamp, e.duration_s, _dumps(e.attrs)) for e in events],
            )
            for e in events:
                changes.append(("appended", "event", e.run_id, _dumps({"name": e.name, "attrs": e.attrs}), now))

        inputs = groups.get(InputRecord)
        if inputs:
            conn.executemany(
                "INSERT OR IGNORE INTO inputs VALUES (?,?,?,?,?,?)",
                [(i.id, i.run_id, i.kind, i.ref, i.timestamp, _dumps(i.attrs)) for i in inputs],
            )

        for a in groups.get(ArtifactRecord, ()):
            rel, size, sha = files[a.id]
            cur = conn.execute(
                "INSERT OR IGNORE INTO artifacts VALUES (?,?,?,?,?,?,?,?)",
                (a.id, a.run_id, a.name, rel, size, sha, a.kind, now),
            )
            if cur.rowcount:
                changes.append(("created", "artifact", a.id, _dumps({"run_id": a.run_id, "name": a.name, "bytes": size}), now))

        for m in groups.get(ModelRecord, ()):
            if conn.execute("SELECT 1 FROM models WHERE id=?", (m.id,)).fetchone():
                continue
            version = conn.execute("SELECT coalesce(max(version), 0) + 1 FROM models WHERE name=?", (m.name,)).fetchone()[0]
            exp = conn.execute("SELECT experiment_id FROM runs WHERE id=?", (m.run_id,)).fetchone() if m.run_id else None
            conn.execute(
                f"INSERT INTO models ({MODEL_INSERT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (m.id, m.name, version, m.framework, m.run_id, exp[0] if exp else None, _dumps(m.metadata),
                 _dumps(m.labels), _dumps(m.datasets), m.status, m.created_at, now, m.source_uri, actor),
            )
            for f in m.files:
                rel, size, sha = files[f"{m.id}/{f.name}"]
                conn.execute("INSERT OR REPLACE INTO model_files VALUES (?,?,?,?,?)", (m.id, f.name, rel, size, sha))
            changes.append(("created", "model", m.id, _dumps(model_created(m, version)), now))

        changes.extend(self._run_update_changes(conn, groups.get(RunUpdate), now))

    # ---------------------------------------------------------------- liveness
    def reap(self, now: float | None = None) -> list[str]:
        """Mark ``killed`` the running runs whose process is gone: on this machine by pid (at
        once), elsewhere when their lease ran out. Best effort (a read-only store is left as it
        is); returns the ids of the runs found dead."""
        now = time.time() if now is None else now
        self._reaped_at = time.monotonic()
        dead = self._dead_runs(now)
        if not dead:
            return []
        with self._lock:
            conn = self._conn
            conn.execute("PRAGMA busy_timeout=50")  # a reader never waits on a writer for this
            try:
                conn.execute("BEGIN IMMEDIATE")
                for run_id, last_seen, failure in dead:
                    cur = conn.execute(
                        "UPDATE runs SET status='killed', end_time=?, failure=?, lost_at=?, updated_at=?"
                        " WHERE id=? AND status='running'",
                        (last_seen, failure, now, now, run_id),
                    )
                    if cur.rowcount:
                        conn.execute(
                            "INSERT INTO changes(kind, object_type, object_id, payload, timestamp, actor) VALUES (?,?,?,?,?,?)",
                            ("updated", "run", run_id, _dumps({"status": "killed", "end_time": last_seen}), now, LIVENESS_ACTOR),
                        )
                conn.execute("COMMIT")
            except sqlite3.Error:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                self._dead_seen.update((run_id, failure) for run_id, _last, failure in dead)  # shown, not stored
            finally:
                conn.execute("PRAGMA busy_timeout=5000")
        return [run_id for run_id, _last, _failure in dead]

    # ---------------------------------------------------------------- read side
    def _query(self, sql: str, args: Iterable[Any] = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._conn.execute(sql, tuple(args)).fetchall()
            except sqlite3.Error as exc:
                raise _classify(exc, f"reading {self.path}") from exc

    def _read(self, sql: str, args: Iterable[Any] = (), operation: str = "query") -> list[tuple]:
        return self._query(sql, args)

    @contextmanager
    def _transaction(self, operation: str) -> Iterator[Tx]:
        """One write transaction (BEGIN IMMEDIATE: the database's write lock), change rows last."""
        if self.read_only:
            raise BackendError(self.read_only)
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _classify(exc, f"cannot write to {self.path}") from exc
            tx = Tx(conn, SQLITE, time.time())
            try:
                yield tx
                if tx.changes:
                    conn.executemany("INSERT INTO changes(kind, object_type, object_id, payload, timestamp, actor)"
                                     " VALUES (?,?,?,?,?,?)", tx.changes)
                conn.execute("COMMIT")
            except BaseException as exc:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                if isinstance(exc, sqlite3.Error):
                    raise _classify(exc, f"{operation} in {self.path}") from exc
                raise
