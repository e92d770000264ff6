"""Run search on PostgreSQL: the same compiler and plans as SQLite (backends/search_sql.py), so
the same questions get the same answers; summaries kept on ingest; schema v2 -> v3 fills them."""

from __future__ import annotations

import math

import pytest

import modelbox_autolog as mbx
from modelbox_autolog.backends import pg_migrations
from modelbox_autolog.backends.postgres import PostgresStore
from modelbox_autolog.search import parse_order_by, parse_where

from .. import test_search


@pytest.fixture
def pg_grid(pg_uri):
    """test_search's grid of twelve runs (the same runs), logged into PostgreSQL."""
    return test_search.log_grid(pg_uri)


def test_the_same_answers_as_sqlite(pg_grid):
    test_search.test_filters_and_sorts_in_the_store(pg_grid)
    test_search.test_summaries_keys_and_latest_nan(pg_grid)
    test_search.test_invalid_where_raises_with_position(pg_grid)


@pytest.mark.parametrize("where", [None, "params.lr < 0.5", "tags.team = 'vision' or params.layers > 7",
                                   "metrics.acc > 0.3 and params.optimizer.name = 'adam'"])
@pytest.mark.parametrize("order_by", [None, "metrics.acc desc", "params.optimizer.name desc", "min(metrics.loss) desc, name"])
def test_every_plan_gives_the_same_pages(pg_grid, pg_uri, monkeypatch, where, order_by):
    from modelbox_autolog.backends.search_sql import POSTGRESQL, RunSearch, search_page, select_runs

    store = PostgresStore(pg_uri)
    tree, keys = parse_where(where), parse_order_by(order_by)
    everything = store._execute(*select_runs(POSTGRESQL, "r.id", where=tree, order_by=keys))
    for drive_below in (0, 10_000):
        monkeypatch.setattr(RunSearch, "DRIVE_BELOW", drive_below)
        search = RunSearch(POSTGRESQL, "r.id", None, None, tree, keys)
        pages = [search_page(search, store._execute, 5, offset) for offset in range(0, 15, 5)]
        assert [row for page in pages for row in page] == everything, (drive_below, where, order_by)
    store.close()


def test_charts_children_and_lineage(pg_grid, pg_uri):
    run = pg_grid.runs(where="name = 'run-03'")[0]
    store = PostgresStore(pg_uri)
    try:
        sample = store.metric_sample(run.id, "loss", max_points=3)
        assert len(sample.steps) <= 5 and sample.steps[0] == 0
        assert store.child_counts([run.id]) == {run.id: 0}
        assert store.input_consumers(["nothing"]) == []
    finally:
        store.close()


def test_upgrading_a_version_2_store_fills_the_search_tables(pg_uri):
    import psycopg

    with psycopg.connect(pg_uri, autocommit=True) as conn:
        pg_migrations.upgrade(conn, target=2)  # then rows as a release with schema v2 wrote them
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        conn.execute("INSERT INTO experiments VALUES ('e', 'old', 1.0)")
        conn.execute("INSERT INTO runs (id, experiment_id, name, status, start_time) VALUES ('r1', 'e', 'a', 'finished', 1.0)")
        conn.execute("""INSERT INTO params VALUES ('r1', 'lr', '0.5'), ('r1', 'opt', '"adam"'), ('r1', 'on', 'true'),"""
                     """ ('r1', 'odd', 'NaN')""")
        from modelbox_autolog.backends.sqlite import pack_points

        sid = conn.execute("INSERT INTO metric_series (run_id, key) VALUES ('r1', 'acc') RETURNING id").fetchone()[0]
        for points in ([("r1", "acc", 0.5, 0, 1.0, None), ("r1", "acc", 0.9, 1, 2.0, None)],
                       [("r1", "acc", float("nan"), 2, 3.0, None)]):
            conn.execute("INSERT INTO metric_chunks (series_id, count, min_step, max_step, steps, vals, times, epochs)"
                         " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", (sid, *pack_points(points)))
    with pytest.raises(mbx.BackendError, match="modelbox db upgrade"):
        PostgresStore(pg_uri)
    store = PostgresStore(pg_uri, upgrade=True)
    try:
        assert [r.id for r in store.search_runs(where="params.lr = 0.5 and params.opt = 'adam' and params.on = true")] == ["r1"]
        assert store.search_runs(where="params.odd = 1") == []
        summary = store.metric_summaries(["r1"])["r1"]["acc"]
        assert math.isnan(summary.last) and (summary.min, summary.max, summary.count, summary.step) == (0.5, 0.9, 3, 2)
        assert [r.id for r in store.search_runs(where="max(metrics.acc) > 0.8")] == ["r1"]
    finally:
        store.close()
