"""``postgresql://USER@HOST:PORT/DB``: the team store on PostgreSQL (psycopg 3 and its pool).

The same data model and guarantees as the SQLite store, for any number of server replicas:
- a batch is one transaction that inserts its id into ``applied_batches`` (a unique key, ``ON
  CONFLICT DO NOTHING``): a batch re-sent to any replica is skipped whole, never half-applied;
- metric points are packed chunks (the SQLite layout, one row per series and batch);
- change events take a transaction-scoped advisory lock just before they are inserted, so
  sequence numbers become visible in increasing order across replicas (a watcher reading
  ``seq > last`` never skips one), and a NOTIFY wakes the watchers of every replica;
- model updates lock the model's row: a finalized model stays immutable under concurrent writers.
The password comes from the URI, ``PGPASSWORD`` or ``~/.pgpass`` (libpq's own rules).
Artifact bytes live in an artifact store named by ``?artifacts=`` or by the store's settings.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import psycopg.errors
from psycopg_pool import ConnectionPool, PoolTimeout

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
from ..artifacts import ArtifactStore, ArtifactStoreError, open_artifacts, place_files
from ..artifacts.layout import Placed
from . import change_feed, pg_migrations
from .base import (
    Backend,
    BackendError,
    BackendUnavailable,
    RecordRefused,
    Store,
    StoreUnwritable,
)
from .search_sql import POSTGRESQL
from .sql_store import SqlStore, Tx, only_heartbeats
from .sql_store import dumps as _dumps

# One rule for both SQL stores: chunk packing and summaries (liveness is in sql_store).
from .sqlite import (
    MODEL_INSERT_COLUMNS,
    model_created,
    pack_points,
    series_summary,
)

CHANGES_LOCK = 0x6D6F64656C626F78  # "modelbox": orders change sequence numbers by commit
NOTIFY_CHANNEL = "modelbox_changes"
WRITE_ATTEMPTS = 4  # deadlocks and serialization failures between replicas are retried here
OUR_PARAMS = ("artifacts", "pool_size")

# Called after every database operation: (operation, seconds, error kind or None).
QueryObserver = Callable[[str, float, "str | None"], None]


# The latest, minimum and maximum of a series, kept on ingest for run search (as in SQLite): the
# latest is the point with the highest step; NaN is kept out of min/max and stored as NULL, as
# SQLite does, so both stores sort and compare the same way.
SUMMARY_UPDATE = """UPDATE metric_series SET count = count + %(count)s,
    last_value = CASE WHEN last_step IS NULL OR %(step)s >= last_step THEN %(value)s ELSE last_value END,
    last_time = CASE WHEN last_step IS NULL OR %(step)s >= last_step THEN %(time)s ELSE last_time END,
    last_step = CASE WHEN last_step IS NULL OR %(step)s >= last_step THEN %(step)s ELSE last_step END,
    min_value = LEAST(min_value, %(low)s), max_value = GREATEST(max_value, %(high)s)
    WHERE id = %(id)s"""


def summary_params(series_id: int, points: list[tuple]) -> dict[str, Any]:
    count, step, value, when, low, high, _ = series_summary(series_id, points)
    return {"count": count, "step": step, "value": None if value != value else value, "time": when, "low": low,
            "high": high, "id": series_id}


def param_value_row(run_id: str, key: str, text: str) -> tuple[str, str, float | None, str]:
    """(run_id, key, num, text) of one param's JSON text, with the SQLite store's rules: numbers
    and booleans (1/0) are numeric, a JSON string is its text, anything else its JSON text."""
    try:
        value = json.loads(text, parse_constant=lambda name: _NOT_JSON)
    except ValueError:
        return run_id, key, None, text
    if value is _NOT_JSON:
        return run_id, key, None, text
    if isinstance(value, bool):
        return run_id, key, 1.0 if value else 0.0, text
    if isinstance(value, (int, float)):
        return run_id, key, float(value), text
    if isinstance(value, str):
        return run_id, key, None, value
    return run_id, key, None, text


_NOT_JSON = object()  # NaN / Infinity: not JSON for SQLite's json_valid either


def split_uri(uri: str) -> tuple[str, str, dict[str, str]]:
    """(libpq connection URI, display URI without password or our parameters, our parameters)."""
    parts = urlsplit(uri.split("#", 1)[0])
    if parts.scheme not in ("postgresql", "postgres"):
        raise BackendError(f"{uri!r} is not a PostgreSQL URI; expected postgresql://USER@HOST:PORT/DB")
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in pairs if k in OUR_PARAMS}
    libpq = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode([(k, v) for k, v in pairs if k not in OUR_PARAMS]), ""))
    netloc = parts.netloc.rsplit("@", 1)
    host = netloc[-1]
    user = netloc[0].split(":", 1)[0] + "@" if len(netloc) == 2 else ""
    display = urlunsplit(("postgresql", user + host, parts.path, urlencode(list(ours.items())), ""))
    return libpq, display, ours


def _where(conninfo: str) -> str:
    parts = urlsplit(conninfo)
    user = parts.username or "(default user)"
    hosts = parts.netloc.rsplit("@", 1)[-1] or "localhost"  # libpq allows host1:port1,host2:port2
    if ":" not in hosts and "," not in hosts:
        hosts += ":5432"
    return f"PostgreSQL {hosts}/{parts.path.lstrip('/') or user} as {user}"


def connect_error(exc: Exception, conninfo: str) -> BackendError:
    """A precise message for a failed connection: wrong password, missing database, unreachable."""
    text = str(exc).strip()
    where = _where(conninfo)
    lowered = text.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return BackendError(f"cannot log in to {where}: {text.splitlines()[-1]} (give the password in the URI, "
                            "PGPASSWORD or ~/.pgpass)")
    if "does not exist" in lowered and "database" in lowered:
        return BackendError(f"{where}: {text.splitlines()[-1]}; create it first (createdb) or fix the URI")
    if "role" in lowered and "does not exist" in lowered:
        return BackendError(f"{where}: {text.splitlines()[-1]}")
    return BackendUnavailable(f"cannot reach {where}: {text.splitlines()[-1] if text else type(exc).__name__}")


def classify(exc: Exception, doing: str) -> BackendError:
    """Transient (connection lost, server restarting, deadlock, disk full) -> BackendUnavailable;
    a read-only database (a standby) or missing privileges -> StoreUnwritable (someone must act);
    anything else (a value the database refuses) -> BackendError, narrowed to its records."""
    if isinstance(exc, BackendError):
        return exc
    if isinstance(exc, (psycopg.errors.ReadOnlySqlTransaction, psycopg.errors.InsufficientPrivilege)):
        return StoreUnwritable(f"{doing}: {exc}".strip())
    if isinstance(exc, (psycopg.errors.DiskFull, psycopg.errors.OutOfMemory, psycopg.errors.TooManyConnections)):
        return BackendUnavailable(f"{doing}: {exc}".strip())
    if isinstance(exc, (psycopg.OperationalError, PoolTimeout, psycopg.errors.SerializationFailure,
                        psycopg.errors.DeadlockDetected, psycopg.errors.AdminShutdown, psycopg.errors.CannotConnectNow)):
        return BackendUnavailable(f"{doing}: {exc}".strip())
    return BackendError(f"{doing}: {exc}".strip())


class _Duplicate(Exception):
    """This batch id was applied before: roll back, store nothing."""


class _UnconfiguredArtifacts(ArtifactStore):
    """Stands in when a store has no artifact location yet: every file operation says so."""

    def __init__(self, store_uri: str) -> None:
        self.uri = "(none)"
        self._message = (f"{store_uri} has no artifact location; start `modelbox server --store URI --artifacts "
                         "s3://BUCKET/PREFIX` once (it is remembered), or add ?artifacts=s3://BUCKET/PREFIX to the URI")

    def _refuse(self, *args: Any, **kwargs: Any):
        raise ArtifactStoreError(self._message)

    put = get = size = delete = list = _refuse  # type: ignore[assignment]

    def location(self, key: str) -> str:
        return key

    def key_of(self, location: str) -> str | None:
        return location if "://" not in location and not location.startswith("/") else None


class PostgresStore(SqlStore, Backend, Store):
    """Both sides of a PostgreSQL store; thread-safe (a connection pool)."""

    scheme = "postgresql"
    dialect = POSTGRESQL

    def __init__(self, uri: str, *, artifacts: ArtifactStore | None = None, pool_size: int | None = None,
                 upgrade: bool = False, observer: QueryObserver | None = None) -> None:
        super().__init__(uri)
        self.conninfo, self.uri, params = split_uri(uri)
        self.observer = observer
        self._series: dict[tuple[str, str], int] = {}
        size = int(pool_size or params.get("pool_size") or 4)
        self._check_and_prepare(upgrade)
        self._pool = ConnectionPool(
            self.conninfo, min_size=1, max_size=max(size, 1), open=False, name="modelbox",
            kwargs={"connect_timeout": 5}, check=ConnectionPool.check_connection, timeout=10.0,
            reconnect_timeout=0,  # keep trying while the database is away; callers see BackendUnavailable
        )
        try:
            self._pool.open(wait=True, timeout=15.0)
        except PoolTimeout as exc:
            self._pool.close()
            raise BackendUnavailable(f"cannot reach {_where(self.conninfo)}: {exc}") from exc
        location = params.get("artifacts")
        if artifacts is None:
            location = location or self.setting("artifacts")
            artifacts = open_artifacts(location) if location else _UnconfiguredArtifacts(self.uri)
        self.artifact_store = artifacts
        self._listener: psycopg.Connection | None = None
        self._ping_conn: psycopg.Connection | None = None
        self._ping_lock = threading.Lock()
        self._listen_lock = threading.Lock()

    # ---------------------------------------------------------------- setup
    def _check_and_prepare(self, upgrade: bool) -> None:
        """Connect once (precise errors), then check the schema version: initialise an empty
        database, refuse an older schema unless asked to upgrade, refuse a newer one."""
        try:
            conn = psycopg.connect(self.conninfo, connect_timeout=5, autocommit=True)
        except psycopg.Error as exc:
            raise connect_error(exc, self.conninfo) from exc
        try:
            version = pg_migrations.current_version(conn)
            if version < 0:
                raise BackendError(f"{self.uri} holds a 'runs' table of something else, not a ModelBox store")
            if version > pg_migrations.LATEST:
                raise BackendError(
                    f"{self.uri} has schema v{version}, written by a newer modelbox-autolog (this one knows up to "
                    f"v{pg_migrations.LATEST}); upgrade modelbox-autolog to use it"
                )
            if version == 0 or (upgrade and version < pg_migrations.LATEST):
                pg_migrations.upgrade(conn)
            elif version < pg_migrations.LATEST:
                raise BackendError(
                    f"{self.uri} has schema v{version}, older than this modelbox-autolog's v{pg_migrations.LATEST}; "
                    f"back it up, then run: modelbox db upgrade {self.uri}"
                )
        except psycopg.Error as exc:
            raise classify(exc, f"preparing {self.uri}") from exc
        finally:
            conn.close()

    def store(self) -> PostgresStore:
        return self

    def close(self) -> None:
        self._pool.close()
        for conn in (self._listener, self._ping_conn):
            if conn is not None:
                try:
                    conn.close()
                except psycopg.Error:
                    pass
        self.artifact_store.close()

    def pool_stats(self) -> dict[str, int]:
        return self._pool.get_stats()

    def ping(self, timeout: float = 2.0) -> bool:
        """Whether the database answers now (the server's health check). A connection of its
        own, so a pool busy with writes is never mistaken for a database that is down."""
        with self._ping_lock:
            try:
                if self._ping_conn is None or self._ping_conn.closed:
                    self._ping_conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=max(1, int(timeout)),
                                                      options=f"-c statement_timeout={int(timeout * 1000)}")
                self._ping_conn.execute("SELECT 1")
                return True
            except psycopg.Error:
                if self._ping_conn is not None:
                    self._ping_conn.close()
                self._ping_conn = None
                return False

    def setting(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM store_settings WHERE key=%s", (key,), "setting")
        return rows[0][0] if rows else None

    def claim_setting(self, key: str, value: str) -> str:
        """Set ``key`` unless it is set; the value in force either way."""
        with self._observed("setting"), self._pool.connection() as conn:
            conn.execute("INSERT INTO store_settings VALUES (%s, %s) ON CONFLICT (key) DO NOTHING", (key, value))
            return conn.execute("SELECT value FROM store_settings WHERE key=%s", (key,)).fetchone()[0]

    def _observed(self, operation: str):
        return _Timer(self.observer, operation)

    # ---------------------------------------------------------------- write side
    def write(self, batch: Batch, placed: Placed | None = None, actor: str | None = None) -> bool:
        """Store a batch once (False: its id was stored before); ``placed`` names files already
        in the artifact store. Names no store takes are refused (RecordRefused) before anything.
        ``actor`` creates the batch's runs and models and is recorded on its change events (see _actor)."""
        actor = current_actor(actor)
        groups = batch.by_type()
        heartbeat_only = only_heartbeats(groups)
        if not heartbeat_only and self.applied(batch.id):
            return False  # re-sent (retry, replay, sync): its files are stored already
        refusals = name_refusals(groups)
        if refusals:
            raise RecordRefused(refusals)  # the same names every store and the server refuse
        files = place_files(self.artifact_store, groups, placed)
        for attempt in range(WRITE_ATTEMPTS):
            new_series: dict[tuple[str, str], int] = {}
            try:
                with self._observed("write_batch"), self._pool.connection() as conn, conn.transaction():
                    now = time.time()
                    if not heartbeat_only:  # heartbeats are idempotent: no batch id to remember
                        cur = conn.execute("INSERT INTO applied_batches VALUES (%s, %s) ON CONFLICT DO NOTHING",
                                           (batch.id, now))
                        if cur.rowcount == 0:
                            raise _Duplicate
                    changes: list[tuple] = []
                    self._apply(conn, groups, files, new_series, changes, now, actor)
                    self._append_changes(conn, changes, actor)
            except _Duplicate:
                return False
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as exc:
                if attempt + 1 < WRITE_ATTEMPTS:
                    time.sleep(0.01 * (attempt + 1))
                    continue
                raise classify(exc, f"writing batch {batch.id} to {self.uri}") from exc
            except (psycopg.Error, PoolTimeout) as exc:
                raise classify(exc, f"writing batch {batch.id} to {self.uri}") from exc
            except (OverflowError, TypeError, ValueError) as exc:  # a value no column takes (a step past 64 bits)
                raise BackendError(f"writing batch {batch.id} to {self.uri}: {exc}") from exc
            self._series.update(new_series)
            return True
        return True

    def applied(self, batch_id: str) -> bool:
        return bool(self._query("SELECT 1 FROM applied_batches WHERE id=%s", (batch_id,), "applied"))

    @staticmethod
    def _append_changes(conn: psycopg.Connection, changes: list[tuple], actor: str | None = None) -> None:
        """Last statements of a transaction: the lock orders sequence numbers by commit."""
        if not changes:
            return
        actor = current_actor(actor)  # rows of a registry write (Tx.change) carry their own
        with conn.pipeline(), conn.cursor() as cur:  # one round trip for the lock, the rows and the NOTIFY
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (CHANGES_LOCK,))
            cur.executemany(
                "INSERT INTO changes (kind, object_type, object_id, payload, timestamp, actor) VALUES (%s, %s, %s, %s, %s, %s)",
                [change if len(change) == 6 else (*change, actor) for change in changes],
            )
            cur.execute("SELECT pg_notify(%s, '')", (NOTIFY_CHANNEL,))

    def _experiment_id(self, conn: psycopg.Connection, name: str, now: float, changes: list) -> str:
        row = conn.execute("SELECT id, archived_at FROM experiments WHERE name=%s", (name,)).fetchone()
        if row:
            if row[1] is not None:  # a new run in an archived experiment brings it back
                cur = conn.execute("UPDATE experiments SET archived_at=NULL WHERE id=%s AND archived_at IS NOT NULL", (row[0],))
                if cur.rowcount:
                    changes.append(("updated", "experiment", row[0], _dumps({"name": name, "archived": False}), now))
            return row[0]
        exp_id = new_id()
        cur = conn.execute("INSERT INTO experiments (id, name, created_at) VALUES (%s, %s, %s) ON CONFLICT (name) DO NOTHING",
                           (exp_id, name, now))
        if cur.rowcount:
            changes.append(("created", "experiment", exp_id, _dumps({"name": name}), now))
            return exp_id
        return conn.execute("SELECT id FROM experiments WHERE name=%s", (name,)).fetchone()[0]

    def _series_ids(self, conn: psycopg.Connection, idents: list[tuple[str, str]], new_series: dict) -> dict:
        missing = [i for i in idents if i not in self._series]
        found = {i: self._series[i] for i in idents if i in self._series}
        if missing:
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO metric_series (run_id, key) VALUES (%s, %s) ON CONFLICT DO NOTHING", missing)
            rows = conn.execute(
                "SELECT run_id, key, id FROM metric_series WHERE (run_id, key) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
                ([m[0] for m in missing], [m[1] for m in missing]),
            ).fetchall()
            for run_id, key, sid in rows:
                found[(run_id, key)] = new_series[(run_id, key)] = sid
        return found

    def _apply(self, conn, groups, files, new_series, changes, now, actor) -> None:  # noqa: C901 - one step per type
        for rec in groups.get(RunStart, ()):
            exp_id = self._experiment_id(conn, rec.experiment, now, changes)
            owner = rec.owner or None
            cur = conn.execute(
                "INSERT INTO runs (id, experiment_id, name, status, parent_run_id, start_time, tags, updated_at, owner,"
                " heartbeat_at, lease_s, created_by) VALUES (%s, %s, %s, 'running', %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (id) DO NOTHING",
                (rec.run_id, exp_id, rec.name, rec.parent_run_id, rec.start_time, _dumps(rec.tags), now,
                 _dumps(owner) if owner else None, min(rec.start_time, now) if owner else None,
                 owner.get("lease_s") if owner else None, actor),
            )
            if cur.rowcount:
                payload = {"name": rec.name, "experiment": rec.experiment, "parent_run_id": rec.parent_run_id}
                changes.append(("created", "run", rec.run_id, _dumps(payload), now))

        params = groups.get(Param)
        if params:
            latest = {(p.run_id, p.key): p.value for p in params}  # the last value of a key wins, as in SQLite
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO params VALUES (%s, %s, %s) ON CONFLICT (run_id, key) DO UPDATE SET value = EXCLUDED.value",
                    [(r, k, v) for (r, k), v in latest.items()],
                )
                cur.executemany(
                    "INSERT INTO param_values VALUES (%s, %s, %s, %s) ON CONFLICT (run_id, key) DO UPDATE"
                    " SET num = EXCLUDED.num, text = EXCLUDED.text",
                    [param_value_row(r, k, v) for (r, k), v in latest.items()],
                )
            changes.extend(change_feed.param_changes(params, now))

        metrics = groups.get(Metric)
        if metrics:  # tuples (run_id, key, value, step, timestamp, epoch), read by position
            by_series: dict[tuple[str, str], list[tuple]] = {}
            for m in metrics:
                points = by_series.get((m[0], m[1]))
                if points is None:
                    points = by_series[(m[0], m[1])] = []
                points.append(m)
            ids = self._series_ids(conn, list(by_series), new_series)
            packed = {ident: pack_points(points) for ident, points in by_series.items()}
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO metric_chunks (series_id, count, min_step, max_step, steps, vals, times, epochs)"
                    " VALUES (%s, %s, %s, %s, %b, %b, %b, %b)",
                    [(ids[ident], *chunk) for ident, chunk in packed.items()],
                )
                # in series-id order: two replicas updating the same series never deadlock
                cur.executemany(SUMMARY_UPDATE, sorted((summary_params(ids[ident], points) for ident, points in by_series.items()),
                                                       key=lambda params: params["id"]))
            changes.extend(change_feed.metric_changes(
                ((run_id, key, chunk[0], chunk[1], chunk[2]) for (run_id, key), chunk in packed.items()), now))

        events = groups.get(EventRecord)
        if events:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO events (id, run_id, name, timestamp, duration_s, attrs) VALUES (%s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (id) DO NOTHING",
                    [(e.id, e.run_id, e.name, e.timestamp, e.duration_s, _dumps(e.attrs)) for e in events],
                )
            for e in events:
                changes.append(("appended", "event", e.run_id, _dumps({"name": e.name, "attrs": e.attrs}), now))

        inputs = groups.get(InputRecord)
        if inputs:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO inputs (id, run_id, kind, ref, timestamp, attrs) VALUES (%s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (id) DO NOTHING",
                    [(i.id, i.run_id, i.kind, i.ref, i.timestamp, _dumps(i.attrs)) for i in inputs],
                )

        for a in groups.get(ArtifactRecord, ()):
            rel, size, sha = files[a.id]
            cur = conn.execute(
                "INSERT INTO artifacts (id, run_id, name, path, bytes, sha256, kind, created_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                (a.id, a.run_id, a.name, rel, size, sha, a.kind, now),
            )
            if cur.rowcount:
                changes.append(("created", "artifact", a.id, _dumps({"run_id": a.run_id, "name": a.name, "bytes": size}), now))

        for m in groups.get(ModelRecord, ()):
            # One version number per name across replicas: serialise on the name, then count.
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", ("model:" + m.name,))
            if conn.execute("SELECT 1 FROM models WHERE id=%s", (m.id,)).fetchone():
                continue
            version = conn.execute("SELECT coalesce(max(version), 0) + 1 FROM models WHERE name=%s", (m.name,)).fetchone()[0]
            exp = conn.execute("SELECT experiment_id FROM runs WHERE id=%s", (m.run_id,)).fetchone() if m.run_id else None
            conn.execute(
                f"INSERT INTO models ({MODEL_INSERT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (m.id, m.name, version, m.framework, m.run_id, exp[0] if exp else None, _dumps(m.metadata),
                 _dumps(m.labels), _dumps(m.datasets), m.status, m.created_at, now, m.source_uri, actor),
            )
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO model_files VALUES (%s, %s, %s, %s, %s) ON CONFLICT (model_id, name) DO UPDATE"
                    " SET path = EXCLUDED.path, bytes = EXCLUDED.bytes, sha256 = EXCLUDED.sha256",
                    [(m.id, f.name, *files[f"{m.id}/{f.name}"]) for f in m.files],
                )
            changes.append(("created", "model", m.id, _dumps(model_created(m, version)), now))

        changes.extend(self._run_update_changes(conn, groups.get(RunUpdate), now))

    # ---------------------------------------------------------------- liveness
    def reap(self, now: float | None = None) -> list[str]:
        """Mark ``killed`` the running runs whose process is gone: on this machine by pid (at
        once), elsewhere when their lease ran out. Several replicas may reap at once: the
        conditional update lets one of them record each death (and its change event)."""
        now = time.time() if now is None else now
        self._reaped_at = time.monotonic()
        dead = self._dead_runs(now)
        if not dead:
            return []
        try:
            with self._observed("reap"), self._pool.connection() as conn, conn.transaction():
                changes = []
                for run_id, last_seen, failure in dead:
                    cur = conn.execute(
                        "UPDATE runs SET status='killed', end_time=%s, failure=%s, lost_at=%s, updated_at=%s"
                        " WHERE id=%s AND status='running'",
                        (last_seen, failure, now, now, run_id),
                    )
                    if cur.rowcount:
                        changes.append(("updated", "run", run_id, _dumps({"status": "killed", "end_time": last_seen}), now))
                self._append_changes(conn, changes, LIVENESS_ACTOR)
        except (psycopg.Error, PoolTimeout) as exc:
            raise classify(exc, f"marking dead runs killed in {self.uri}") from exc
        return [run_id for run_id, _last, _failure in dead]

    # ---------------------------------------------------------------- read side
    def _query(self, sql: str, args: Iterable[Any] = (), operation: str = "query") -> list[tuple]:
        try:
            with self._observed(operation), self._pool.connection() as conn:
                return conn.execute(sql, tuple(args)).fetchall()
        except (psycopg.Error, PoolTimeout) as exc:
            raise classify(exc, f"reading {self.uri}") from exc

    def _read(self, sql: str, args: Iterable[Any] = (), operation: str = "query") -> list[tuple]:
        return self._query(sql, args, operation)

    def _execute(self, sql: str, args: list[Any]) -> list[tuple]:
        return self._query(sql, args, "search")

    @contextmanager
    def _transaction(self, operation: str) -> Iterator[Tx]:
        """One write transaction on a pooled connection; change rows (ordered by the advisory lock) last."""
        try:
            with self._observed(operation), self._pool.connection() as conn, conn.transaction():
                tx = Tx(conn, POSTGRESQL, time.time())
                yield tx
                self._append_changes(conn, tx.changes)
        except (psycopg.Error, PoolTimeout) as exc:
            raise classify(exc, f"{operation} in {self.uri}") from exc

    def wait_for_change(self, timeout: float) -> bool:
        """Block until a NOTIFY from any writer (any replica) or ``timeout``; False on timeout or
        when the database cannot be reached (callers poll anyway)."""
        if not self._listen_lock.acquire(timeout=timeout):
            return False
        try:
            return self._wait_for_change(timeout)
        finally:
            self._listen_lock.release()

    def _wait_for_change(self, timeout: float) -> bool:
        try:
            if self._listener is None or self._listener.closed:
                self._listener = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5)
                self._listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
            for _ in self._listener.notifies(timeout=timeout, stop_after=1):
                return True
            return False
        except psycopg.Error:
            if self._listener is not None:
                try:
                    self._listener.close()
                except psycopg.Error:
                    pass
            self._listener = None
            time.sleep(min(timeout, 1.0))
            return False


class _Timer:
    """Times one database operation for an optional observer (the server's /metrics)."""

    __slots__ = ("observer", "operation", "start")

    def __init__(self, observer: QueryObserver | None, operation: str) -> None:
        self.observer = observer
        self.operation = operation

    def __enter__(self) -> _Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self.observer is not None:
            failed = None if exc_type is None or exc_type is _Duplicate else exc_type.__name__
            self.observer(self.operation, time.perf_counter() - self.start, failed)
