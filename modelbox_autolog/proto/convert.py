"""Conversions between the library's records/entities and ``modelbox.v1`` messages.

Shared by the client transport (``backends/grpc.py``) and the service (``server/``) so both
sides agree on one encoding. Decoding a request validates it: anything malformed raises
``InvalidRequest`` (answered as INVALID_ARGUMENT), never a half-built batch.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .. import _names
from .._names import MAX_ID_CHARS, MAX_NAME_CHARS, MAX_TEXT_CHARS, UnsafeName, safe_relpath  # noqa: F401 - re-exported
from .._records import (
    Artifact,
    Batch,
    Event,
    Input,
    Metric,
    ModelFile,
    ModelRecord,
    Param,
    RunStart,
    RunUpdate,
)
from ..entities import Artifact as ArtifactInfo
from ..entities import (
    ChangeEvent,
    DeleteReport,
    Experiment,
    Failure,
    MetricPoint,
    ModelFileInfo,
    ModelInfo,
    RunInfo,
)
from ..entities import Event as EventInfo
from ..entities import Input as InputInfo
from .modelbox.v1 import records_pb2 as rpb
from .modelbox.v1 import service_pb2 as spb

RUN_STATUSES = frozenset({"running", "finished", "failed", "killed"})
MODEL_STATUSES = frozenset({"draft", "final"})
UPLOAD_ID = re.compile(r"[0-9a-f]{32}")


class InvalidRequest(ValueError):
    """A request the server refuses as malformed (INVALID_ARGUMENT)."""


# ---------------------------------------------------------------------- shared helpers
def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=repr, separators=(",", ":"))


def loads_object(text: str, what: str) -> dict[str, Any]:
    """Parse a JSON-object field ("" = {}); InvalidRequest when it is not one."""
    if not text:
        return {}
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidRequest(f"{what} is larger than {MAX_TEXT_CHARS} characters")
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidRequest(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidRequest(f"{what} must be a JSON object")
    return value


def check_id(value: str, what: str) -> str:
    problem = _names.id_problem(value)
    if problem is not None:
        raise InvalidRequest(f"{what} {value[:80]!r} {problem}")
    return value


MAX_REF_CHARS = 1024


def check_model_ref(value: str, what: str = "model id") -> str:
    """A model reference: an id (or prefix), NAME@VERSION|latest|ALIAS, models:/NAME/VERSION, a model URL."""
    if not value or len(value) > MAX_REF_CHARS or any(ord(c) < 32 for c in value):
        raise InvalidRequest(f"{what} {value[:80]!r} is empty, longer than {MAX_REF_CHARS} characters or has control characters")
    return value


def check_name(value: str, what: str, *, empty: bool = False) -> str:
    """The same rule as the run API and every store (``_names``); ``empty`` allows ""."""
    if empty and value == "":
        return value
    problem = _names.name_problem(value)
    if problem is not None:
        raise InvalidRequest(f"{what} {value[:80]!r} {problem}")
    return value


def check_relpath(name: str, what: str) -> str:
    try:
        safe_relpath(name)
    except UnsafeName as exc:
        raise InvalidRequest(f"{what}: {exc}") from exc
    return check_name(name, what)


def _opt(message: Any, field: str) -> Any:
    return getattr(message, field) if message.HasField(field) else None


def _tags(mapping: Any, what: str) -> dict[str, str]:
    for key, value in mapping.items():
        check_name(key, f"{what} key")
        check_name(value, f"{what} {key!r}", empty=True)
    return dict(mapping)


# ---------------------------------------------------------------------- write side: client
def encode_metrics(metrics: Sequence[tuple], out: rpb.MetricColumns) -> None:
    """Columns, with run ids and keys as dictionaries: a few bytes per point. Points are
    ``Metric`` tuples or plain tuples in the same field order, read by position."""
    runs: dict[str, int] = {}
    keys: dict[str, int] = {}
    out.run_index.extend([runs.setdefault(m[0], len(runs)) for m in metrics])
    out.key_index.extend([keys.setdefault(m[1], len(keys)) for m in metrics])
    out.run_ids.extend(runs)
    out.keys.extend(keys)
    out.values.extend([m[2] for m in metrics])
    out.steps.extend([m[3] for m in metrics])
    out.timestamps.extend([m[4] for m in metrics])
    epochs = [m[5] for m in metrics]
    if any(e is not None for e in epochs):
        out.no_epoch.extend([i for i, e in enumerate(epochs) if e is None])
        out.epochs.extend([0 if e is None else e for e in epochs])


def encode_batch(batch: Batch, upload_ids: dict[str, str]) -> rpb.WriteBatchRequest:
    """``upload_ids`` maps a file's source path to its upload id ("" when it was missing)."""
    req = rpb.WriteBatchRequest(batch_id=batch.id, writer=batch.writer, created_at=batch.created_at)
    groups = batch.by_type()
    for r in groups.get(RunStart, ()):
        req.run_starts.add(run_id=r.run_id, experiment=r.experiment, name=r.name, start_time=r.start_time,
                           parent_run_id=r.parent_run_id, tags=r.tags or {}, owner_json=dumps(r.owner) if r.owner else "")
    req.params.extend([rpb.Param(run_id=p.run_id, key=p.key, value_json=p.value) for p in groups.get(Param, ())])
    metrics = groups.get(Metric)
    if metrics:
        encode_metrics(metrics, req.metrics)
    for e in groups.get(Event, ()):
        req.events.add(id=e.id, run_id=e.run_id, name=e.name, timestamp=e.timestamp, duration_s=e.duration_s,
                       attrs_json=dumps(e.attrs) if e.attrs else "")
    for i in groups.get(Input, ()):
        req.inputs.add(id=i.id, run_id=i.run_id, kind=i.kind, ref=i.ref, timestamp=i.timestamp,
                       attrs_json=dumps(i.attrs) if i.attrs else "")
    for a in groups.get(Artifact, ()):
        req.artifacts.add(id=a.id, run_id=a.run_id, kind=a.kind,
                          file=rpb.FileRef(name=a.name, upload_id=upload_ids[a.source_path]))
    for m in groups.get(ModelRecord, ()):
        req.models.add(
            id=m.id, run_id=m.run_id, name=m.name, framework=m.framework, created_at=m.created_at,
            files=[rpb.FileRef(name=f.name, upload_id=upload_ids[f.source_path]) for f in m.files],
            metadata_json=dumps(m.metadata) if m.metadata else "", labels=m.labels or {},
            datasets=list(m.datasets), status=m.status, source_uri=m.source_uri,
        )
    for u in groups.get(RunUpdate, ()):
        req.run_updates.add(run_id=u.run_id, status=u.status, end_time=u.end_time, progress=u.progress, name=u.name,
                            tags=u.tags or {}, env_json=dumps(u.env) if u.env else "",
                            failure_json=dumps(u.failure) if u.failure else "", heartbeat=u.heartbeat)
    return req


def file_records(batch: Batch) -> list[tuple[Any, list[tuple[str, list[int] | None]]]]:
    """Each record that names files, with its (source path, fingerprint) pairs, in order."""
    found: list[tuple[Any, list[tuple[str, list[int] | None]]]] = []
    for record in batch.records:
        if type(record) is Artifact:
            found.append((record, [(record.source_path, record.fingerprint)]))
        elif type(record) is ModelRecord:
            found.append((record, [(f.source_path, f.fingerprint) for f in record.files]))
    return found


# ---------------------------------------------------------------------- write side: server
def decode_metrics(cols: rpb.MetricColumns) -> list[tuple]:
    """Metric points as plain tuples in ``Metric`` field order (what the stores read)."""
    n = len(cols.values)
    if not n and not cols.run_ids:
        return []
    if not (len(cols.run_index) == len(cols.key_index) == len(cols.steps) == len(cols.timestamps) == n):
        raise InvalidRequest("metric columns have different lengths")
    run_ids = [check_id(r, "metric run id") for r in cols.run_ids]
    keys = [check_name(k, "metric key") for k in cols.keys]
    run_index, key_index = list(cols.run_index), list(cols.key_index)
    if n and (max(run_index) >= len(run_ids) or max(key_index) >= len(keys)):
        raise InvalidRequest("metric columns point outside their run/key dictionaries")
    if cols.epochs:
        if len(cols.epochs) != n:
            raise InvalidRequest("metric epochs column has the wrong length")
        epochs: list[int | None] = list(cols.epochs)
        for i in cols.no_epoch:
            if i >= n:
                raise InvalidRequest("metric no_epoch position out of range")
            epochs[i] = None
    else:
        epochs = [None] * n
    return list(zip([run_ids[i] for i in run_index], [keys[i] for i in key_index], cols.values, cols.steps,
                    cols.timestamps, epochs, strict=True))


def _finite(value: float, what: str) -> float:
    if not math.isfinite(value):
        raise InvalidRequest(f"{what} must be a finite number")
    return value


def decode_batch(req: rpb.WriteBatchRequest, resolve_upload: Callable[[str], str]) -> Batch:  # noqa: C901
    """Validate and rebuild a Batch; ``resolve_upload`` maps an upload id to a server-side path."""
    check_id(req.batch_id, "batch id")
    records: list[Any] = []
    for r in req.run_starts:
        records.append(RunStart(
            check_id(r.run_id, "run id"), check_name(r.experiment, "experiment"),
            check_name(r.name, "run name", empty=True) if r.HasField("name") else None,
            _finite(r.start_time, "start_time"),
            check_id(r.parent_run_id, "parent run id") if r.HasField("parent_run_id") else None,
            _tags(r.tags, "tag"), loads_object(r.owner_json, "run owner") or None,
        ))
    for p in req.params:
        if len(p.value_json) > MAX_TEXT_CHARS:
            raise InvalidRequest(f"param {p.key[:80]!r} is larger than {MAX_TEXT_CHARS} characters")
        records.append(Param(check_id(p.run_id, "param run id"), check_name(p.key, "param key"), p.value_json))
    records.extend(decode_metrics(req.metrics))
    for e in req.events:
        records.append(Event(check_id(e.id, "event id"), check_id(e.run_id, "event run id"), check_name(e.name, "event name"),
                             e.timestamp, _opt(e, "duration_s"), loads_object(e.attrs_json, "event attrs")))
    for i in req.inputs:
        records.append(Input(check_id(i.id, "input id"), check_id(i.run_id, "input run id"), check_name(i.kind, "input kind"),
                             check_name(i.ref, "input ref"), i.timestamp, loads_object(i.attrs_json, "input attrs")))
    for a in req.artifacts:
        name = check_relpath(a.file.name, "artifact name")
        records.append(Artifact(check_id(a.id, "artifact id"), check_id(a.run_id, "artifact run id"), name,
                                resolve_upload(a.file.upload_id), check_name(a.kind or "file", "artifact kind")))
    for m in req.models:
        if m.status not in MODEL_STATUSES:
            raise InvalidRequest(f"model status {m.status!r} is not one of {sorted(MODEL_STATUSES)}")
        files = [ModelFile(check_relpath(f.name, "model file name"), resolve_upload(f.upload_id)) for f in m.files]
        if len({f.name for f in files}) != len(files):
            raise InvalidRequest(f"model {m.id!r} names a file twice")
        records.append(ModelRecord(
            check_id(m.id, "model id"), check_id(m.run_id, "model run id") if m.HasField("run_id") else None,
            check_name(m.name, "model name"), check_name(m.framework, "model framework", empty=True), files, m.created_at,
            loads_object(m.metadata_json, "model metadata"), _tags(m.labels, "label"),
            [check_name(d, "dataset") for d in m.datasets], m.status,
            check_name(m.source_uri, "model source URI") if m.HasField("source_uri") else None,
        ))
    for u in req.run_updates:
        status = _opt(u, "status")
        if status is not None and status not in RUN_STATUSES:
            raise InvalidRequest(f"run status {status!r} is not one of {sorted(RUN_STATUSES)}")
        heartbeat = _opt(u, "heartbeat")
        records.append(RunUpdate(
            check_id(u.run_id, "run id"), status, _opt(u, "end_time"), _opt(u, "progress"),
            check_name(u.name, "run name", empty=True) if u.HasField("name") else None,
            _tags(u.tags, "tag") or None, loads_object(u.env_json, "run env") or None,
            loads_object(u.failure_json, "run failure") or None,
            _finite(heartbeat, "heartbeat") if heartbeat is not None else None,
        ))
    return Batch(req.batch_id, check_name(req.writer, "writer", empty=True), records, req.created_at)


# ---------------------------------------------------------------------- read side: server -> message
def run_message(info: RunInfo) -> spb.RunInfo:
    return spb.RunInfo(
        id=info.id, experiment_id=info.experiment_id, experiment=info.experiment, name=info.name, status=info.status,
        start_time=info.start_time, end_time=info.end_time, progress=info.progress, parent_run_id=info.parent_run_id,
        params_json={k: dumps(v) for k, v in info.params.items()}, tags=info.tags, env_json=dumps(info.env),
        failure_json=dumps(info.failure._asdict()) if info.failure else "",
        archived_at=info.archived_at, note=info.note,
    )


def experiment_message(e: Experiment) -> spb.Experiment:
    return spb.Experiment(id=e.id, name=e.name, created_at=e.created_at, archived_at=e.archived_at)


def archived_filter(archived: bool | None) -> int:
    """The ArchivedFilter of a listing's ``archived`` (False: hidden, True: only, None: also)."""
    return spb.ARCHIVED_ALSO if archived is None else spb.ARCHIVED_ONLY if archived else spb.ARCHIVED_HIDDEN


def archived_of(value: int) -> bool | None:
    return None if value == spb.ARCHIVED_ALSO else value == spb.ARCHIVED_ONLY


def model_message(info: ModelInfo, relpath: Callable[[str], str]) -> spb.ModelInfo:
    return spb.ModelInfo(
        id=info.id, name=info.name, version=info.version, framework=info.framework, run_id=info.run_id,
        experiment_id=info.experiment_id, metadata_json=dumps(info.metadata), labels=info.labels,
        datasets=info.datasets, status=info.status, created_at=info.created_at, aliases=info.aliases,
        source_uri=info.source_uri,
        files=[spb.ModelFileInfo(name=f.name, path=relpath(f.path_or_uri), bytes=f.bytes, sha256=f.sha256) for f in info.files],
    )


def metric_pages(points: Sequence[MetricPoint], page: int) -> Iterable[spb.MetricPage]:
    for start in range(0, max(len(points), 1), page):
        part = points[start:start + page]
        msg = spb.MetricPage(steps=[p.step for p in part], values=[p.value for p in part],
                             timestamps=[p.timestamp for p in part])
        if any(p.epoch is not None for p in part):
            msg.epochs.extend([0 if p.epoch is None else p.epoch for p in part])
            msg.no_epoch.extend([i for i, p in enumerate(part) if p.epoch is None])
        yield msg


def change_message(change: ChangeEvent) -> spb.ChangeEvent:
    return spb.ChangeEvent(seq=change.seq, kind=change.kind, object_type=change.object_type,
                           object_id=change.object_id, payload_json=dumps(change.payload), actor=change.actor)


# ---------------------------------------------------------------------- read side: message -> entities
def run_info(msg: spb.RunInfo) -> RunInfo:
    return RunInfo(
        id=msg.id, experiment_id=msg.experiment_id, experiment=msg.experiment, name=_opt(msg, "name"), status=msg.status,
        start_time=msg.start_time, end_time=_opt(msg, "end_time"), progress=_opt(msg, "progress"),
        parent_run_id=_opt(msg, "parent_run_id"), params={k: json.loads(v) for k, v in msg.params_json.items()},
        tags=dict(msg.tags), env=json.loads(msg.env_json) if msg.env_json else {},
        failure=Failure.from_dict(json.loads(msg.failure_json)) if msg.failure_json else None,
        archived_at=_opt(msg, "archived_at"), note=_opt(msg, "note"),
    )


def experiment(msg: spb.Experiment) -> Experiment:
    return Experiment(msg.id, msg.name, msg.created_at, _opt(msg, "archived_at"))


def metric_points(pages: Iterable[spb.MetricPage]) -> list[MetricPoint]:
    points: list[MetricPoint] = []
    for page in pages:
        n = len(page.steps)
        epochs: list[int | None] = list(page.epochs) if page.epochs else [None] * n
        for i in page.no_epoch:
            epochs[i] = None
        points.extend(map(MetricPoint, page.steps, page.values, page.timestamps, epochs))
    return points


def event_info(msg: spb.EventInfo) -> EventInfo:
    return EventInfo(msg.name, msg.timestamp, _opt(msg, "duration_s"), json.loads(msg.attrs_json) if msg.attrs_json else {})


def artifact_info(msg: spb.ArtifactInfo, location: Callable[[str], str]) -> ArtifactInfo:
    return ArtifactInfo(msg.id, msg.name, location(msg.path), _opt(msg, "bytes"), _opt(msg, "sha256"), msg.kind)


def input_info(msg: spb.InputInfo) -> InputInfo:
    return InputInfo(msg.kind, msg.ref, msg.timestamp, json.loads(msg.attrs_json) if msg.attrs_json else {})


def model_info(msg: spb.ModelInfo, location: Callable[[str], str], url: str) -> ModelInfo:
    files = [ModelFileInfo(f.name, location(f.path), _opt(f, "bytes"), _opt(f, "sha256")) for f in msg.files]
    return ModelInfo(
        id=msg.id, name=msg.name, version=msg.version, framework=msg.framework, run_id=_opt(msg, "run_id"),
        experiment_id=_opt(msg, "experiment_id"), files=files, metadata=json.loads(msg.metadata_json or "{}"),
        labels=dict(msg.labels), datasets=list(msg.datasets), status=msg.status, created_at=msg.created_at, url=url,
        aliases=list(msg.aliases), source_uri=_opt(msg, "source_uri"),
    )


def delete_message(report: DeleteReport) -> spb.DeleteResponse:
    return spb.DeleteResponse(**report._asdict())


def delete_report(msg: spb.DeleteResponse) -> DeleteReport:
    return DeleteReport(runs=msg.runs, models=msg.models, experiments=msg.experiments, files=msg.files, bytes=msg.bytes)


def change_event(msg: spb.ChangeEvent) -> ChangeEvent:
    return ChangeEvent(msg.seq, msg.kind, msg.object_type, msg.object_id, json.loads(msg.payload_json or "{}"), msg.actor)
