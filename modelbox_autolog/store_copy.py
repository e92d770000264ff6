"""Copy a whole store into another (``modelbox sync SRC --to DST``), idempotently.

Reads everything through the read side (``Store``) of any URI and writes it as ordinary
batches to the write side (``Backend``) of any other, so SQLite, PostgreSQL + S3 and a
``modelbox server`` all work in either direction. Running it again copies only what is new:
records carry stable ids (the target skips ids it has), metric series send only the points
past those the target already holds, batch ids are derived from their content, and a run's
final status is written last, so an interrupted copy resumes cleanly.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from ._records import Artifact as ArtifactRecord
from ._records import Batch, ModelFile, ModelRecord, Param, RunStart, RunUpdate
from ._records import Event as EventRecord
from ._records import Input as InputRecord
from ._values import to_param_text
from .backends.base import Backend, NotFound, Store
from .backends.files import write_stream

METRIC_BATCH = 50_000  # points per batch
WRITER = "modelbox-sync"


def stable_id(*parts: object) -> str:
    """A 32-hex id derived from its parts: the same record gets the same id on every copy."""
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:32]


@dataclass
class CopyReport:
    runs: int = 0
    points: int = 0
    files: int = 0
    bytes: int = 0
    models: int = 0
    batches: int = 0


class StoreCopier:
    """One copy from ``source`` to ``target``; ``on_progress(report, total_runs, what)`` after each step."""

    def __init__(self, source: Store, target: Backend, on_progress: Callable[[CopyReport, int, str], None] | None = None) -> None:
        self.source = source
        self.target = target
        self.target_store = _readable(target)
        self.report = CopyReport()
        self.on_progress = on_progress or (lambda *_: None)
        self._scratch = tempfile.mkdtemp(prefix="modelbox-sync-")

    def run(self) -> CopyReport:
        try:
            runs = sorted(self.source.runs(archived=None), key=lambda r: (r.parent_run_id is not None, r.start_time))
            for info in runs:
                self._copy_run(info, len(runs))
            copied_runs = {r.id for r in runs}
            models = self.source.models()
            for model in models:
                if model.run_id is None or model.run_id in copied_runs:
                    self._copy_model(model)
            for info in runs:
                self._copy_lifecycle(info)
            for model in models:
                self._copy_aliases(model)
            self.on_progress(self.report, len(runs), "done")
            return self.report
        finally:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def _send(self, records: list, *identity: object) -> None:
        if records:
            self.target.write(Batch(stable_id("batch", *identity), WRITER, records))
            self.report.batches += 1
        for entry in os.listdir(self._scratch):  # fetched files are stored now: keep disk use to one batch
            shutil.rmtree(os.path.join(self._scratch, entry), ignore_errors=True)

    def _fetch(self, location: str, name: str) -> str:
        """Stream one stored file into the scratch folder; its path ("" when it cannot be read)."""
        path = os.path.join(self._scratch, stable_id(location), os.path.basename(name) or "file")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            size, _sha = write_stream(self.source.read_file(location), path)
        except (NotFound, FileNotFoundError):
            return os.path.join(self._scratch, "missing")
        self.report.files += 1
        self.report.bytes += size
        return path

    def _copy_run(self, info, total: int) -> None:
        run_id = info.id
        self.on_progress(self.report, total, f"run {run_id[:12]}")
        records: list = [RunStart(run_id, info.experiment, info.name, info.start_time, info.parent_run_id, dict(info.tags))]
        records += [Param(run_id, key, to_param_text(value)) for key, value in sorted(info.params.items())]
        for index, e in enumerate(self.source.events(run_id)):
            records.append(EventRecord(stable_id("event", run_id, index, e.name, e.timestamp), run_id, e.name, e.timestamp,
                                       e.duration_s, dict(e.attrs)))
        for index, i in enumerate(self.source.inputs(run_id)):
            records.append(InputRecord(stable_id("input", run_id, index, i.kind, i.ref), run_id, i.kind, i.ref, i.timestamp,
                                       dict(i.attrs)))
        known = {a.id for a in self._target_artifacts(run_id)}
        for a in self.source.artifacts(run_id):
            if a.id not in known:
                source = self._fetch(a.path_or_uri, a.name) if a.bytes is not None else ""
                records.append(ArtifactRecord(a.id, run_id, a.name, source, a.kind))
        self._send(records, "run", run_id, len(records), info.start_time, *sorted(known))
        for key in self.source.metric_keys(run_id):
            self._copy_series(run_id, key)
        update = RunUpdate(run_id, status=info.status, end_time=info.end_time, progress=info.progress,
                           tags=dict(info.tags) or None, env=dict(info.env) or None)
        self._send([update], "update", run_id, info.status, info.end_time, info.progress)
        self.report.runs += 1

    def _copy_lifecycle(self, info) -> None:
        """A run's note and archived state: no batch carries them, so they are set on the target
        store, and only where it differs (a second copy changes nothing)."""
        try:
            current = self.target_store.run(info.id)
        except NotFound:
            return
        if (info.note or None) != (current.note or None):
            self.target_store.update_run(info.id, note=info.note or "")
        if (info.archived_at is None) != (current.archived_at is None):
            self.target_store.archive_run(info.id, archived=info.archived_at is not None)

    def _copy_aliases(self, model) -> None:
        """Aliases point at the same model ids (whose version numbers may differ in the target)."""
        for alias in model.aliases:
            try:
                copied = self.target_store.model(model.id)
                if alias not in copied.aliases:
                    self.target_store.set_alias(copied.name, alias, copied.version)
            except NotFound:
                continue

    def _target_artifacts(self, run_id: str) -> list:
        try:
            return self.target_store.artifacts(run_id)
        except NotFound:
            return []

    def _copy_series(self, run_id: str, key: str) -> None:
        points = self.source.metrics(run_id, key)
        try:
            have = len(self.target_store.metrics(run_id, key))
        except NotFound:
            have = 0
        for start in range(have, len(points), METRIC_BATCH):
            chunk = points[start:start + METRIC_BATCH]
            self._send([(run_id, key, p.value, p.step, p.timestamp, p.epoch) for p in chunk],
                       "metrics", run_id, key, start, start + len(chunk))
            self.report.points += len(chunk)

    def _copy_model(self, model) -> None:
        try:
            self.target_store.model(model.id)
            return  # models are copied whole, once (a final one can never change)
        except NotFound:
            pass
        files = [ModelFile(f.name, self._fetch(f.path_or_uri, f.name) if f.bytes is not None else "") for f in model.files]
        record = ModelRecord(model.id, model.run_id, model.name, model.framework, files, model.created_at,
                             dict(model.metadata), dict(model.labels), list(model.datasets), model.status, model.source_uri)
        self._send([record], "model", model.id)
        self.report.models += 1


def _readable(target: Backend) -> Store:
    return target.store()


def copy_store(source: Store, target: Backend, on_progress: Callable[[CopyReport, int, str], None] | None = None) -> CopyReport:
    """Copy every experiment, run, metric, event, input, artifact and model of ``source`` into
    ``target``; safe to run again (only what is missing is sent)."""
    return StoreCopier(source, target, on_progress).run()
