"""What the SQL stores (SQLite, PostgreSQL) share: the read side and the registry writes.

Statements are written once, with ``?`` placeholders, and run through the store's ``Dialect``
(``search_sql.py``), which also says how the dialects differ (lists of values, row locks,
insertion order). Each store keeps its own write path for batches (the fast paths; run updates,
heartbeats and finding dead runs are shared here) and
provides three things: ``_read(sql, args, operation)`` for a query, ``_transaction(operation)``
(a ``Tx`` whose change rows commit with it) and its ``artifact_store``.

Registry writes (aliases, labels, run edits, archive, delete) are one method each, with an
optional ``actor`` recorded on their change events (default: ``_actor.current_actor()``, the
caller a server is serving, else the OS user); the server's policy (``server.policy``) decides
beforehand who may call which. Owners of runs and models and the per-user access tokens
(only their sha256) are read and written here too, for ``server.access`` and ``server.policy``.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from .. import _liveness
from .._actor import current_actor
from .._records import FINAL_STATUSES, RunUpdate
from ..entities import (
    AccessToken,
    Artifact,
    ChangeEvent,
    DeleteReport,
    Event,
    Experiment,
    Failure,
    Input,
    MetricPoint,
    MetricSummary,
    ModelFileInfo,
    ModelInfo,
    RunInfo,
    SeriesSample,
)
from . import change_feed
from .base import BackendError, ImmutableModel, NotFound, Refused
from .search_sql import Dialect

MIN_PREFIX = 4  # shortest id prefix accepted (as the CLI prints ids)
DELETE_CHUNK = 500  # ids per statement when deleting many runs
ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
RESERVED_ALIASES = frozenset({"latest"})
REAP_EVERY_S = 2.0  # readers look for runs of dead processes at most this often


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=repr)


# ---------------------------------------------------------------------- liveness and batches
def only_heartbeats(groups: dict[type, list[Any]]) -> bool:
    updates = groups.get(RunUpdate)
    if not updates or len(groups) != 1:
        return False
    return all(u.heartbeat is not None and u.status is None and u.progress is None and u.name is None
               and not u.tags and not u.env for u in updates)


def lost(owner: dict[str, Any] | None, heartbeat_at: float | None, lease_s: float | None, now: float) -> dict[str, Any] | None:
    """The failure of a running run whose process is gone, or None while it may be alive."""
    alive = _liveness.owner_alive(owner)
    if alive:
        return None
    where = f"process {owner.get('pid')} on {owner.get('host')}" if owner else "its process"
    if alive is False:
        message = f"{where} ended without ending the run (killed, e.g. by SIGKILL or the OOM killer, or crashed)"
    elif heartbeat_at is not None and lease_s is not None and heartbeat_at + lease_s < now:
        message = f"no sign of life from {where} for {now - heartbeat_at:.0f} s (lease {lease_s:.0f} s); it is presumed dead"
    else:
        return None
    return {"type": "ProcessLost", "message": message, "traceback": None}


# ---------------------------------------------------------------------- model references
def split_model_ref(ref: str) -> tuple[str, str] | None:
    """``NAME@VERSION``, ``NAME@latest``, ``NAME@ALIAS``, ``models:/NAME/VERSION`` (or
    ``/latest``, ``/ALIAS``) and ``models:/NAME@ALIAS`` -> (name, selector); None for an id."""
    if ref.startswith("models:/"):
        rest = ref[len("models:/"):].strip("/")
        if "@" in rest:
            name, _, selector = rest.rpartition("@")
        elif "/" in rest:
            name, _, selector = rest.rpartition("/")
        else:
            name, selector = rest, "latest"
        return (name, selector) if name and selector else None
    if "@" in ref:
        name, _, selector = ref.rpartition("@")
        return (name, selector) if name and selector else None
    return None


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not ALIAS.fullmatch(alias) or alias.lower() in RESERVED_ALIASES:
        raise Refused(f"alias {alias!r} is not valid: 1-64 of A-Z a-z 0-9 _ . -, starting with a letter, and not "
                      "'latest' (which always means the highest version)")
    return alias


def _versions_text(versions: list[int]) -> str:
    """1, 2, 3, 5 -> "1-3, 5"."""
    spans: list[list[int]] = []
    for v in versions:
        if spans and v == spans[-1][1] + 1:
            spans[-1][1] = v
        else:
            spans.append([v, v])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _close(word: str, names: list[str]) -> str:
    close = difflib.get_close_matches(word, names, n=3, cutoff=0.5)
    if close:
        return "; did you mean " + " or ".join(repr(c) for c in close) + "?"
    if names:
        shown = ", ".join(repr(n) for n in names[:8])
        return f"; there are: {shown}" + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    return ""


class Tx:
    """One write transaction of a SQL store: statements in ``?`` form, and the change events
    that the store inserts last, in the same transaction."""

    def __init__(self, conn: Any, dialect: Dialect, now: float) -> None:
        self.conn = conn
        self.dialect = dialect
        self.now = now
        self.changes: list[tuple[str, str, str, str, float, str]] = []  # ... timestamp, actor
        self.deleted_files: list[tuple[str, int | None]] = []  # removed from the artifact store after commit

    def execute(self, sql: str, args: Iterable[Any] = ()) -> Any:
        return self.conn.execute(self.dialect.sql(sql), tuple(args))

    def one(self, sql: str, args: Iterable[Any] = ()) -> tuple | None:
        return self.execute(sql, args).fetchone()

    def all(self, sql: str, args: Iterable[Any] = ()) -> list[tuple]:
        return self.execute(sql, args).fetchall()

    def where_in(self, column: str, values: list[Any]) -> tuple[str, list[Any]]:
        return self.dialect.in_list(column, values)

    def change(self, kind: str, object_type: str, object_id: str, payload: dict[str, Any], actor: str | None = None) -> None:
        """A change event committed with the transaction, recording ``actor`` (see ``_actor``)."""
        self.changes.append((kind, object_type, object_id, dumps(payload), self.now, current_actor(actor)))


def _chunks(values: list[Any], size: int = DELETE_CHUNK) -> Iterator[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


class SqlStore:
    """Mixin of the SQL stores: every query and registry write that does not depend on the dialect."""

    dialect: Dialect
    uri: str
    artifact_store: Any
    _series: dict[tuple[str, str], int]

    _RUN_COLUMNS = ("r.id, r.experiment_id, e.name, r.name, r.status, r.start_time, r.end_time, r.progress, r.parent_run_id,"
                    " r.tags, r.env, r.failure, r.archived_at, r.note")
    _MODEL_COLUMNS = ("id, name, version, framework, run_id, experiment_id, metadata, labels, datasets, status, created_at,"
                      " source_uri")

    # provided by the store ---------------------------------------------------------------
    def _read(self, sql: str, args: Iterable[Any] = (), operation: str = "query") -> list[tuple]:
        raise NotImplementedError

    def _transaction(self, operation: str) -> AbstractContextManager[Tx]:
        raise NotImplementedError

    def reap(self, now: float | None = None) -> list[str]:
        raise NotImplementedError

    def _reap_now_and_then(self) -> None:
        """Runs of dead processes read as killed (``reap``, in each store); at most every REAP_EVERY_S."""
        if time.monotonic() - getattr(self, "_reaped_at", -1e9) >= REAP_EVERY_S:
            try:
                self.reap()
            except BackendError:
                pass

    def _dead_runs(self, now: float) -> list[tuple[str, float, str]]:
        """The running runs whose process is gone: (id, last sign of life, failure as JSON)."""
        dead = []
        for run_id, owner_text, heartbeat_at, lease_s, start_time in self._q(
                "SELECT id, owner, heartbeat_at, lease_s, start_time FROM runs WHERE status='running'", (), "reap"):
            try:
                owner = json.loads(owner_text) if owner_text else None
            except ValueError:
                owner = None
            failure = lost(owner, heartbeat_at, lease_s, now)
            if failure is not None:
                dead.append((run_id, self._last_seen(run_id, heartbeat_at or start_time), dumps(failure)))
        return dead

    def _last_seen(self, run_id: str, fallback: float) -> float:
        """A dead run's end: its last sign of life (heartbeat, latest point or event), not the last
        heartbeat alone (a run killed before its first heartbeat would last no time at all)."""
        rows = self._q("SELECT max(last_time) FROM metric_series WHERE run_id=?"
                       " UNION ALL SELECT max(timestamp) FROM events WHERE run_id=?", (run_id, run_id), "reap")
        return max([fallback, *(row[0] for row in rows if row[0] is not None)])

    def _q(self, sql: str, args: Iterable[Any] = (), operation: str = "query") -> list[tuple]:
        return self._read(self.dialect.sql(sql), args, operation)

    def _in(self, column: str, values: list[Any]) -> tuple[str, list[Any]]:
        return self.dialect.in_list(column, values)

    # ------------------------------------------------------------------ ids and references
    # the batch write path's run updates (in the store's open transaction, on its connection) ----
    def _run_update_changes(self, conn: Any, updates: list[RunUpdate] | None, now: float) -> list[tuple]:
        """A batch's run updates applied; their change rows, folded (one per run)."""
        if not updates:
            return []
        folded = change_feed.RunUpdates()
        for u in updates:
            self._apply_run_update(conn, u, now, folded)
        return folded.rows(now)

    def _apply_run_update(self, conn: Any, u: RunUpdate, now: float, folded: change_feed.RunUpdates) -> None:
        """Fields merge; a final status is set once (see "Run status and liveness" in ARCHITECTURE)."""
        sql = self.dialect.sql
        if u.heartbeat is not None:
            self._apply_heartbeat(conn, u.run_id, min(u.heartbeat, now), now, folded)
        # "running" never replaces a status: runs start running, and only a heartbeat revives a lost one.
        if u.status in FINAL_STATUSES:
            # Only a running run, or one liveness declared lost (its owner speaks after all), takes
            # a final status: a late or replayed update (from any replica) never overwrites one.
            cur = conn.execute(sql(
                "UPDATE runs SET status=?, end_time=coalesce(?, end_time), failure=?, lost_at=NULL, updated_at=?"
                " WHERE id=? AND (status='running' OR lost_at IS NOT NULL)"),
                (u.status, u.end_time, dumps(u.failure) if u.failure else None, now, u.run_id),
            )
            if cur.rowcount:
                payload: dict[str, Any] = {"status": u.status, "end_time": u.end_time}
                if u.failure:
                    payload["failure"] = {"type": u.failure.get("type"), "message": str(u.failure.get("message", ""))[:500]}
                folded.add(u.run_id, payload)
        sets, values, payload = [], [], {}
        for column in ("progress", "name"):
            value = getattr(u, column)
            if value is not None:
                sets.append(f"{column}=?")
                values.append(value)
                payload[column] = value
        if u.tags or u.env:
            row = conn.execute(sql(f"SELECT tags, env FROM runs WHERE id=?{self.dialect.for_update}"), (u.run_id,)).fetchone()
            for index, column in enumerate(("tags", "env")):
                value = getattr(u, column)
                if value:
                    sets.append(f"{column}=?")
                    values.append(dumps({**(json.loads(row[index]) if row else {}), **value}))
                    if column == "tags":
                        payload["tags"] = value
        if not sets:
            return
        values.extend([now, u.run_id])
        cur = conn.execute(sql(f"UPDATE runs SET {', '.join(sets)}, updated_at=? WHERE id=?"), values)
        if cur.rowcount and payload:
            folded.add(u.run_id, payload)

    def _apply_heartbeat(self, conn: Any, run_id: str, at: float, now: float, folded: change_feed.RunUpdates) -> None:
        sql = self.dialect.sql
        conn.execute(sql(f"UPDATE runs SET heartbeat_at={self.dialect.greatest}(coalesce(heartbeat_at, 0), ?) WHERE id=?"),
                     (at, run_id))
        revived = conn.execute(sql(
            "UPDATE runs SET status='running', end_time=NULL, failure=NULL, lost_at=NULL, updated_at=?"
            " WHERE id=? AND status='killed' AND lost_at IS NOT NULL"),
            (now, run_id),
        )
        if revived.rowcount:  # declared lost while its process was alive (e.g. cut off from the store)
            folded.add(run_id, {"status": "running"})

    def _resolve(self, table: str, ident: str, what: str) -> str:
        """Full ids, or a unique prefix of at least MIN_PREFIX characters (as the CLI shows them)."""
        if not isinstance(ident, str) or not ident.strip():
            raise NotFound(f"{what} id {ident!r} is not valid")
        if self._q(f"SELECT 1 FROM {table} WHERE id=?", (ident,), "resolve"):
            return ident
        if len(ident) < MIN_PREFIX:
            raise NotFound(f"{what} id {ident!r} is too short: give at least {MIN_PREFIX} characters of the id")
        prefix = ident.replace("\\", "").replace("%", "").replace("_", "\\_")
        rows = self._q(f"SELECT id FROM {table} WHERE id LIKE ? ESCAPE '\\' LIMIT 2", (prefix + "%",), "resolve")
        if len(rows) == 1:
            return rows[0][0]
        if len(rows) > 1:
            raise NotFound(f"{what} id prefix {ident!r} is ambiguous; give more characters")
        raise NotFound(f"no {what} with id {ident!r} in {self.uri}")

    def _resolve_run_id(self, run_id: str) -> str:
        return self._resolve("runs", run_id, "run")

    def _resolve_model_id(self, model_id: str) -> str:
        """A model id (or unique prefix), its URL, ``NAME@VERSION``, ``NAME@latest``, ``NAME@ALIAS``,
        ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``."""
        if not isinstance(model_id, str) or not model_id.strip():
            raise NotFound(f"model id {model_id!r} is not valid")
        if "#model=" in model_id:
            model_id = model_id.rsplit("#model=", 1)[1]
        named = split_model_ref(model_id)
        if named is not None:
            return self._model_by_name(*named)
        try:
            return self._resolve("models", model_id, "model")
        except NotFound:
            if self._q("SELECT 1 FROM models WHERE name=? LIMIT 1", (model_id,), "resolve"):
                raise NotFound(f"{model_id!r} is a model name, not an id: ask for {model_id}@latest, "
                               f"{model_id}@VERSION or {model_id}@ALIAS") from None
            raise

    def _model_by_name(self, name: str, selector: str) -> str:
        """One indexed query when the reference exists; what does exist is gathered only to say so."""
        if selector.isdigit():
            found = self._q("SELECT id FROM models WHERE name=? AND version=?", (name, int(selector)), "resolve")
        elif selector.lower() == "latest":
            found = self._q("SELECT id FROM models WHERE name=? ORDER BY version DESC LIMIT 1", (name,), "resolve")
        else:
            found = self._q("SELECT model_id FROM model_aliases WHERE name=? AND alias=?", (name, selector), "resolve")
        if found:
            return found[0][0]
        versions = [r[0] for r in self._q("SELECT version FROM models WHERE name=? ORDER BY version", (name,), "resolve")]
        if not versions:
            names = [r[0] for r in self._q("SELECT DISTINCT name FROM models ORDER BY name", (), "resolve")]
            raise NotFound(f"{name}@{selector}: no model named {name!r} in {self.uri}{_close(name, names)}")
        if selector.isdigit():
            raise NotFound(f"{name}@{selector}: model {name!r} has no version {selector}; its versions: {_versions_text(versions)}")
        aliases = self._q("SELECT alias, version FROM model_aliases WHERE name=? ORDER BY alias", (name,), "resolve")
        if aliases:
            listed = ", ".join(f"{a} (v{v})" for a, v in aliases)
            raise NotFound(f"{name}@{selector}: model {name!r} has no alias {selector!r}; its aliases: {listed}")
        raise NotFound(f"{name}@{selector}: model {name!r} has no alias {selector!r} (it has none; versions: "
                       f"{_versions_text(versions)}); set one with set_alias({name!r}, {selector!r}, VERSION)")

    def _resolve_experiment(self, name_or_id: str, conn: Tx | None = None) -> tuple[str, str]:
        """(id, name) of an experiment given by name or id; NotFound with close names."""
        sql, args = "SELECT id, name FROM experiments WHERE name=? OR id=?", (name_or_id, name_or_id)
        rows = conn.all(sql, args) if conn is not None else self._q(sql, args, "resolve")
        if rows:
            exact = [r for r in rows if r[1] == name_or_id]
            return tuple((exact or rows)[0])  # type: ignore[return-value]
        names = [r[0] for r in self._q("SELECT name FROM experiments ORDER BY name", (), "resolve")]
        raise NotFound(f"no experiment {name_or_id!r} in {self.uri}{_close(name_or_id, names)}")

    # ------------------------------------------------------------------ experiments and runs
    def experiments(self, archived: bool | None = False) -> list[Experiment]:
        sql = "SELECT id, name, created_at, archived_at FROM experiments"
        if archived is not None:
            sql += " WHERE archived_at IS NOT NULL" if archived else " WHERE archived_at IS NULL"
        return [Experiment(*row) for row in self._q(sql + " ORDER BY created_at")]

    def experiment(self, name_or_id: str) -> Experiment:
        exp_id, _ = self._resolve_experiment(name_or_id)
        return Experiment(*self._q("SELECT id, name, created_at, archived_at FROM experiments WHERE id=?", (exp_id,))[0])

    def _run_info(self, row: tuple, params: dict[str, Any]) -> RunInfo:
        from .._values import from_param_text

        status, failure_text = row[4], row[11]
        dead_seen = getattr(self, "_dead_seen", None)  # found dead, but the store could not be updated
        if status == "running" and dead_seen and row[0] in dead_seen:
            status, failure_text = "killed", dead_seen[row[0]]
        try:
            failure = Failure.from_dict(json.loads(failure_text)) if failure_text else None
        except ValueError:
            failure = Failure("unknown", failure_text)
        return RunInfo(
            id=row[0], experiment_id=row[1], experiment=row[2], name=row[3], status=status, start_time=row[5],
            end_time=row[6], progress=row[7], parent_run_id=row[8],
            params={k: from_param_text(v) for k, v in params.items()}, tags=json.loads(row[9]), env=json.loads(row[10]),
            failure=failure, archived_at=row[12], note=row[13],
        )

    def runs(self, experiment: str | None = None, status: str | None = None, limit: int | None = None,
             archived: bool | None = False) -> list[RunInfo]:
        return self.search_runs(experiment=experiment, status=status, limit=limit, archived=archived)

    def search_runs(self, experiment: str | None = None, status: str | None = None, where: str | None = None,
                    order_by: str | None = None, limit: int | None = None, offset: int = 0,
                    archived: bool | None = False) -> list[RunInfo]:
        from ..search import parse_order_by, parse_where
        from .search_sql import RunSearch, search_page

        self._reap_now_and_then()  # runs of dead processes read as killed, in results and in filters
        search = RunSearch(self.dialect, self._RUN_COLUMNS, experiment, status, parse_where(where), parse_order_by(order_by),
                           archived=archived)
        rows = search_page(search, lambda sql, args: self._read(sql, args, "search"), limit or None, offset)
        params: dict[str, dict[str, str]] = {}
        if rows:
            where_ids, args = self._in("run_id", [r[0] for r in rows])
            for run_id, key, value in self._q(f"SELECT run_id, key, value FROM params WHERE {where_ids}", args):
                params.setdefault(run_id, {})[key] = value
        return [self._run_info(row, params.get(row[0], {})) for row in rows]

    def count_runs(self, experiment: str | None = None, status: str | None = None, where: str | None = None,
                   archived: bool | None = False) -> int:
        from ..search import parse_where
        from .search_sql import select_runs

        self._reap_now_and_then()
        sql, args = select_runs(self.dialect, "", experiment=experiment, status=status, where=parse_where(where), count=True,
                                archived=archived)
        return self._read(sql, args, "search")[0][0]

    def run(self, run_id: str) -> RunInfo:
        run_id = self._resolve_run_id(run_id)
        self._reap_now_and_then()
        row = self._q(f"SELECT {self._RUN_COLUMNS} FROM runs r JOIN experiments e ON e.id = r.experiment_id WHERE r.id=?",
                      (run_id,))[0]
        return self._run_info(row, dict(self._q("SELECT key, value FROM params WHERE run_id=?", (run_id,))))

    def metric_summaries(self, run_ids: list[str], keys: list[str] | None = None) -> dict[str, dict[str, MetricSummary]]:
        out: dict[str, dict[str, MetricSummary]] = {run_id: {} for run_id in run_ids}
        if not run_ids or (keys is not None and not keys):
            return out
        where_ids, args = self._in("run_id", list(run_ids))
        sql = f"SELECT run_id, key, last_value, last_step, last_time, min_value, max_value, count FROM metric_series WHERE {where_ids}"
        if keys is not None:
            where_keys, more = self._in("key", list(keys))
            sql += f" AND {where_keys}"
            args += more
        for run_id, key, last, step, when, low, high, count in self._q(sql, args, "summaries"):
            if last is None and count:
                last = math.nan  # SQL keeps NaN as NULL
            out.setdefault(run_id, {})[key] = MetricSummary(key, last, step, when, low, high, count)
        return out

    def search_keys(self, experiment: str | None = None, sample: int = 1000) -> dict[str, list[str]]:
        scope, args = "SELECT r.id FROM runs r", []
        if experiment is not None:
            scope += " JOIN experiments e ON e.id = r.experiment_id WHERE (e.name = ? OR e.id = ?)"
            args = [experiment, experiment]
        scope += " ORDER BY r.start_time DESC LIMIT ?"
        args.append(sample)
        params = [r[0] for r in self._q(f"SELECT DISTINCT key FROM params WHERE run_id IN ({scope}) ORDER BY key", args)]
        metrics = [r[0] for r in self._q(f"SELECT DISTINCT key FROM metric_series WHERE run_id IN ({scope}) ORDER BY key", args)]
        tags: set[str] = set()
        for (text,) in self._q(f"SELECT DISTINCT tags FROM runs WHERE id IN ({scope})", args):
            tags.update(json.loads(text))
        return {"params": params, "metrics": metrics, "tags": sorted(tags)}

    def child_counts(self, run_ids: list[str]) -> dict[str, int]:
        if not run_ids:
            return {}
        where_ids, args = self._in("parent_run_id", list(run_ids))
        rows = self._q(f"SELECT parent_run_id, count(*) FROM runs WHERE {where_ids} GROUP BY parent_run_id", args)
        return {run_id: 0 for run_id in run_ids} | dict(rows)

    def input_consumers(self, refs: list[str]) -> list[tuple[str, str]]:
        if not refs:
            return []
        where_refs, args = self._in("ref", list(refs))
        rows = self._q(f"SELECT run_id, ref, min(timestamp) AS first FROM inputs WHERE {where_refs} GROUP BY run_id, ref"
                       " ORDER BY first", args)
        return [(run_id, ref) for run_id, ref, _first in rows]

    def _chunks_of(self, run_id: str, key: str) -> list[tuple]:
        return self._q("SELECT c.steps, c.vals, c.times, c.epochs FROM metric_chunks c JOIN metric_series s ON s.id = c.series_id"
                       " WHERE s.run_id=? AND s.key=? ORDER BY c.id", (run_id, key), "metrics")

    def metric_sample(self, run_id: str, key: str, max_points: int = 2000) -> SeriesSample:
        """Downsampled from the packed chunks directly (no point objects for the whole series)."""
        from ..series import sample_columns

        chunks = self._chunks_of(self._resolve_run_id(run_id), key)
        columns = [b"".join(bytes(chunk[i]) for chunk in chunks) for i in range(4)]  # little-endian, as sample_columns reads
        return sample_columns(key, *columns, max_points=max_points)

    def metric_keys(self, run_id: str) -> list[str]:
        run_id = self._resolve_run_id(run_id)
        return [r[0] for r in self._q("SELECT key FROM metric_series WHERE run_id=? ORDER BY key", (run_id,))]

    def metrics(self, run_id: str, key: str) -> list[MetricPoint]:
        from .sqlite import unpack_points

        chunks = self._chunks_of(self._resolve_run_id(run_id), key)
        points = [point for chunk in chunks for point in unpack_points(*(bytes(c) for c in chunk))]
        points.sort(key=lambda p: p.step)  # stable: equal steps keep their logging order
        return points

    def events(self, run_id: str, name: str | None = None) -> list[Event]:
        sql, args = "SELECT name, timestamp, duration_s, attrs FROM events WHERE run_id=?", [self._resolve_run_id(run_id)]
        if name is not None:
            sql += " AND name=?"
            args.append(name)
        rows = self._q(sql + f" ORDER BY timestamp, {self.dialect.insertion}", args)
        return [Event(n, ts, d, json.loads(a)) for n, ts, d, a in rows]

    def artifacts(self, run_id: str) -> list[Artifact]:
        rows = self._q("SELECT id, name, path, bytes, sha256, kind FROM artifacts WHERE run_id=?"
                       f" ORDER BY created_at, {self.dialect.insertion}", (self._resolve_run_id(run_id),))
        return [Artifact(i, n, self.artifact_store.location(p), b, s, k) for i, n, p, b, s, k in rows]

    def inputs(self, run_id: str) -> list[Input]:
        rows = self._q(f"SELECT kind, ref, timestamp, attrs FROM inputs WHERE run_id=? ORDER BY timestamp, {self.dialect.insertion}",
                       (self._resolve_run_id(run_id),))
        return [Input(k, r, t, json.loads(a)) for k, r, t, a in rows]

    # ------------------------------------------------------------------ models
    def _model_infos(self, rows: list[tuple]) -> list[ModelInfo]:
        files: dict[str, list[ModelFileInfo]] = {}
        aliases: dict[str, list[str]] = {}
        if rows:
            where_ids, args = self._in("model_id", [r[0] for r in rows])
            for model_id, n, p, b, s in self._q(f"SELECT model_id, name, path, bytes, sha256 FROM model_files WHERE {where_ids}"
                                                " ORDER BY name", args):
                files.setdefault(model_id, []).append(ModelFileInfo(n, self.artifact_store.location(p), b, s))
            for model_id, alias in self._q(f"SELECT model_id, alias FROM model_aliases WHERE {where_ids} ORDER BY alias", args):
                aliases.setdefault(model_id, []).append(alias)
        return [
            ModelInfo(
                id=row[0], name=row[1], version=row[2], framework=row[3], run_id=row[4], experiment_id=row[5],
                files=files.get(row[0], []), metadata=json.loads(row[6]), labels=json.loads(row[7]),
                datasets=json.loads(row[8]), status=row[9], created_at=row[10], url=f"{self.uri}#model={row[0]}",
                aliases=aliases.get(row[0], []), source_uri=row[11],
            )
            for row in rows
        ]

    def models(self, name: str | None = None, labels: dict[str, str | None] | None = None,
               run_id: str | None = None) -> list[ModelInfo]:
        """Models, newest first; ``labels`` {key: value} must all match ({key: None}: the label is set)."""
        sql, where, args = f"SELECT {self._MODEL_COLUMNS} FROM models", [], []
        if name is not None:
            where.append("name=?")
            args.append(name)
        if run_id is not None:
            where.append("run_id=?")
            args.append(self._resolve_run_id(run_id))
        if where:
            sql += " WHERE " + " AND ".join(where)
        infos = self._model_infos(self._q(sql + " ORDER BY created_at DESC, version DESC", args))
        if labels:
            infos = [m for m in infos if all(k in m.labels and (v is None or m.labels[k] == v) for k, v in labels.items())]
        return infos

    def model(self, model_id: str) -> ModelInfo:
        model_id = self._resolve_model_id(model_id)
        return self._model_infos(self._q(f"SELECT {self._MODEL_COLUMNS} FROM models WHERE id=?", (model_id,)))[0]

    def _locked_model(self, tx: Tx, model_id: str) -> tuple:
        row = tx.one(f"SELECT status, metadata, labels, name, version FROM models WHERE id=?{self.dialect.for_update}", (model_id,))
        if row is None:
            raise NotFound(f"no model with id {model_id!r} in {self.uri}")
        return row

    def update_model(self, model_id: str, metadata: dict[str, Any] | None = None, labels: dict[str, str | None] | None = None,
                     actor: str | None = None) -> ModelInfo:
        """Merge ``metadata`` and ``labels`` into a draft model; a label set to None is removed."""
        from .._values import to_attrs, to_tags

        model_id = self._resolve_model_id(model_id)
        with self._transaction("update_model") as tx:
            status, current_metadata, current_labels, _name, _version = self._locked_model(tx, model_id)
            if status == "final":
                raise ImmutableModel(f"model {model_id} is final and cannot be changed; log a new version instead")
            sets: dict[str, Any] = {}
            if metadata:
                sets["metadata"] = dumps({**json.loads(current_metadata), **to_attrs(metadata)})
            if labels:
                merged = {**json.loads(current_labels), **to_tags({k: v for k, v in labels.items() if v is not None})}
                for key in (k for k, v in labels.items() if v is None):
                    merged.pop(str(key), None)
                sets["labels"] = dumps(merged)
            if sets:
                assignments = ", ".join(f"{k}=?" for k in sets)
                tx.execute(f"UPDATE models SET {assignments}, updated_at=? WHERE id=?", [*sets.values(), tx.now, model_id])
                tx.change("updated", "model", model_id, {"metadata": metadata or {}, "labels": labels or {}}, actor)
        return self.model(model_id)

    def finalize_model(self, model_id: str, actor: str | None = None) -> ModelInfo:
        model_id = self._resolve_model_id(model_id)
        with self._transaction("update_model") as tx:
            if self._locked_model(tx, model_id)[0] != "final":
                tx.execute("UPDATE models SET status='final', updated_at=? WHERE id=?", (tx.now, model_id))
                tx.change("updated", "model", model_id, {"status": "final"}, actor)
        return self.model(model_id)

    # ------------------------------------------------------------------ aliases
    def set_alias(self, name: str, alias: str, version: int | str, actor: str | None = None) -> ModelInfo:
        """Point ``name@alias`` at ``version`` (moving it from another version, atomically)."""
        alias = check_alias(alias)
        model_id = self._model_by_name(name, str(version))
        with self._transaction("set_alias") as tx:
            found = tx.one(f"SELECT version FROM models WHERE id=?{self.dialect.for_update}", (model_id,))
            if found is None:
                raise NotFound(f"model {name}@{version} was deleted meanwhile")
            previous = tx.one("SELECT model_id, version FROM model_aliases WHERE name=? AND alias=?", (name, alias))
            tx.execute("INSERT INTO model_aliases (name, alias, model_id, version, updated_at) VALUES (?, ?, ?, ?, ?)"
                       " ON CONFLICT (name, alias) DO UPDATE SET model_id = excluded.model_id, version = excluded.version,"
                       " updated_at = excluded.updated_at", (name, alias, model_id, found[0], tx.now))
            if previous is None or previous[0] != model_id:
                payload = {"name": name, "alias": alias, "version": found[0], "model_id": model_id,
                           "previous_version": previous[1] if previous else None,
                           "previous_model_id": previous[0] if previous else None}
                tx.change("created" if previous is None else "updated", "alias", f"{name}@{alias}", payload, actor)
        return self.model(model_id)

    def delete_alias(self, name: str, alias: str, actor: str | None = None) -> None:
        with self._transaction("delete_alias") as tx:
            found = tx.one("SELECT model_id, version FROM model_aliases WHERE name=? AND alias=?", (name, alias))
            if found is None:
                aliases = tx.all("SELECT alias, version FROM model_aliases WHERE name=? ORDER BY alias", (name,))
                listed = ", ".join(f"{a} (v{v})" for a, v in aliases) or "none"
                raise NotFound(f"model {name!r} has no alias {alias!r}; its aliases: {listed}")
            tx.execute("DELETE FROM model_aliases WHERE name=? AND alias=?", (name, alias))
            tx.change("deleted", "alias", f"{name}@{alias}", {"name": name, "alias": alias, "version": found[1],
                                                              "model_id": found[0]}, actor)

    def aliases(self, name: str) -> dict[str, int]:
        """{alias: version} of a model name."""
        return dict(self._q("SELECT alias, version FROM model_aliases WHERE name=? ORDER BY alias", (name,)))

    # ------------------------------------------------------------------ run edits and archive
    def update_run(self, run_id: str, *, name: str | None = None, tags: dict[str, str | None] | None = None,
                   note: str | None = None, actor: str | None = None) -> RunInfo:
        """Rename, set or remove tags (a tag set to None is removed), or set the note ("" clears it),
        on a run in any state."""
        from .._values import to_tags

        run_id = self._resolve_run_id(run_id)
        with self._transaction("update_run") as tx:
            row = tx.one(f"SELECT tags FROM runs WHERE id=?{self.dialect.for_update}", (run_id,))
            if row is None:
                raise NotFound(f"no run with id {run_id!r} in {self.uri}")
            sets: dict[str, Any] = {}
            payload: dict[str, Any] = {}
            if name is not None:
                sets["name"] = str(name) or None
                payload["name"] = sets["name"]
            if tags:
                merged = {**json.loads(row[0]), **to_tags({k: v for k, v in tags.items() if v is not None})}
                for key in (k for k, v in tags.items() if v is None):
                    merged.pop(str(key), None)
                sets["tags"] = dumps(merged)
                payload["tags"] = {str(k): (None if v is None else to_tags({k: v})[str(k)]) for k, v in tags.items()}
            if note is not None:
                sets["note"] = str(note) or None
                payload["note"] = True
            if sets:
                assignments = ", ".join(f"{k}=?" for k in sets)
                tx.execute(f"UPDATE runs SET {assignments}, updated_at=? WHERE id=?", [*sets.values(), tx.now, run_id])
                tx.change("updated", "run", run_id, payload, actor)
        return self.run(run_id)

    def _descendants(self, tx: Tx, run_ids: list[str]) -> list[str]:
        """The runs and all their children, grandchildren..., parents first."""
        found, frontier = list(run_ids), list(run_ids)
        seen = set(found)
        while frontier:
            children = []
            for part in _chunks(frontier):
                where, args = tx.where_in("parent_run_id", part)
                children += [r[0] for r in tx.all(f"SELECT id FROM runs WHERE {where}", args) if r[0] not in seen]
            seen.update(children)
            found += children
            frontier = children
        return found

    def archive_run(self, run_id: str, archived: bool = True, actor: str | None = None) -> RunInfo:
        """Hide a run and its child runs from default listings (``archived=False`` restores them)."""
        run_id = self._resolve_run_id(run_id)
        with self._transaction("archive_run") as tx:
            for part in _chunks(self._descendants(tx, [run_id])):
                where, args = tx.where_in("id", part)
                test = "archived_at IS NULL" if archived else "archived_at IS NOT NULL"
                changed = [r[0] for r in tx.all(f"SELECT id FROM runs WHERE {where} AND {test}", args)]
                if changed:
                    where, args = tx.where_in("id", changed)
                    tx.execute(f"UPDATE runs SET archived_at=?, updated_at=? WHERE {where}", [tx.now if archived else None,
                                                                                             tx.now, *args])
                for changed_id in changed:
                    tx.change("updated", "run", changed_id, {"archived": archived}, actor)
        return self.run(run_id)

    def archive_experiment(self, name_or_id: str, archived: bool = True, actor: str | None = None) -> Experiment:
        """Hide an experiment and its runs from default listings (``archived=False`` restores it)."""
        exp_id, name = self._resolve_experiment(name_or_id)
        with self._transaction("archive_experiment") as tx:
            test = "archived_at IS NULL" if archived else "archived_at IS NOT NULL"
            cur = tx.execute(f"UPDATE experiments SET archived_at=? WHERE id=? AND {test}", (tx.now if archived else None, exp_id))
            if cur.rowcount:
                tx.change("updated", "experiment", exp_id, {"name": name, "archived": archived}, actor)
        return self.experiment(exp_id)

    # ------------------------------------------------------------------ delete
    def _refusals(self, tx: Tx, model_ids: list[str]) -> list[str]:
        """Why these models cannot be deleted: final ones, and those an alias points at."""
        reasons = []
        for part in _chunks(model_ids):
            where, args = tx.where_in("id", part)
            rows = tx.all(f"SELECT id, name, version, status FROM models WHERE {where}{self.dialect.for_update}", args)
            reasons += [f"model {n} v{v} ({i[:12]}) is final" for i, n, v, s in rows if s == "final"]
            where, args = tx.where_in("model_id", part)
            reasons += [f"model {n} v{v} is {n}@{a}" for n, a, v in
                        tx.all(f"SELECT name, alias, version FROM model_aliases WHERE {where} ORDER BY name, alias", args)]
        return reasons

    def _delete_models(self, tx: Tx, model_ids: list[str], actor: str | None) -> int:
        for part in _chunks(model_ids):
            where, args = tx.where_in("model_id", part)
            tx.deleted_files += [tuple(r) for r in tx.all(f"SELECT path, bytes FROM model_files WHERE {where}", args)]
            tx.execute(f"DELETE FROM model_files WHERE {where}", args)
            where_id, args = tx.where_in("id", part)
            for model_id, name, version, run_id in tx.all(f"SELECT id, name, version, run_id FROM models WHERE {where_id}", args):
                tx.change("deleted", "model", model_id, {"name": name, "version": version, "run_id": run_id}, actor)
            tx.execute(f"DELETE FROM models WHERE {where_id}", args)
        return len(model_ids)

    def _delete_runs(self, tx: Tx, run_ids: list[str], actor: str | None, what: str) -> tuple[int, int]:
        """Delete runs (and their children) with everything they logged; (runs, models) removed."""
        every = self._descendants(tx, run_ids)
        model_ids: list[str] = []
        for part in _chunks(every):
            where, args = tx.where_in("run_id", part)
            model_ids += [r[0] for r in tx.all(f"SELECT id FROM models WHERE {where}", args)]
        reasons = self._refusals(tx, model_ids)
        if reasons:
            more = f" (and {len(reasons) - 5} more)" if len(reasons) > 5 else ""
            raise Refused(f"{what} cannot be deleted: " + "; ".join(reasons[:5]) + more
                          + ". Final models and aliased versions are kept: move or delete the aliases first")
        self._delete_models(tx, model_ids, actor)
        for part in _chunks(every):
            where, args = tx.where_in("run_id", part)
            tx.deleted_files += [tuple(r) for r in tx.all(f"SELECT path, bytes FROM artifacts WHERE {where}", args)]
            tx.execute(f"DELETE FROM metric_chunks WHERE series_id IN (SELECT id FROM metric_series WHERE {where})", args)
            for table in ("metric_series", "params", "param_values", "events", "inputs", "artifacts"):
                tx.execute(f"DELETE FROM {table} WHERE {where}", args)
            where_id, args = tx.where_in("id", part)
            for run_id, name, exp_id, parent in tx.all(f"SELECT id, name, experiment_id, parent_run_id FROM runs WHERE {where_id}",
                                                       args):
                tx.change("deleted", "run", run_id, {"name": name, "experiment_id": exp_id, "parent_run_id": parent}, actor)
            tx.execute(f"DELETE FROM runs WHERE {where_id}", args)
        return len(every), len(model_ids)

    def _remove_files(self, files: list[tuple[str, int | None]]) -> tuple[int, int]:
        """Delete files of deleted records from the artifact store, after the commit; a failure
        leaves the file for ``modelbox gc``."""
        removed = size = 0
        for key, count in files:
            if key and count is not None:
                try:
                    self.artifact_store.delete(key)
                except Exception:  # noqa: BLE001 - the record is gone; gc removes what stays
                    continue
                removed += 1
                size += count or 0
        return removed, size

    def _forget_series(self, run_ids: set[str]) -> None:
        for ident in [i for i in self._series if i[0] in run_ids]:
            self._series.pop(ident, None)

    def delete_run(self, run_id: str, actor: str | None = None) -> DeleteReport:
        """Delete a run, its child runs, and everything they logged (metrics, artifacts, models and
        their files), for good. Refused when one of its models is final or aliased."""
        run_id = self._resolve_run_id(run_id)
        with self._transaction("delete_run") as tx:
            runs, models = self._delete_runs(tx, [run_id], actor, f"run {run_id}")
            deleted = {c[2] for c in tx.changes if c[1] == "run"}
        self._forget_series(deleted)
        files, size = self._remove_files(tx.deleted_files)
        return DeleteReport(runs=runs, models=models, files=files, bytes=size)

    def delete_experiment(self, name_or_id: str, actor: str | None = None) -> DeleteReport:
        """Delete an experiment with all its runs (see ``delete_run``); refused as a whole when a
        run has a final or aliased model."""
        exp_id, name = self._resolve_experiment(name_or_id)
        with self._transaction("delete_experiment") as tx:
            run_ids = [r[0] for r in tx.all("SELECT id FROM runs WHERE experiment_id=? AND parent_run_id IS NULL", (exp_id,))]
            run_ids += [r[0] for r in tx.all("SELECT id FROM runs WHERE experiment_id=? AND parent_run_id IS NOT NULL"
                                             " AND parent_run_id NOT IN (SELECT id FROM runs WHERE experiment_id=?)",
                                             (exp_id, exp_id))]
            runs, models = self._delete_runs(tx, run_ids, actor, f"experiment {name!r}") if run_ids else (0, 0)
            tx.execute("DELETE FROM experiments WHERE id=?", (exp_id,))
            tx.change("deleted", "experiment", exp_id, {"name": name, "runs": runs}, actor)
            deleted = {c[2] for c in tx.changes if c[1] == "run"}
        self._forget_series(deleted)
        files, size = self._remove_files(tx.deleted_files)
        return DeleteReport(runs=runs, models=models, experiments=1, files=files, bytes=size)

    def delete_model(self, model_id: str, actor: str | None = None) -> DeleteReport:
        """Delete one model version and its files; refused when it is final or aliased."""
        model_id = self._resolve_model_id(model_id)
        with self._transaction("delete_model") as tx:
            reasons = self._refusals(tx, [model_id])
            if reasons:
                raise Refused("cannot delete: " + "; ".join(reasons) + ". Final models are kept; move or delete the alias first")
            self._delete_models(tx, [model_id], actor)
        files, size = self._remove_files(tx.deleted_files)
        return DeleteReport(models=1, files=files, bytes=size)

    def referenced_files(self) -> set[str]:
        """Keys of every file a record points at (what ``modelbox gc`` keeps)."""
        keys = {r[0] for r in self._q("SELECT path FROM artifacts", (), "gc")}
        keys.update(r[0] for r in self._q("SELECT path FROM model_files", (), "gc"))
        return keys

    # ------------------------------------------------------------------ files and changes
    def read_file(self, path_or_uri: str) -> Iterable[bytes]:
        return self.artifact_store.read_file(path_or_uri)

    def changes(self, since: int = 0, limit: int = 1000) -> list[ChangeEvent]:
        rows = self._q("SELECT seq, kind, object_type, object_id, payload, actor FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
                       (since, limit), "changes")
        return [ChangeEvent(seq, kind, otype, oid, json.loads(payload), actor or "")  # "": stored before actors were kept
                for seq, kind, otype, oid, payload, actor in rows]

    def last_change_seq(self) -> int:
        return self._q("SELECT coalesce(max(seq), 0) FROM changes", (), "changes")[0][0]


    # ------------------------------------------------------------------ access: owners and tokens
    # Tokens are made and checked by modelbox_autolog.server.access; only their sha256 is stored.
    def run_owners(self, run_ids: Iterable[str]) -> dict[str, str | None]:
        """The user who created each of ``run_ids`` that exists (None: created before owners were kept)."""
        owners: dict[str, str | None] = {}
        for part in _chunks(list(run_ids)):
            where, args = self._in("id", part)
            owners.update(self._q(f"SELECT id, created_by FROM runs WHERE {where}", args, "owners"))
        return owners

    def run_owner(self, run_ref: str) -> tuple[str, str | None]:
        """(run id, the user who created it) of any reference ``run`` accepts (an id prefix too)."""
        run_id = self._resolve_run_id(run_ref)
        return run_id, self._q("SELECT created_by FROM runs WHERE id=?", (run_id,), "owners")[0][0]

    def model_owner(self, model_ref: str) -> tuple[str, str | None]:
        """(model id, the user who created it) of any reference ``model`` accepts (NAME@ALIAS too)."""
        model_id = self._resolve_model_id(model_ref)
        return model_id, self._q("SELECT created_by FROM models WHERE id=?", (model_id,), "owners")[0][0]

    def add_token(self, token: AccessToken, token_sha256: str, actor: str | None = None) -> None:
        """Keep a new token's digest (never the token) and record its creation in the change feed."""
        actor = current_actor(actor)
        with self._transaction("add_token") as tx:
            tx.execute("INSERT INTO access_tokens (id, user_name, role, token_sha256, created_at, created_by)"
                       " VALUES (?, ?, ?, ?, ?, ?)", (token.id, token.user, token.role, token_sha256, token.created_at, actor))
            tx.change("created", "token", token.id, {"user": token.user, "role": token.role}, actor)

    _TOKEN_COLUMNS = "id, user_name, role, created_at, created_by, revoked_at, revoked_by"

    def tokens(self) -> list[AccessToken]:
        """Every token, oldest first (revoked ones included, with when and by whom)."""
        return [AccessToken(*row) for row in self._q(f"SELECT {self._TOKEN_COLUMNS} FROM access_tokens ORDER BY created_at",
                                                     (), "tokens")]

    def token_digest(self, token_id: str) -> tuple[AccessToken, str] | None:
        """(token, its sha256) for the authentication of one call; None for an unknown id."""
        rows = self._q(f"SELECT {self._TOKEN_COLUMNS}, token_sha256 FROM access_tokens WHERE id=?", (token_id,), "tokens")
        return (AccessToken(*rows[0][:-1]), rows[0][-1]) if rows else None

    def has_tokens(self) -> bool:
        """Whether a token was ever made: a server without --token then requires one (revoking every
        token does not open it again)."""
        return bool(self._q("SELECT 1 FROM access_tokens LIMIT 1", (), "tokens"))

    def revoke_tokens(self, token_id: str | None = None, user: str | None = None, actor: str | None = None) -> list[AccessToken]:
        """Revoke one token by id, or every token of ``user``; the tokens revoked now."""
        actor = current_actor(actor)
        column, value = ("id", token_id) if token_id is not None else ("user_name", user)
        with self._transaction("revoke_tokens") as tx:
            rows = tx.all(f"SELECT {self._TOKEN_COLUMNS} FROM access_tokens WHERE {column}=? AND revoked_at IS NULL"
                          f"{self.dialect.for_update}", (value,))
            revoked = [AccessToken(*row[:5], tx.now, actor) for row in rows]
            for token in revoked:
                tx.execute("UPDATE access_tokens SET revoked_at=?, revoked_by=? WHERE id=?", (tx.now, actor, token.id))
                tx.change("revoked", "token", token.id, {"user": token.user, "role": token.role}, actor)
        return revoked
