"""Entities as JSON documents. JSON has no NaN or infinity, so non-finite floats travel as the
strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (the UI turns them back into numbers and
marks them on charts)."""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import quote

from ..entities import Artifact, Event, Experiment, Input, MetricSummary, ModelInfo, SeriesSample


def finite(value: Any) -> Any:
    """A JSON-safe copy: non-finite floats as strings, tuples as lists, everything else as is."""
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def dumps(document: Any) -> bytes:
    return json.dumps(finite(document), ensure_ascii=False, separators=(",", ":"), default=repr).encode()


def experiment(e: Experiment) -> dict[str, Any]:
    return {"id": e.id, "name": e.name, "created_at": e.created_at, "archived_at": e.archived_at}


def latest_run(r: Any) -> dict[str, Any]:
    """The few fields of an experiment's latest run that its summary shows."""
    return {"id": r.id, "name": r.name, "status": r.status, "start_time": r.start_time, "end_time": r.end_time}


def run(r: Any, *, summaries: dict[str, MetricSummary] | None = None, params: list[str] | None = None,
        children: int | None = None, env: bool = False) -> dict[str, Any]:
    """A RunView (or RunInfo) as JSON; ``params`` picks keys (None: all)."""
    end = r.end_time
    doc = {
        "id": r.id, "name": r.name, "status": r.status, "progress": r.progress, "experiment": r.experiment,
        "experiment_id": r.experiment_id, "parent_run_id": r.parent_run_id, "start_time": r.start_time, "end_time": end,
        "duration_s": None if end is None else end - r.start_time, "tags": r.tags,
        "note": getattr(r, "note", None), "archived_at": getattr(r, "archived_at", None),
        "params": r.params if params is None else {k: r.params[k] for k in params if k in r.params},
    }
    failure = getattr(r, "failure", None)
    if failure is not None:
        doc["failure"] = failure if isinstance(failure, (dict, str)) else getattr(failure, "_asdict", lambda: repr(failure))()
    if summaries is not None:
        doc["metrics"] = {k: summary(m) for k, m in summaries.items()}
    if children is not None:
        doc["children"] = children
    if env:
        doc["env"] = r.env
    return doc


def summary(m: MetricSummary) -> dict[str, Any]:
    return {"last": m.last, "step": m.step, "timestamp": m.timestamp, "min": m.min, "max": m.max, "count": m.count}


def sample(s: SeriesSample) -> dict[str, Any]:
    return {"key": s.key, "total": s.total, "downsampled": s.downsampled, "steps": s.steps, "values": s.values,
            "timestamps": s.timestamps, "epochs": s.epochs}


def event(e: Event) -> dict[str, Any]:
    return {"name": e.name, "timestamp": e.timestamp, "duration_s": e.duration_s, "attrs": e.attrs}


def artifact(a: Artifact, run_id: str) -> dict[str, Any]:
    return {"id": a.id, "name": a.name, "bytes": a.bytes, "sha256": a.sha256, "kind": a.kind,
            "content_url": f"/api/v1/runs/{run_id}/artifacts/{a.id}/content"}


def input_(i: Input) -> dict[str, Any]:
    return {"kind": i.kind, "ref": i.ref, "timestamp": i.timestamp, "attrs": i.attrs}


def model(m: ModelInfo) -> dict[str, Any]:
    return {
        "id": m.id, "name": m.name, "version": m.version, "framework": m.framework, "run_id": m.run_id,
        "experiment_id": m.experiment_id, "metadata": m.metadata, "labels": m.labels, "datasets": m.datasets,
        "status": m.status, "created_at": m.created_at, "url": m.url, "aliases": m.aliases, "source_uri": m.source_uri,
        "files": [{"name": f.name, "bytes": f.bytes, "sha256": f.sha256,
                   "download_url": f"/api/v1/models/{m.id}/files/{quote(f.name, safe='/')}"} for f in m.files],
    }
