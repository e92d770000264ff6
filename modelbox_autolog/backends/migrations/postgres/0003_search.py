"""Schema v3: the queryable side of run search (backends/search_sql.py), as in the SQLite store.

``param_values(run_id, key, num, text)``: each param as a number (numbers, booleans as 1/0) and
as text; ``metric_series`` gains count, latest (step, value, time), min and max, indexed by key.
Existing params and series are filled in here: the summaries come from the packed chunks.
"""

from __future__ import annotations

STATEMENTS = (
    "ALTER TABLE metric_series ADD COLUMN count BIGINT NOT NULL DEFAULT 0, ADD COLUMN last_step BIGINT,"
    " ADD COLUMN last_value DOUBLE PRECISION, ADD COLUMN last_time DOUBLE PRECISION,"
    " ADD COLUMN min_value DOUBLE PRECISION, ADD COLUMN max_value DOUBLE PRECISION",
    "CREATE INDEX metric_series_by_last ON metric_series (key, last_value)",
    "CREATE INDEX metric_series_by_min ON metric_series (key, min_value)",
    "CREATE INDEX metric_series_by_max ON metric_series (key, max_value)",
    "CREATE TABLE param_values (run_id TEXT NOT NULL, key TEXT NOT NULL, num DOUBLE PRECISION, text TEXT,"
    " PRIMARY KEY (run_id, key))",
    "CREATE INDEX param_values_by_num ON param_values (key, num)",
    "CREATE INDEX param_values_by_text ON param_values (key, text)",
)


def upgrade(conn) -> None:
    from modelbox_autolog.backends.postgres import SUMMARY_UPDATE, param_value_row, summary_params
    from modelbox_autolog.backends.sqlite import unpack_points

    for statement in STATEMENTS:
        conn.execute(statement)
    rows = [param_value_row(run_id, key, value) for run_id, key, value in conn.execute("SELECT run_id, key, value FROM params")]
    if rows:
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO param_values VALUES (%s, %s, %s, %s)", rows)
    for (series_id,) in conn.execute("SELECT id FROM metric_series ORDER BY id").fetchall():
        chunks = conn.execute("SELECT steps, vals, times, epochs FROM metric_chunks WHERE series_id = %s ORDER BY id",
                              (series_id,)).fetchall()
        points = [(None, None, p.value, p.step, p.timestamp, p.epoch)
                  for chunk in chunks for p in unpack_points(*(bytes(c) for c in chunk))]
        if points:
            conn.execute(SUMMARY_UPDATE, summary_params(series_id, points))
