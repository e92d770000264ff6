"""PostgreSQL schema versions: numbered SQL (or Python) files applied in one transaction, a version table.

``migrations/postgres/NNNN_name.sql`` are applied in order; ``modelbox_schema`` records each
applied version. An empty database is initialised to the latest version; an older schema is
upgraded only when asked (``modelbox db upgrade URI``); a newer one is refused. Concurrent
upgraders (several replicas, a second ``db upgrade``) serialise on an advisory lock.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any, NamedTuple

MIGRATIONS_DIR = os.path.join(os.path.dirname(__file__), "migrations", "postgres")
VERSION_TABLE = "modelbox_schema"
UPGRADE_LOCK = 0x6D6278_5F6D6967  # "mbx_mig": one upgrader at a time


class Migration(NamedTuple):
    """``sql`` (the text of NNNN_name.sql) or ``path`` of NNNN_name.py, whose ``upgrade(conn)``
    runs in the same transaction (for data a statement cannot compute, e.g. packed chunks)."""

    version: int
    name: str
    sql: str | None
    path: str | None = None

    def apply(self, conn: Any) -> None:
        if self.sql is not None:
            conn.execute(self.sql)
            return
        import importlib.util

        spec = importlib.util.spec_from_file_location(f"modelbox_migration_{self.version:04d}", self.path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.upgrade(conn)


def migrations() -> list[Migration]:
    found = []
    for filename in sorted(os.listdir(MIGRATIONS_DIR)):
        match = re.fullmatch(r"(\d{4})_(\w+)\.(sql|py)", filename)
        if match:
            path = os.path.join(MIGRATIONS_DIR, filename)
            if match.group(3) == "py":
                found.append(Migration(int(match.group(1)), match.group(2), None, path))
                continue
            with open(path, encoding="utf-8") as handle:
                found.append(Migration(int(match.group(1)), match.group(2), handle.read()))
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..N without gaps, found {versions}")
    return found


LATEST = len(migrations())


def current_version(conn: Any) -> int:
    """The schema version of a database: 0 when it has no ModelBox schema at all."""
    # pg_tables, not to_regclass: a lookup through the catalog cache may not yet see a table that
    # another opener created while this one waited for the upgrade lock (an advisory lock does
    # not refresh that cache); a query reads the committed catalog.
    row = conn.execute("SELECT bool_or(tablename = %s), bool_or(tablename = 'runs') FROM pg_catalog.pg_tables"
                       " WHERE schemaname = current_schema() AND tablename IN (%s, 'runs')", (VERSION_TABLE, VERSION_TABLE)).fetchone()
    if not row[0]:
        return -1 if row[1] else 0  # -1: a "runs" table that is not ours
    return conn.execute(f"SELECT coalesce(max(version), 0) FROM {VERSION_TABLE}").fetchone()[0]


def upgrade(conn: Any, target: int | None = None) -> list[Migration]:
    """Apply the missing migrations up to ``target`` (default: latest) in one transaction; the
    list of those applied. ``conn`` is a psycopg connection outside any transaction."""
    target = LATEST if target is None else target
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (UPGRADE_LOCK,))
        version = current_version(conn)
        if version < 0:
            raise RuntimeError("the database has a 'runs' table that is not a ModelBox store's; use another database")
        if version == 0:
            conn.execute(f"CREATE TABLE {VERSION_TABLE} (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                         " applied_at DOUBLE PRECISION NOT NULL)")
        applied = []
        for migration in migrations():
            if version < migration.version <= target:
                migration.apply(conn)
                conn.execute(f"INSERT INTO {VERSION_TABLE} VALUES (%s, %s, %s)", (migration.version, migration.name, time.time()))
                applied.append(migration)
        return applied
