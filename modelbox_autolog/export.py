"""``modelbox export RUN_ID --format csv|json|parquet``: a run's metrics, one row per point.

Rows are ``run_id, metric, step, epoch, value, timestamp`` in metric then step order. CSV
keeps NaN and infinities as ``nan``/``inf``/``-inf`` (what Python, pandas and R read back);
JSON, which has no such numbers, writes them as the strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"`` (as the HTTP API does); Parquet keeps them as IEEE doubles.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Iterator, Sequence
from typing import Any

COLUMNS = ("run_id", "metric", "step", "epoch", "value", "timestamp")


def rows(run: Any, keys: Sequence[str] | None = None) -> Iterator[tuple]:
    available = run.metric_keys()
    wanted = list(keys) if keys else available
    missing = [k for k in wanted if k not in available]
    if missing:
        raise KeyError(f"run {run.id} has no metric {missing[0]!r}; it has: {', '.join(available) or 'none'}")
    for key in wanted:
        for p in run.metrics(key):
            yield run.id, key, p.step, p.epoch, p.value, p.timestamp


def _json_number(value: float) -> Any:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def export_run(run: Any, fmt: str, output: str | None, keys: Sequence[str] | None = None) -> str | None:
    """Write the metrics of ``run`` to ``output`` (stdout when None, except Parquet); the file written."""
    if fmt == "parquet":
        if not output:
            raise ValueError("parquet is binary: give -o FILE.parquet")
        _write_parquet(list(rows(run, keys)), output)
        return output
    handle = open(output, "w", encoding="utf-8", newline="") if output else io.TextIOWrapper(
        sys.stdout.buffer, encoding="utf-8", newline="", write_through=True)
    try:
        if fmt == "csv":
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            for run_id, key, step, epoch, value, timestamp in rows(run, keys):
                writer.writerow((run_id, key, step, "" if epoch is None else epoch, repr(value), repr(timestamp)))
        elif fmt == "json":
            metrics: dict[str, list[dict[str, Any]]] = {}
            for _run_id, key, step, epoch, value, timestamp in rows(run, keys):
                metrics.setdefault(key, []).append({"step": step, "epoch": epoch, "value": _json_number(value),
                                                    "timestamp": timestamp})
            document = {"run": {"id": run.id, "name": run.name, "experiment": run.experiment, "status": run.status,
                                "params": run.params, "tags": run.tags}, "metrics": metrics}
            json.dump(document, handle, ensure_ascii=False, indent=1)
            handle.write("\n")
        else:
            raise ValueError(f"unknown format {fmt!r}: csv, json or parquet")
    finally:
        if output:
            handle.close()
        else:
            handle.detach()
    return output


def _write_parquet(table_rows: list[tuple], output: str) -> None:
    columns = {name: [row[i] for row in table_rows] for i, name in enumerate(COLUMNS)}
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        pa = None
    if pa is not None:
        schema = pa.schema([("run_id", pa.string()), ("metric", pa.string()), ("step", pa.int64()), ("epoch", pa.int64()),
                            ("value", pa.float64()), ("timestamp", pa.float64())])
        pq.write_table(pa.table(columns, schema=schema), output)
        return
    try:
        import pandas as pd

        pd.DataFrame(columns).astype({"epoch": "Int64"}).to_parquet(output)
    except ImportError as exc:
        raise ImportError("parquet export needs pyarrow: pip install 'modelbox-autolog[export]'") from exc
