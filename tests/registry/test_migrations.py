"""The registry schema is added to stores written by the previous release, data kept: SQLite v3 -> v4
(in place, on open) and PostgreSQL v4 -> v5 (``modelbox db upgrade``), and on to the current
version (the access schema after it: tests/access/test_migrations.py)."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

import modelbox_autolog as mbx
from modelbox_autolog.backends import BackendError
from modelbox_autolog.backends.sqlite import (
    LIVENESS_INDEX,
    SCHEMA,
    SCHEMA_VERSION,
    SEARCH_STATEMENTS,
    SQLiteStore,
)
from modelbox_autolog.cli import main as cli_main


def _v2_rows(execute, p: str) -> None:
    """What a store of the previous release holds: an experiment, a finished run with a param, two model versions."""
    now = time.time()
    execute(f"INSERT INTO experiments VALUES ({p}, {p}, {p})", ("e1", "legacy", now))
    execute("INSERT INTO runs (id, experiment_id, name, status, start_time, end_time, tags, env)"
            f" VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})", ("r1" * 16, "e1", "old-run", "finished", now, now + 1, '{"team": "a"}', "{}"))
    execute(f"INSERT INTO params VALUES ({p}, {p}, {p})", ("r1" * 16, "lr", "0.1"))
    for version in (1, 2):
        execute(f"INSERT INTO models VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})",
                (f"m{version}" * 16, "legacy-clf", version, "sklearn", "r1" * 16, "e1", json.dumps({"auc": 0.9}), "{}", "[]",
                 "draft", now + version, now))


def _check_upgraded(client: mbx.Client) -> None:
    run = client.run("r1" * 16)
    assert (run.name, run.params, run.tags, run.archived_at, run.note) == ("old-run", {"lr": 0.1}, {"team": "a"}, None, None)
    assert client.set_alias("legacy-clf", "production", 1).aliases == ["production"]
    assert client.model("legacy-clf@production").metadata == {"auc": 0.9}
    assert client.model("legacy-clf@latest").version == 2
    client.archive_run(run.id)
    assert client.runs() == [] and [r.id for r in client.runs(archived=True)] == [run.id]
    assert client.set_note(run.id, "kept through the upgrade").note == "kept through the upgrade"


def test_sqlite_v3_store_is_upgraded_in_place(tmp_path):
    path = tmp_path / "store" / "modelbox.db"
    path.parent.mkdir()
    conn = sqlite3.connect(path)
    for statement in [*SCHEMA.split(";"), *SEARCH_STATEMENTS, LIVENESS_INDEX]:  # exactly what the v3 release created
        if statement.strip():
            conn.execute(statement)
    conn.execute("PRAGMA user_version=3")
    _v2_rows(conn.execute, "?")
    conn.commit()
    conn.close()
    uri = f"sqlite:///{path}"
    store = SQLiteStore(uri)
    assert store._query("PRAGMA user_version")[0][0] == SCHEMA_VERSION
    store.close()
    _check_upgraded(mbx.Client(uri))


def test_postgres_v4_store_is_upgraded_by_db_upgrade(pg_uri, tmp_path, capsys):
    import psycopg

    from modelbox_autolog.backends import pg_migrations
    from modelbox_autolog.backends.postgres import split_uri

    conninfo = split_uri(pg_uri)[0]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        pg_migrations.upgrade(conn, target=4)  # the team server's release before the registry
        _v2_rows(conn.execute, "%s")
    uri = f"{pg_uri}?artifacts={tmp_path / 'files'}"
    with pytest.raises(BackendError, match=r"schema v4, older .* modelbox db upgrade"):
        mbx.Client(uri).experiments()
    assert cli_main(["db", "upgrade", pg_uri]) == 0
    out = capsys.readouterr().out
    assert "0005_registry" in out and "0006_access" in out
    _check_upgraded(mbx.Client(uri))
