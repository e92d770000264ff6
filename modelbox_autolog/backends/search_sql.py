"""Compile a run-search tree (``modelbox_autolog.search``) into SQL, for SQLite and PostgreSQL.

The SQL stores share the queryable side of the schema this expects:

- ``runs r`` joined to ``experiments e`` (``r.tags`` holds the tags as a JSON object);
- ``param_values(run_id, key, num, text)``: one row per param, ``num`` set when the value is a
  number (or a boolean, as 1/0), ``text`` the string (or the JSON text of anything else),
  indexed on ``(key, num)`` and ``(key, text)``;
- ``metric_series(run_id, key, last_value, min_value, max_value, ...)``: the latest, minimum
  and maximum of each series, kept on ingest, indexed on ``(key, last_value)`` and friends.

Every user value becomes a bound parameter; keys too. Only the dialect's fixed fragments are
spliced into the text, so no expression can inject SQL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..search import And, Compare, Field, Node, Not, Or, OrderKey, SearchError

Sql = tuple[str, list[Any]]  # a fragment and its parameters, in order


@dataclass(frozen=True)
class Dialect:
    """What differs between the SQL databases we speak."""

    name: str
    placeholder: str  # "?" (sqlite3) or "%s" (psycopg)
    like: str  # a case-insensitive LIKE
    tag_template: str  # SQL of one tag's text; {column} and {p} (the key placeholder)
    tiebreak: str  # the last ORDER BY terms: newest first, then insertion order
    insertion: str = "rowid"  # the column that keeps insertion order (SQLite's rowid, PostgreSQL's ordinal)
    for_update: str = ""  # row lock in a transaction (SQLite locks the whole database at BEGIN IMMEDIATE)
    arrays: bool = False  # ``= ANY(%s)`` with one list parameter instead of ``IN (?, ?, ...)``
    greatest: str = "max"  # the larger of two values (SQLite's scalar max, PostgreSQL's GREATEST)

    def tag(self, column: str) -> str:
        return self.tag_template.format(column=column, p=self.placeholder)

    def sql(self, text: str) -> str:
        """Shared statements are written with ``?``; this dialect's placeholder replaces it."""
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    def in_list(self, column: str, values: Sequence[Any]) -> Sql:
        """``column IN (...)`` for a list of values (written with ``?``)."""
        if self.arrays:
            return f"{column} = ANY(?)", [list(values)]
        return f"{column} IN ({','.join('?' * len(values))})", list(values)


SQLITE = Dialect("sqlite", "?", "LIKE", "json_extract({column}, '$.\"' || {p} || '\"')", "r.start_time DESC, r.rowid DESC")
POSTGRESQL = Dialect("postgresql", "%s", "ILIKE", "(({column})::jsonb ->> {p})", "r.start_time DESC, r.ordinal DESC",
                     insertion="ordinal", for_update=" FOR UPDATE", arrays=True, greatest="GREATEST")

_COMPARISONS = {"=": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_METRIC_COLUMNS = {"last": "last_value", "min": "min_value", "max": "max_value"}
_ATTRIBUTE_COLUMNS = {
    "status": "r.status", "name": "r.name", "id": "r.id", "experiment": "e.name", "parent": "r.parent_run_id",
    "started": "r.start_time", "ended": "r.end_time",
}



@dataclass
class Compiler:
    """Compiles trees and order keys for one dialect; ``now`` fixes the duration of running runs."""

    dialect: Dialect
    now: float = field(default_factory=time.time)

    @property
    def p(self) -> str:
        return self.dialect.placeholder

    # ------------------------------------------------------------------ fields
    def value_of(self, f: Field, alias: str) -> Sql:
        """SQL of a field's value for one run, for ORDER BY; ``alias`` names a join ``order_joins`` made."""
        if f.kind == "param":
            return f"{alias}.num", []
        if f.kind == "metric":
            return f"{alias}.{_METRIC_COLUMNS[f.agg]}", []
        if f.kind == "tag":
            return self.dialect.tag("r.tags"), [f.key]
        return self.attribute(f.key)

    def attribute(self, name: str) -> Sql:
        if name == "duration":
            return f"(coalesce(r.end_time, {self.p}) - r.start_time)", [self.now]
        return _ATTRIBUTE_COLUMNS[name], []

    # ------------------------------------------------------------------ where
    def where(self, node: Node | None) -> Sql:
        """SQL of a boolean expression over ``runs r`` joined to ``experiments e`` (``1=1`` for none)."""
        if node is None:
            return "1=1", []
        if isinstance(node, (And, Or)):
            parts = [self.where(item) for item in node.items]
            joiner = " AND " if isinstance(node, And) else " OR "
            return "(" + joiner.join(sql for sql, _ in parts) + ")", [v for _, args in parts for v in args]
        if isinstance(node, Not):
            sql, args = self.where(node.item)
            return f"(NOT {sql})", args
        return self.comparison(node)

    def comparison(self, c: Compare) -> Sql:
        f = c.field
        if f.kind in ("param", "metric"):
            table = "param_values" if f.kind == "param" else "metric_series"
            exists = f"EXISTS (SELECT 1 FROM {table} x WHERE x.run_id = r.id AND x.key = {self.p}"
            if c.op in ("is_null", "not_null"):
                return (f"{exists})" if c.op == "not_null" else f"NOT {exists})"), [f.key]
            inner = Compare(f, "in", c.value, c.position) if c.op == "not_in" else c
            test, args = self.param_test(inner, "x.") if f.kind == "param" else self.test("x." + _METRIC_COLUMNS[f.agg], inner)
            if c.op == "not_in":  # not in: runs without the value, including those without the key
                return f"NOT {exists} AND {test})", [f.key, *args]
            return f"{exists} AND {test})", [f.key, *args]
        if f.kind == "tag":
            if '"' in f.key:
                raise SearchError(f"a tag key cannot contain a double quote: {f.key!r}", "", c.position)
            test, args = self.test(self.dialect.tag("r.tags"), c)
            return test, [f.key, *args]
        column, args = self.attribute(f.key)
        test, more = self.test(column, c)
        return test, [*args, *more]

    def matching_ids(self, c: Compare) -> Sql:
        """``SELECT run_id`` of the runs one param/metric comparison matches (drives a selective query)."""
        f = c.field
        table = "param_values" if f.kind == "param" else "metric_series"
        test, args = self.param_test(c) if f.kind == "param" else self.test(_METRIC_COLUMNS[f.agg], c)
        return f"SELECT run_id FROM {table} WHERE key = {self.p} AND {test}", [f.key, *args]

    def param_test(self, c: Compare, prefix: str = "") -> Sql:
        """Params compare as numbers with numbers (``num``) and as text with text (``text``)."""
        values = c.value if isinstance(c.value, tuple) else (c.value,)
        if c.op in ("in", "not_in"):
            numbers = tuple(float(v) if isinstance(v, bool) else v for v in values if not isinstance(v, str))
            texts = tuple(v for v in values if isinstance(v, str))
            parts = []
            if numbers:
                parts.append(self.test(prefix + "num", Compare(c.field, "in", numbers)))
            if texts:
                parts.append(self.test(prefix + "text", Compare(c.field, "in", texts)))
            return "(" + " OR ".join(sql for sql, _ in parts) + ")", [v for _, args in parts for v in args]
        value = float(c.value) if isinstance(c.value, bool) else c.value
        column = "text" if isinstance(value, str) or c.op in ("like", "not_like") else "num"
        return self.test(prefix + column, Compare(c.field, c.op, value, c.position))

    def test(self, column: str, c: Compare) -> Sql:
        op, p = c.op, self.p
        if op in _COMPARISONS:
            return f"{column} {_COMPARISONS[op]} {p}", [c.value]
        if op in ("like", "not_like"):
            sql = f"{column} {self.dialect.like} {p}"
            return (sql if op == "like" else f"NOT ({sql})"), [c.value]
        if op in ("in", "not_in"):
            return f"{column} {'IN' if op == 'in' else 'NOT IN'} ({', '.join([p] * len(c.value))})", list(c.value)
        if op == "is_null":
            return f"{column} IS NULL", []
        if op == "not_null":
            return f"{column} IS NOT NULL", []
        raise SearchError(f"unknown operator {op!r}", "", c.position)

    # ------------------------------------------------------------------ order by
    def order(self, keys: Sequence[OrderKey]) -> tuple[str, list[Any], str, list[Any]]:
        """(joins, their parameters, ORDER BY list, its parameters); runs without the value sort last."""
        joins, join_args, terms, term_args = [], [], [], []
        for number, key in enumerate(keys):
            f = key.field
            alias = f"o{number}"
            if f.kind == "param":
                joins.append(f"LEFT JOIN param_values {alias} ON {alias}.run_id = r.id AND {alias}.key = {self.p}")
                join_args.append(f.key)
                # numbers first (by value), then text values (alphabetically)
                direction = "DESC" if key.descending else "ASC"
                terms.append(f"{alias}.num {direction} NULLS LAST, {alias}.text {direction} NULLS LAST")
                continue
            if f.kind == "metric":
                joins.append(f"LEFT JOIN metric_series {alias} ON {alias}.run_id = r.id AND {alias}.key = {self.p}")
                join_args.append(f.key)
            sql, args = self.value_of(f, alias)
            terms.append(f"{sql} {'DESC' if key.descending else 'ASC'} NULLS LAST")
            term_args.extend(args)
        terms.append(self.dialect.tiebreak)
        return " ".join(joins), join_args, ", ".join(terms), term_args


def drivable(c: Node) -> bool:
    """A comparison whose matches an index can list: it can drive a query when it is selective."""
    return (isinstance(c, Compare) and c.field.kind in ("param", "metric")
            and c.op in ("=", "<", "<=", ">", ">=", "in", "like") and not (c.field.kind == "param" and c.op == "like"))


def conjuncts(node: Node | None) -> list[Node]:
    if node is None:
        return []
    if isinstance(node, And):
        return [part for item in node.items for part in conjuncts(item)]
    return [node]


@dataclass
class RunSearch:
    """One run search, compiled into the few statements a store runs to answer it fast.

    Which statement answers a page depends on the data, so the choice is made by
    ``search_page`` from cheap index counts (the way a planner with statistics would):

    - a selective param/metric comparison (fewer than ``DRIVE_BELOW`` matches) drives the query:
      its matching ids are listed from the (key, value) index, the rest is checked per run and
      the small set is sorted;
    - otherwise, sorted by a metric or a numeric param, the sort's (key, value) index drives:
      runs are visited in order and the page stops after ``limit`` matches; runs without a
      value follow (a second statement);
    - otherwise runs are visited newest first (the experiment's start-time index).
    """

    dialect: Dialect
    columns: str
    experiment: str | None = None
    status: str | None = None
    where: Node | None = None
    order_by: Sequence[OrderKey] = ()
    now: float = field(default_factory=time.time)
    archived: bool | None = False  # False: hide archived runs (and runs of archived experiments); True: only those; None: all

    DRIVE_BELOW = 5000

    def __post_init__(self) -> None:
        self.compiler = Compiler(self.dialect, self.now)

    def _conditions(self, skip: Node | None = None) -> Sql:
        p = self.dialect.placeholder
        parts, args = [], []
        if self.experiment is not None:
            parts.append(f"(e.name = {p} OR e.id = {p})")
            args += [self.experiment, self.experiment]
        if self.status is not None:
            parts.append(f"r.status = {p}")
            args.append(self.status)
        if self.archived is not None:
            parts.append(archived_condition(self.archived, self.experiment is not None))
        for item in conjuncts(self.where):
            if item is skip:
                continue
            sql, more = self.compiler.where(item)
            parts.append(sql)
            args += more
        return (" WHERE " + " AND ".join(parts)) if parts else "", args

    def _page(self, sql: str, args: list[Any], limit: int | None, offset: int) -> Sql:
        p = self.dialect.placeholder
        if limit is not None:
            sql += f" LIMIT {p}"
            args = [*args, int(limit)]
        if offset:
            sql += (" LIMIT -1" if limit is None and self.dialect.name == "sqlite" else "") + f" OFFSET {p}"
            args = [*args, int(offset)]
        return sql, args

    BASE = "FROM runs r JOIN experiments e ON e.id = r.experiment_id"

    def count(self) -> Sql:
        where_sql, args = self._conditions()
        return f"SELECT count(*) {self.BASE}{where_sql}", args

    def estimate(self, c: Compare) -> Sql:
        """How many runs ``c`` matches, counted from its index and capped at DRIVE_BELOW."""
        sql, args = self.compiler.matching_ids(c)
        return f"SELECT count(*) FROM ({sql} LIMIT {self.DRIVE_BELOW}) n", args

    def general(self, limit: int | None, offset: int, driver: Compare | None = None) -> Sql:
        """Any filter and order: every candidate checked, then sorted (drives from ``driver``'s ids if given)."""
        joins, join_args, order_sql, order_args = self.compiler.order(self.order_by)
        where_sql, args = self._conditions(skip=driver)
        source, source_args = self.BASE, []
        if driver is not None:
            ids, source_args = self.compiler.matching_ids(driver)
            source = f"FROM ({ids}) d JOIN runs r ON r.id = d.run_id JOIN experiments e ON e.id = r.experiment_id"
        sql = f"SELECT {self.columns} {source} {joins}{where_sql} ORDER BY {order_sql}"
        return self._page(sql, [*source_args, *join_args, *args, *order_args], limit, offset)

    def sort_index(self) -> tuple[str, str, str] | None:
        """(table, value column, key) when the first sort key can be read in order from an index."""
        if not self.order_by:
            return None
        f = self.order_by[0].field
        if f.kind == "metric":
            return "metric_series", _METRIC_COLUMNS[f.agg], f.key
        if f.kind == "param":
            return "param_values", "num", f.key
        return None

    def by_sort_index(self, limit: int | None, offset: int, with_value: bool) -> Sql:
        """Runs with a value of the first sort key, in its index order (``with_value``), or the rest."""
        table, column, key = self.sort_index()
        p = self.dialect.placeholder
        first = self.order_by[0]
        direction = "DESC" if first.descending else "ASC"
        joins, join_args, order_sql, order_args = self.compiler.order(self.order_by[1:])
        where_sql, args = self._conditions()
        where_sql = where_sql or " WHERE 1=1"
        if with_value:
            source = (f"FROM {table} s JOIN runs r ON r.id = s.run_id JOIN experiments e ON e.id = r.experiment_id")
            where_sql += f" AND s.key = {p} AND s.{column} IS NOT NULL"
            sql = f"SELECT {self.columns} {source} {joins}{where_sql} ORDER BY s.{column} {direction}, {order_sql}"
            return self._page(sql, [*join_args, *args, key, *order_args], limit, offset)
        where_sql += f" AND NOT EXISTS (SELECT 1 FROM {table} s WHERE s.run_id = r.id AND s.key = {p} AND s.{column} IS NOT NULL)"
        if table == "param_values":  # text values of the param sort among themselves, after the numbers
            joins = f"LEFT JOIN param_values t ON t.run_id = r.id AND t.key = {p} " + joins
            join_args = [key, *join_args]
            order_sql = f"t.text {direction} NULLS LAST, {order_sql}"
        sql = f"SELECT {self.columns} {self.BASE} {joins}{where_sql} ORDER BY {order_sql}"
        return self._page(sql, [*join_args, *args, key, *order_args], limit, offset)


def archived_condition(archived: bool, experiment_named: bool) -> str:
    """Archived runs: archived themselves, or in an archived experiment (unless that experiment
    is the one asked for by name: its runs are what the user wants to see)."""
    if experiment_named:
        return "r.archived_at IS NOT NULL" if archived else "r.archived_at IS NULL"
    if archived:
        return "(r.archived_at IS NOT NULL OR e.archived_at IS NOT NULL)"
    return "r.archived_at IS NULL AND e.archived_at IS NULL"


def search_page(search: RunSearch, execute: Callable[[str, list[Any]], list[tuple]], limit: int | None,
                offset: int = 0) -> list[tuple]:
    """One page of a search, choosing the statement as ``RunSearch`` describes; ``execute`` runs SQL."""
    candidates = [c for c in conjuncts(search.where) if drivable(c)]
    best: tuple[int, Compare] | None = None
    for c in candidates:
        matches = execute(*search.estimate(c))[0][0]
        if matches < search.DRIVE_BELOW and (best is None or matches < best[0]):
            best = (matches, c)
    if best is not None:
        return execute(*search.general(limit, offset, driver=best[1]))
    if search.sort_index() is None or limit is None:
        return execute(*search.general(limit, offset))
    rows = execute(*search.by_sort_index(limit, offset, with_value=True))
    if len(rows) >= limit:
        return rows
    having = offset + len(rows) if rows else execute(*_count_with_value(search))[0][0]
    rest = execute(*search.by_sort_index(limit - len(rows), max(0, offset - having), with_value=False))
    return rows + rest


def _count_with_value(search: RunSearch) -> Sql:
    sql, args = search.by_sort_index(None, 0, with_value=True)
    return f"SELECT count(*) FROM ({sql}) c", args


def select_runs(dialect: Dialect, columns: str, *, experiment: str | None = None, status: str | None = None,
                where: Node | None = None, order_by: Sequence[OrderKey] = (), limit: int | None = None,
                offset: int = 0, count: bool = False, now: float | None = None, archived: bool | None = False) -> Sql:
    """One statement for a search (the general form; ``search_page`` picks faster ones)."""
    search = RunSearch(dialect, columns, experiment, status, where, order_by, now if now is not None else time.time(), archived)
    return search.count() if count else search.general(limit, offset)
