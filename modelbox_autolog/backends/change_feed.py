"""What the change feed says about a batch, shared by the SQL stores' write paths.

One change row per batch and run for each kind of record, never one per point, so a watcher can
follow a run (which params, tags, progress and metric ranges arrived) at no cost to ingest:
- ``appended params RUN``  ``{"params": {key: value}, "truncated": [keys]}`` (values over 1 KB of
  JSON are cut to their first 256 characters of JSON text and named in ``truncated``);
- ``appended metrics RUN`` ``{"count": N, "series": {key: {"count", "first_step", "last_step"}}}``
  (the points and the range of steps this batch added to each series);
- ``updated run RUN``      ``{"status", "end_time", "failure", "progress", "name", "tags": {tags set}}``
  (only what the batch changed, several updates of one run folded into one event, the last
  value winning; a final status only when the store took it).
Each row is ``(kind, object_type, object_id, payload JSON, timestamp)``; the store adds the actor.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

PARAM_VALUE_LIMIT = 1024  # JSON characters shown whole
PARAM_PREVIEW = 256


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=repr)


def param_changes(params: Iterable[Any], now: float) -> list[tuple[str, str, str, str, float]]:
    """One ``appended params`` row per run of a batch's Param records (last value of a key wins)."""
    by_run: dict[str, dict[str, Any]] = {}
    truncated: dict[str, list[str]] = {}
    for p in params:
        text = p.value
        if len(text) > PARAM_VALUE_LIMIT:
            value: Any = text[:PARAM_PREVIEW] + "…"
            truncated.setdefault(p.run_id, []).append(p.key)
        else:
            try:
                value = json.loads(text)
            except ValueError:
                value = text
        by_run.setdefault(p.run_id, {})[p.key] = value
    rows = []
    for run_id, values in by_run.items():
        payload: dict[str, Any] = {"params": values}
        if run_id in truncated:
            payload["truncated"] = sorted(set(truncated[run_id]))
        rows.append(("appended", "params", run_id, dumps(payload), now))
    return rows


def metric_changes(ranges: Iterable[tuple[str, str, int, int, int]], now: float) -> list[tuple[str, str, str, str, float]]:
    """One ``appended metrics`` row per run from ``(run_id, key, count, first_step, last_step)``
    per series of a batch (the figures the store computed when it packed the series' chunk)."""
    by_run: dict[str, dict[str, dict[str, int]]] = {}
    totals: dict[str, int] = {}
    for run_id, key, count, first, last in ranges:
        series = by_run.setdefault(run_id, {})
        series[key] = {"count": count, "first_step": first, "last_step": last}
        totals[run_id] = totals.get(run_id, 0) + count
    return [("appended", "metrics", run_id, dumps({"count": totals[run_id], "series": series}), now)
            for run_id, series in by_run.items()]


class RunUpdates:
    """Folds what a batch's run updates changed into one ``updated run`` row per run."""

    def __init__(self) -> None:
        self._payloads: dict[str, dict[str, Any]] = {}

    def add(self, run_id: str, changed: dict[str, Any]) -> None:
        """Record fields a store applied to a run (``tags``: the tags set, merged)."""
        payload = self._payloads.setdefault(run_id, {})
        for name, value in changed.items():
            if name == "tags":
                payload.setdefault("tags", {}).update(value)
            else:
                payload[name] = value

    def rows(self, now: float) -> list[tuple[str, str, str, str, float]]:
        return [("updated", "run", run_id, dumps(payload), now) for run_id, payload in self._payloads.items() if payload]
