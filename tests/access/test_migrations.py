"""Stores of the release before access control (SQLite v4, PostgreSQL 0005_registry: the registry
without owners, tokens or actors) upgrade to the access schema with their data, aliases and
archives kept; what was stored before has no owner (only an admin changes it) and no actor."""

from __future__ import annotations

import sqlite3
import time

import pytest

import modelbox_autolog as mbx
from modelbox_autolog._actor import local_actor
from modelbox_autolog.backends import BackendError
from modelbox_autolog.backends.sqlite import (
    LIVENESS_INDEX,
    REGISTRY_STATEMENTS,
    SCHEMA,
    SCHEMA_VERSION,
    SEARCH_STATEMENTS,
    SQLiteStore,
)
from modelbox_autolog.cli import main as cli_main
from modelbox_autolog.server.access import Authenticator, create_token
from modelbox_autolog.server.policy import Denied, Policy, own

RUN, MODEL = "r4" * 16, "m4" * 16


def _v4_rows(execute, p: str) -> None:
    """What the registry release wrote: an archived run with a note, an aliased model, a change event."""
    now = time.time()
    execute(f"INSERT INTO experiments (id, name, created_at) VALUES ({p}, {p}, {p})", ("e4", "before-access", now))
    execute("INSERT INTO runs (id, experiment_id, name, status, start_time, end_time, tags, env, archived_at, note)"
            f" VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})",
            (RUN, "e4", "v4-run", "finished", now, now + 1, "{}", "{}", now + 2, "kept"))
    execute("INSERT INTO models (id, name, version, framework, run_id, experiment_id, metadata, labels, datasets, status,"
            f" created_at, updated_at) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})",
            (MODEL, "v4-clf", 1, "sklearn", RUN, "e4", "{}", '{"stage": "prod"}', "[]", "draft", now, now))
    execute(f"INSERT INTO model_aliases VALUES ({p}, {p}, {p}, {p}, {p})", ("v4-clf", "production", MODEL, 1, now))
    execute(f"INSERT INTO changes (kind, object_type, object_id, payload, timestamp) VALUES ({p}, {p}, {p}, {p}, {p})",
            ("created", "alias", "v4-clf@production", "{}", now))


def _check_upgraded(uri: str, store) -> None:
    client = mbx.Client(uri)
    run = client.run(RUN)
    assert (run.name, run.note, run.archived_at is not None) == ("v4-run", "kept", True)
    assert client.model("v4-clf@production").id == MODEL and client.model(MODEL).labels == {"stage": "prod"}
    assert [c.actor for c in client.changes(0)] == [""]  # stored before actors were kept
    assert store.run_owner(RUN) == (RUN, None) and store.model_owner("v4-clf@production") == (MODEL, None)
    token, _ = create_token(store, "walt", "writer", actor="ops")
    walt = Authenticator(store, None).authenticate(token)
    with pytest.raises(Denied, match="no recorded owner"):  # only an admin changes what has no owner
        Policy(store).authorize(walt, own("run", "run_id"), RUN)
    assert client.set_note(RUN, "after the upgrade").note == "after the upgrade"
    assert [(c.kind, c.object_type, c.actor) for c in client.changes(1)][-2:] == [("created", "token", "ops"),
                                                                                  ("updated", "run", local_actor())]


def test_sqlite_v4_registry_store_upgrades_to_the_access_schema(tmp_path):
    path = tmp_path / "store" / "modelbox.db"
    path.parent.mkdir()
    conn = sqlite3.connect(path)
    for statement in [*SCHEMA.split(";"), *SEARCH_STATEMENTS, LIVENESS_INDEX, *REGISTRY_STATEMENTS]:  # what v4 created
        if statement.strip():
            conn.execute(statement)
    conn.execute("PRAGMA user_version=4")
    _v4_rows(conn.execute, "?")
    conn.commit()
    conn.close()
    uri = f"sqlite:///{path}"
    store = SQLiteStore(uri)
    assert store._query("PRAGMA user_version")[0][0] == SCHEMA_VERSION == 5
    try:
        _check_upgraded(uri, store)
    finally:
        store.close()


def test_postgres_0005_registry_store_upgrades_to_0006_access(pg_uri, tmp_path, capsys):
    import psycopg

    from modelbox_autolog.backends import pg_migrations
    from modelbox_autolog.backends.postgres import PostgresStore, split_uri

    with psycopg.connect(split_uri(pg_uri)[0], autocommit=True) as conn:
        pg_migrations.upgrade(conn, target=5)  # the registry release
        _v4_rows(conn.execute, "%s")
    uri = f"{pg_uri}?artifacts={tmp_path / 'files'}"
    with pytest.raises(BackendError, match=r"schema v5, older .* modelbox db upgrade"):
        mbx.Client(uri).experiments()
    assert cli_main(["db", "upgrade", pg_uri]) == 0
    out = capsys.readouterr().out
    assert "0006_access" in out and "0005_registry" not in out
    store = PostgresStore(uri)
    try:
        _check_upgraded(uri, store)
    finally:
        store.close()
