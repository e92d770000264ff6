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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..search import And, Compare, Field, Node, Not, Or, OrderKey, SearchError


@dataclass(frozen=True)
class Dialect:
    """What differs between the SQL databases we speak."""

    name: str
    placeholder: str  # "?" (sqlite3) or "%s" (psycopg)
    like: str  # a case-insensitive LIKE
    tag_template: str  # SQL of one tag's text; {column} and {p} (the key placeholder)
    tiebreak: str  # the last ORDER BY terms: newest first, then insertion order

    def tag(self, column: str) -> str:
        return self.tag_template.format(column=column, p=self.placeholder)


SQLITE = Dialect("sqlite", "?", "LIKE", "json_extract({column}, '$.\"' || {p} || '\"')", "r.start_time DESC, r.rowid DESC")
POSTGRESQL = Dialect("postgresql", "%s", "ILIKE", "(({column})::jsonb ->> {p})", "r.start_time DESC, r.id DESC")

_COMPARISONS = {"=": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_METRIC_COLUMNS = {"last": "last_value", "min": "min_value", "max": "max_value"}
_ATTRIBUTE_COLUMNS = {
    "status": "r.status", "name": "r.name", "id": "r.id", "experiment": "e.name", "parent": "r.parent_run_id",
    "started": "r.start_time", "ended": "r.end_time",
}


Sql = tuple[str, list[Any]]  # a fragment and its parameters, in order


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
            exists = f"r.id IN (SELECT run_id FROM {table} WHERE key = {self.p}"
            if c.op in ("is_null", "not_null"):
                return (f"{exists})" if c.op == "not_null" else f"NOT {exists})"), [f.key]
            inner = Compare(f, "in", c.value, c.position) if c.op == "not_in" else c
            test, args = self.param_test(inner) if f.kind == "param" else self.test(_METRIC_COLUMNS[f.agg], inner)
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

    def param_test(self, c: Compare) -> Sql:
        """Params compare as numbers with numbers (``num``) and as text with text (``text``)."""
        values = c.value if isinstance(c.value, tuple) else (c.value,)
        if c.op in ("in", "not_in"):
            numbers = tuple(float(v) if isinstance(v, bool) else v for v in values if not isinstance(v, str))
            texts = tuple(v for v in values if isinstance(v, str))
            parts = []
            if numbers:
                parts.append(self.test("num", Compare(c.field, "in", numbers)))
            if texts:
                parts.append(self.test("text", Compare(c.field, "in", texts)))
            return "(" + " OR ".join(sql for sql, _ in parts) + ")", [v for _, args in parts for v in args]
        value = float(c.value) if isinstance(c.value, bool) else c.value
        column = "text" if isinstance(value, str) or c.op in ("like", "not_like") else "num"
        return self.test(column, Compare(c.field, c.op, value, c.position))

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


def select_runs(dialect: Dialect, columns: str, *, experiment: str | None = None, status: str | None = None,
                where: Node | None = None, order_by: Sequence[OrderKey] = (), limit: int | None = None,
                offset: int = 0, count: bool = False, now: float | None = None) -> Sql:
    """A whole query over ``runs r JOIN experiments e``: the page of runs (``columns``), or their count."""
    compiler = Compiler(dialect, now if now is not None else time.time())
    p = dialect.placeholder
    conditions, args = [], []
    if experiment is not None:
        conditions.append(f"(e.name = {p} OR e.id = {p})")
        args += [experiment, experiment]
    if status is not None:
        conditions.append(f"r.status = {p}")
        args.append(status)
    if where is not None:
        sql, more = compiler.where(where)
        conditions.append(sql)
        args += more
    where_sql = (" WHERE " + " AND ".join(conditions)) if conditions else ""
    base = "FROM runs r JOIN experiments e ON e.id = r.experiment_id"
    if count:
        return f"SELECT count(*) {base}{where_sql}", args
    joins, join_args, order_sql, order_args = compiler.order(order_by)
    sql = f"SELECT {columns} {base} {joins}{where_sql} ORDER BY {order_sql}"
    page: list[Any] = []
    if limit is not None:
        sql += f" LIMIT {p}"
        page.append(int(limit))
    if offset:
        sql += (" LIMIT -1" if limit is None and dialect.name == "sqlite" else "") + f" OFFSET {p}"
        page.append(int(offset))
    return sql, [*join_args, *args, *order_args, *page]
