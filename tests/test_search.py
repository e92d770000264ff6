"""The run-search language: parsing (with positions), compiling to SQL, and running in a real store."""

from __future__ import annotations

import csv
import io
import math
import sqlite3

import pytest

import modelbox_autolog as mbx
from modelbox_autolog.backends.search_sql import POSTGRESQL, SQLITE, select_runs
from modelbox_autolog.backends.sqlite import SCHEMA_VERSION, SQLiteStore
from modelbox_autolog.cli import main as modelbox
from modelbox_autolog.search import And, Compare, Field, Not, Or, SearchError, parse_order_by, parse_where


# ---------------------------------------------------------------------- parser
def test_parse_tree_and_precedence():
    tree = parse_where("not params.a = 1 or params.b >= 2 and metrics.c < 3")
    assert tree == Or((Not(Compare(Field("param", "a"), "=", 1, 4)),
                       And((Compare(Field("param", "b"), ">=", 2, 20), Compare(Field("metric", "c"), "<", 3, 38)))))


@pytest.mark.parametrize(("text", "field", "op", "value"), [
    ("params.optimizer.name = 'adam'", Field("param", "optimizer.name"), "=", "adam"),
    ('params.`my key` != "x y"', Field("param", "my key"), "!=", "x y"),
    ("max(metrics.val_acc) > 0.8", Field("metric", "val_acc", "max"), ">", 0.8),
    ("min(metrics.loss) <= 1e-3", Field("metric", "loss", "min"), "<=", 0.001),
    ("tags.team is not null", Field("tag", "team"), "not_null", None),
    ("status not in ('failed', 'killed')", Field("attr", "status"), "not_in", ("failed", "killed")),
    ("name not like 'bert-%'", Field("attr", "name"), "not_like", "bert-%"),
    ("duration < 10m", Field("attr", "duration"), "<", 600.0),
    ("duration >= 250ms", Field("attr", "duration"), ">=", 0.25),
    ("params.flag == true", Field("param", "flag"), "=", True),
    ("PARAMS.lr <> -2", Field("param", "lr"), "!=", -2),
])
def test_parse_comparisons(text, field, op, value):
    node = parse_where(text)
    assert (node.field, node.op, node.value) == (field, op, value)


def test_dates_become_epoch_seconds():
    import datetime

    assert parse_where("started >= 2024-05-01").value == datetime.datetime(2024, 5, 1).timestamp()


@pytest.mark.parametrize(("text", "position", "words"), [
    ("params.lr >", 11, "expected a value"),
    ("params.lr > 0.1 and", 19, "expected a condition"),
    ("params.lr >> 3", 11, "expected a value"),
    ("foo = 1", 0, "expected a condition"),
    ("params.lr = 1 xyz", 14, "unexpected 'xyz'"),
    ("(params.lr = 1", 14, "expected ')'"),
    ("params.lr in 1", 13, "list of values"),
    ("metrics.acc > 'high'", 14, "is a number"),
    ("params.lr = 5m", 12, "applies to duration only"),
    ("max(params.lr) > 1", 0, "metrics only"),
    ("status like 3", 12, "pattern"),
])
def test_errors_point_at_the_bad_token(text, position, words):
    with pytest.raises(SearchError) as info:
        parse_where(text)
    assert info.value.position == position, info.value.pointer()
    assert words in info.value.message
    assert info.value.pointer().splitlines()[1].index("^") == position


def test_order_by():
    keys = parse_order_by("metrics.val_acc desc, params.lr, duration ASC")
    assert [(str(k.field), k.descending) for k in keys] == [("metrics.val_acc", True), ("params.lr", False), ("duration", False)]
    with pytest.raises(SearchError):
        parse_order_by("metrics.val_acc sideways")


def test_values_are_bound_never_spliced():
    tree = parse_where("name = 'x'' or 1=1 --' or params.`a'b` = 'c\"d'")
    for dialect in (SQLITE, POSTGRESQL):
        sql, args = select_runs(dialect, "r.id", where=tree, order_by=parse_order_by("metrics.loss"), limit=5)
        assert "1=1 --" not in sql and "a'b" not in sql and "c\"d" not in sql
        assert "a'b" in args and 'c"d' in args
    assert "%s" in select_runs(POSTGRESQL, "r.id", where=tree)[0] and "ILIKE" in select_runs(
        POSTGRESQL, "r.id", where=parse_where("name like 'a%'"))[0]


# ---------------------------------------------------------------------- in a real store
def log_grid(uri: str) -> mbx.Client:
    """Twelve runs of a small grid, logged for real into ``uri``; one diverged (NaN latest) and one failed."""
    mbx.autolog(backend=uri, frameworks=[], capture_console=False)
    for i in range(12):
        status = "failed" if i == 11 else "finished"
        try:
            with mbx.start_run(name=f"run-{i:02d}", experiment="grid" if i < 10 else "other",
                               tags={"team": "vision" if i % 2 else "nlp"}) as run:
                run.log_params({"lr": 10.0 ** -(i % 4), "optimizer": {"name": "adam" if i % 3 else "sgd"}, "layers": i,
                                "flag": i % 2 == 0})
                for step in range(5):
                    run.log_metric("loss", 1.0 / (step + 1 + i), step=step)
                run.log_metric("acc", i / 10, step=0)
                if i == 9:
                    run.log_metric("acc", math.nan, step=1)
                if status == "failed":
                    raise RuntimeError("boom")
        except RuntimeError:
            pass
    assert mbx.flush(10)
    return mbx.Client(uri)


@pytest.fixture
def grid(store_uri):
    """Twelve runs of a small grid, logged for real; one diverged (NaN latest) and one failed."""
    return log_grid(store_uri)


def names(runs) -> list[str]:
    return [r.name for r in runs]


def test_filters_and_sorts_in_the_store(grid):
    assert names(grid.runs(where="params.lr >= 0.1 and params.optimizer.name = 'adam'", order_by="params.layers")) == [
        "run-01", "run-04", "run-05", "run-08"]
    assert names(grid.runs(experiment="grid", where="metrics.acc > 0.5", order_by="metrics.acc desc")) == [
        "run-08", "run-07", "run-06"]  # run-09's latest acc is NaN: not > 0.5
    assert names(grid.runs(where="max(metrics.acc) >= 0.9")) == ["run-11", "run-10", "run-09"]
    assert names(grid.runs(where="min(metrics.loss) < 0.07", order_by="min(metrics.loss)")) == ["run-11", "run-10"]
    assert len(grid.runs(where="tags.team = 'vision'")) == 6
    assert names(grid.runs(where="status = 'failed'")) == ["run-11"]
    assert names(grid.runs(where="name like 'RUN-1%' and not status in ('failed')")) == ["run-10"]
    assert len(grid.runs(where="params.flag = true")) == 6
    assert len(grid.runs(where="params.layers in (1, 2, 'x') or params.optimizer.name not in ('adam')")) == 2 + 4
    assert len(grid.runs(where="params.missing is null")) == 12
    assert len(grid.runs(where="duration < 1h and started > 2000-01-01")) == 12
    assert names(grid.runs(order_by="metrics.acc desc", limit=3, offset=1)) == ["run-10", "run-08", "run-07"]
    assert grid.count_runs(where="params.lr < 0.05") == 6
    assert grid.count_runs(experiment="other") == 2


def test_summaries_keys_and_latest_nan(grid):
    run9 = grid.runs(where="name = 'run-09'")[0]
    summary = grid.metric_summaries([run9.id])[run9.id]
    assert math.isnan(summary["acc"].last) and summary["acc"].max == 0.9 and summary["acc"].count == 2
    assert summary["loss"].last == pytest.approx(1 / 14) and summary["loss"].min == pytest.approx(1 / 14)
    keys = grid.search_keys("grid")
    assert keys["metrics"] == ["acc", "loss"] and "optimizer.name" in keys["params"] and keys["tags"] == ["team"]


def test_invalid_where_raises_with_position(grid):
    with pytest.raises(mbx.SearchError) as info:
        grid.runs(where="metrics.acc >")
    assert info.value.position == 13


def test_an_existing_version_1_store_is_upgraded(grid, store_uri):
    path = store_uri[len("sqlite:///"):]
    grid.close()
    conn = sqlite3.connect(path)
    conn.executescript(
        "DROP TABLE model_aliases; DROP INDEX runs_by_parent; DROP INDEX models_by_run;"
        " ALTER TABLE runs DROP COLUMN archived_at; ALTER TABLE runs DROP COLUMN note;"
        " ALTER TABLE experiments DROP COLUMN archived_at; ALTER TABLE models DROP COLUMN source_uri;"
        " DROP TRIGGER params_kept_queryable; DROP TABLE param_values; DROP INDEX metric_series_by_last;"
        " DROP INDEX metric_series_by_min; DROP INDEX metric_series_by_max;"
        + "".join(f"ALTER TABLE metric_series DROP COLUMN {c};" for c in
                  ("count", "last_step", "last_value", "last_time", "min_value", "max_value"))
        + "DROP TABLE access_tokens; ALTER TABLE runs DROP COLUMN created_by; ALTER TABLE models DROP COLUMN created_by;"
        " ALTER TABLE changes DROP COLUMN actor; PRAGMA user_version=1;")
    conn.close()
    store = SQLiteStore(store_uri)
    assert [r.name for r in store.search_runs(where="metrics.acc > 0.5 and params.lr = 1", order_by="metrics.acc desc")] == [
        "run-08"]
    assert store._query("PRAGMA user_version")[0][0] == SCHEMA_VERSION  # upgraded to the current version
    assert store.changes(0)[0].actor == ""  # stored before actors were kept
    store.close()


def test_cli_where_csv_and_bad_expression(grid, store_uri, capsys):
    assert modelbox(["--backend", store_uri, "runs", "--where", "params.lr = 1 and status = 'finished'", "--csv",
                     "--order-by", "params.layers desc"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["name"] for r in rows] == ["run-08", "run-04", "run-00"]
    assert rows[0]["params.optimizer.name"] == "adam" and float(rows[0]["metrics.acc"]) == 0.8
    assert modelbox(["--backend", store_uri, "runs", "--where", "params.lr >> 1"]) == 2
    err = capsys.readouterr().err
    assert "position 11" in err and "^" in err


@pytest.mark.parametrize("where", [None, "params.lr < 0.5", "tags.team = 'vision' or params.layers > 7", "status = 'finished'",
                                   "metrics.acc > 0.3 and params.optimizer.name = 'adam'"])
@pytest.mark.parametrize("order_by", [None, "metrics.acc desc", "metrics.acc", "params.optimizer.name desc", "params.lr",
                                      "min(metrics.loss) desc, name", "duration desc"])
def test_every_plan_gives_the_same_pages(grid, store_uri, monkeypatch, where, order_by):
    """Driven by a selective comparison, by the sort's index (with the runs lacking a value after),
    or the general statement: the same runs in the same order, page by page."""
    from modelbox_autolog.backends.search_sql import RunSearch, search_page

    store = SQLiteStore(store_uri)
    tree, keys = parse_where(where), parse_order_by(order_by)
    everything = store._query(*select_runs(SQLITE, "r.id", where=tree, order_by=keys))
    for drive_below in (0, 10_000):  # 0: no comparison is selective enough to drive
        monkeypatch.setattr(RunSearch, "DRIVE_BELOW", drive_below)
        search = RunSearch(SQLITE, "r.id", None, None, tree, keys)
        pages = [search_page(search, store._query, 5, offset) for offset in range(0, 15, 5)]
        assert [row for page in pages for row in page] == everything, (drive_below, where, order_by)
    store.close()
