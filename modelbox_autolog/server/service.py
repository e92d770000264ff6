"""The ``modelbox.v1.ModelBox`` servicer: requests validated, then answered by the metadata store.

Library errors map to status codes in one place (``_status``), split by whose problem it is:
the request's (malformed input, unsafe names, a record the store refuses for good ->
INVALID_ARGUMENT: the client drops those records, with their reason, and sends the rest), or
the server's (a busy, full, read-only or damaged store -> UNAVAILABLE: the client keeps the
records in its journal and sends them later). Unknown ids -> NOT_FOUND, a final model ->
FAILED_PRECONDITION.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from .._names import InvalidName
from ..backends.base import BackendError, BackendUnavailable, NotFound, RecordRefused, Refused
from ..backends.files import os_error_is_per_record, safe_relpath
from ..entities import MetricPoint
from ..proto import convert
from ..proto.modelbox.v1 import records_pb2 as rpb
from ..proto.modelbox.v1 import service_pb2 as spb
from ..proto.modelbox.v1 import service_pb2_grpc as sgrpc
from ..search import SearchError
from .metrics import ServerMetrics
from .uploads import STAGED_REF, STAGING, StagedUpload, Staging, UploadRefused, upload_ids

log = logging.getLogger("modelbox_autolog.server")

METRIC_PAGE = 65536
MAX_CHANGES_PAGE = 10_000
WATCH_POLL_S = 1.0  # also picks up changes written to the store by other processes


# Download with this request header (seconds, up to a week) answers with a presigned URL in the
# response header ``URL_HEADER`` and no data, when the artifact store can presign (S3).
PRESIGN_HEADER = "x-modelbox-presign"
URL_HEADER = "x-modelbox-url"


def _expiry(text: str) -> int:
    try:
        return max(1, min(int(text), 7 * 24 * 3600))
    except ValueError:
        raise convert.InvalidRequest(f"{PRESIGN_HEADER} must be a number of seconds, not {text[:40]!r}") from None


def _status(exc: BaseException) -> tuple[grpc.StatusCode, str] | None:
    if isinstance(exc, SearchError):
        return grpc.StatusCode.INVALID_ARGUMENT, f"search: {exc.position}: {exc.message}"
    if isinstance(exc, (convert.InvalidRequest, InvalidName)):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, RecordRefused):
        return grpc.StatusCode.INVALID_ARGUMENT, f"the store refused records: {exc}"
    if isinstance(exc, UploadRefused):
        return getattr(grpc.StatusCode, exc.code), str(exc)
    if isinstance(exc, NotFound):
        return grpc.StatusCode.NOT_FOUND, str(exc)
    if isinstance(exc, Refused):  # a final or aliased model, a bad alias: the reason is the message
        return grpc.StatusCode.FAILED_PRECONDITION, str(exc)
    if isinstance(exc, BackendUnavailable):  # busy, full, read-only, damaged: the server's problem, for now
        return grpc.StatusCode.UNAVAILABLE, str(exc)
    if isinstance(exc, BackendError):  # the store refused this batch's data for good (a constraint, a type)
        return grpc.StatusCode.INVALID_ARGUMENT, f"the store refused the batch: {exc}"
    if isinstance(exc, OSError):
        if os_error_is_per_record(exc):
            return grpc.StatusCode.INVALID_ARGUMENT, f"a file of this batch cannot be stored: {exc}"
        return grpc.StatusCode.UNAVAILABLE, f"server storage error: {exc}"
    return None


def _answer(fn: Callable) -> Callable:
    """Turn library exceptions into status codes (unary and client-streaming methods)."""

    @functools.wraps(fn)
    def method(self: ModelBoxService, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return fn(self, request, context)
        except Exception as exc:
            status = _status(exc)
            if status is None:
                raise
            context.abort(*status)

    return method


def _answer_stream(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def method(self: ModelBoxService, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            yield from fn(self, request, context)
        except Exception as exc:
            status = _status(exc)
            if status is None:
                raise
            context.abort(*status)

    return method


class ModelBoxService(sgrpc.ModelBoxServicer):
    def __init__(self, store: Any, staging: Staging, metrics: ServerMetrics, max_watchers: int = 64) -> None:
        self.store = store  # a SQL store (SQLite or PostgreSQL) composing ``staging.artifacts``
        self.staging = staging
        self.artifacts = staging.artifacts
        self.metrics = metrics
        self.stopping = threading.Event()
        self._changed = threading.Condition()
        self._generation = 0
        self._watchers = threading.BoundedSemaphore(max_watchers)

    # ------------------------------------------------------------------ helpers
    def _relpath(self, location: str) -> str:
        """Stores answer with locations (a path on this machine, an s3:// URI); clients see keys."""
        return self.artifacts.key_of(location) or "" if location else ""

    def notify(self) -> None:
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    def stop(self) -> None:
        """End long-lived streams (Watch) so a graceful shutdown only waits for real work."""
        self.stopping.set()
        self.notify()

    # ------------------------------------------------------------------ writes
    @_answer
    def WriteBatch(self, request: rpb.WriteBatchRequest, context: grpc.ServicerContext) -> rpb.WriteBatchResponse:
        staged: dict[str, StagedUpload] = {}

        def resolve(upload_id: str) -> str:
            upload = self.staging.resolve(upload_id)
            if upload is None:
                return ""  # the client had no file: the record is kept, marked missing
            staged[upload.upload_id] = upload
            return STAGED_REF + upload.upload_id

        if self.store.applied(convert.check_id(request.batch_id, "batch id")):
            # Re-sent (a lost answer, a failover to another replica): its files were claimed by the
            # first delivery, so their upload ids no longer resolve; forget any second upload of them.
            batch = convert.decode_batch(request, lambda _upload_id: "")
            self.staging.forget(upload_ids(request))
            self.metrics.batches.labels("duplicate").inc()
            return rpb.WriteBatchResponse(duplicate=True, records=len(batch.records))
        batch = convert.decode_batch(request, resolve)
        placed = self.staging.claim(batch.by_type(), staged)
        self.store.write(batch, placed=placed)
        self.staging.discard(staged)
        self.metrics.batches.labels("stored").inc()
        self.metrics.bytes_written.labels("batch").inc(request.ByteSize())
        counts: dict[str, int] = {}
        for record in batch.records:
            name = "Metric" if type(record) is tuple else type(record).__name__
            counts[name] = counts.get(name, 0) + 1
        for name, count in counts.items():
            self.metrics.records.labels(name).inc(count)
        self.notify()
        return rpb.WriteBatchResponse(duplicate=False, records=len(batch.records))

    @_answer
    def Upload(self, request_iterator: Iterator[rpb.UploadRequest], context: grpc.ServicerContext) -> rpb.UploadResponse:
        upload = self.staging.receive(request_iterator)
        self.metrics.bytes_written.labels("upload").inc(upload.bytes)
        return rpb.UploadResponse(upload_id=upload.upload_id, bytes=upload.bytes, sha256=upload.sha256)

    @_answer_stream
    def Download(self, request: spb.DownloadRequest, context: grpc.ServicerContext) -> Iterator[spb.DownloadChunk]:
        key = safe_relpath(convert.check_relpath(request.path, "path"))
        if key.startswith(STAGING) or self.artifacts.size(key) is None:
            raise NotFound(f"{request.path} is not a stored file")
        asked = dict(context.invocation_metadata() or ()).get(PRESIGN_HEADER)
        if asked:  # the client would rather fetch the bytes itself, straight from the bucket
            url = self.artifacts.presign(key, _expiry(asked))
            if url:
                context.send_initial_metadata(((URL_HEADER, url),))
                return
        for chunk in self.artifacts.get(key):
            yield spb.DownloadChunk(data=chunk)

    # ------------------------------------------------------------------ queries
    @_answer
    def ListExperiments(self, request: Any, context: grpc.ServicerContext) -> spb.ListExperimentsResponse:
        experiments = self.store.experiments(archived=convert.archived_of(request.archived))
        return spb.ListExperimentsResponse(experiments=[convert.experiment_message(e) for e in experiments])

    @_answer
    def GetExperiment(self, request: spb.ExperimentRequest, context: grpc.ServicerContext) -> spb.Experiment:
        return convert.experiment_message(self.store.experiment(convert.check_name(request.experiment, "experiment")))

    @_answer
    def ListRuns(self, request: spb.ListRunsRequest, context: grpc.ServicerContext) -> spb.ListRunsResponse:
        status = request.status if request.HasField("status") else None
        if status is not None and status not in convert.RUN_STATUSES:
            raise convert.InvalidRequest(f"status {status!r} is not one of {sorted(convert.RUN_STATUSES)}")
        runs = self.store.search_runs(
            experiment=request.experiment if request.HasField("experiment") else None, status=status,
            where=request.where if request.HasField("where") else None,
            order_by=request.order_by if request.HasField("order_by") else None,
            limit=request.limit or None, offset=request.offset, archived=convert.archived_of(request.archived))
        return spb.ListRunsResponse(runs=[convert.run_message(r) for r in runs])

    @_answer
    def CountRuns(self, request: spb.ListRunsRequest, context: grpc.ServicerContext) -> spb.CountRunsResponse:
        count = self.store.count_runs(experiment=request.experiment if request.HasField("experiment") else None,
                                      status=request.status if request.HasField("status") else None,
                                      where=request.where if request.HasField("where") else None,
                                      archived=convert.archived_of(request.archived))
        return spb.CountRunsResponse(count=count)

    @_answer
    def GetMetricSummaries(self, request: spb.MetricSummariesRequest, context: grpc.ServicerContext) -> spb.MetricSummariesResponse:
        run_ids = [convert.check_id(r, "run id") for r in request.run_ids]
        keys = None if request.all_keys else [convert.check_name(k, "metric key") for k in request.keys]
        found = self.store.metric_summaries(run_ids, keys)
        return spb.MetricSummariesResponse(summaries=[
            spb.MetricSummary(run_id=run_id, key=m.key, last=m.last, step=m.step, timestamp=m.timestamp, min=m.min, max=m.max,
                              count=m.count)
            for run_id, per_key in found.items() for m in per_key.values()
        ])

    @_answer
    def SearchKeys(self, request: spb.SearchKeysRequest, context: grpc.ServicerContext) -> spb.SearchKeysResponse:
        keys = self.store.search_keys(request.experiment if request.HasField("experiment") else None)
        return spb.SearchKeysResponse(params=keys["params"], metrics=keys["metrics"], tags=keys["tags"])

    @_answer
    def GetRun(self, request: spb.GetRunRequest, context: grpc.ServicerContext) -> spb.RunInfo:
        return convert.run_message(self.store.run(convert.check_id(request.run_id, "run id")))

    @_answer
    def ListMetricKeys(self, request: spb.RunRequest, context: grpc.ServicerContext) -> spb.ListMetricKeysResponse:
        return spb.ListMetricKeysResponse(keys=self.store.metric_keys(convert.check_id(request.run_id, "run id")))

    @_answer_stream
    def GetMetrics(self, request: spb.GetMetricsRequest, context: grpc.ServicerContext) -> Iterator[spb.MetricPage]:
        run_id, key = convert.check_id(request.run_id, "run id"), convert.check_name(request.key, "metric key")
        if request.max_points:
            sample = self.store.metric_sample(run_id, key, request.max_points)
            page = next(iter(convert.metric_pages(
                list(map(MetricPoint, sample.steps, sample.values, sample.timestamps, sample.epochs)), METRIC_PAGE)))
            page.total = sample.total
            yield page
            return
        points = self.store.metrics(run_id, key)
        yield from convert.metric_pages(points, METRIC_PAGE)

    @_answer
    def ListEvents(self, request: spb.ListEventsRequest, context: grpc.ServicerContext) -> spb.ListEventsResponse:
        events = self.store.events(convert.check_id(request.run_id, "run id"), request.name if request.HasField("name") else None)
        return spb.ListEventsResponse(events=[
            spb.EventInfo(name=e.name, timestamp=e.timestamp, duration_s=e.duration_s, attrs_json=convert.dumps(e.attrs))
            for e in events
        ])

    @_answer
    def ListArtifacts(self, request: spb.RunRequest, context: grpc.ServicerContext) -> spb.ListArtifactsResponse:
        artifacts = self.store.artifacts(convert.check_id(request.run_id, "run id"))
        return spb.ListArtifactsResponse(artifacts=[
            spb.ArtifactInfo(id=a.id, name=a.name, path=self._relpath(a.path_or_uri), bytes=a.bytes, sha256=a.sha256, kind=a.kind)
            for a in artifacts
        ])

    @_answer
    def ListInputs(self, request: spb.RunRequest, context: grpc.ServicerContext) -> spb.ListInputsResponse:
        inputs = self.store.inputs(convert.check_id(request.run_id, "run id"))
        return spb.ListInputsResponse(inputs=[
            spb.InputInfo(kind=i.kind, ref=i.ref, timestamp=i.timestamp, attrs_json=convert.dumps(i.attrs)) for i in inputs
        ])

    @_answer
    def ListModels(self, request: spb.ListModelsRequest, context: grpc.ServicerContext) -> spb.ListModelsResponse:
        labels: dict[str, str | None] = {**dict(request.labels), **{k: None for k in request.label_keys}}
        models = self.store.models(
            name=request.name if request.HasField("name") else None, labels=labels or None,
            run_id=convert.check_id(request.run_id, "run id") if request.HasField("run_id") else None,
        )
        return spb.ListModelsResponse(models=[convert.model_message(m, self._relpath) for m in models])

    @_answer
    def GetModel(self, request: spb.GetModelRequest, context: grpc.ServicerContext) -> spb.ModelInfo:
        return convert.model_message(self.store.model(convert.check_model_ref(request.model_id)), self._relpath)

    @_answer
    def UpdateModel(self, request: spb.UpdateModelRequest, context: grpc.ServicerContext) -> spb.ModelInfo:
        metadata = convert.loads_object(request.metadata_json, "metadata")
        labels: dict[str, str | None] = {k: convert.check_name(v, f"label {k!r}", empty=True) for k, v in request.labels.items()}
        labels.update({convert.check_name(k, "label"): None for k in request.remove_labels})
        info = self.store.update_model(convert.check_model_ref(request.model_id), metadata=metadata, labels=labels)
        self.notify()
        return convert.model_message(info, self._relpath)

    @_answer
    def FinalizeModel(self, request: spb.GetModelRequest, context: grpc.ServicerContext) -> spb.ModelInfo:
        info = self.store.finalize_model(convert.check_model_ref(request.model_id))
        self.notify()
        return convert.model_message(info, self._relpath)

    # ------------------------------------------------------------------ registry and lifecycle
    def _changed_after(self, result: Any) -> Any:
        self.notify()
        return result

    @_answer
    def SetAlias(self, request: spb.SetAliasRequest, context: grpc.ServicerContext) -> spb.ModelInfo:
        info = self.store.set_alias(convert.check_name(request.name, "model name"), convert.check_name(request.alias, "alias"),
                                    convert.check_name(request.version, "version"))
        return self._changed_after(convert.model_message(info, self._relpath))

    @_answer
    def DeleteAlias(self, request: spb.DeleteAliasRequest, context: grpc.ServicerContext) -> spb.DeleteResponse:
        self.store.delete_alias(convert.check_name(request.name, "model name"), convert.check_name(request.alias, "alias"))
        return self._changed_after(spb.DeleteResponse())

    @_answer
    def DeleteModel(self, request: spb.GetModelRequest, context: grpc.ServicerContext) -> spb.DeleteResponse:
        return self._changed_after(convert.delete_message(self.store.delete_model(convert.check_model_ref(request.model_id))))

    @_answer
    def UpdateRun(self, request: spb.UpdateRunRequest, context: grpc.ServicerContext) -> spb.RunInfo:
        tags: dict[str, str | None] = {convert.check_name(k, "tag"): convert.check_name(v, f"tag {k!r}", empty=True)
                                       for k, v in request.tags.items()}
        tags.update({convert.check_name(k, "tag"): None for k in request.remove_tags})
        info = self.store.update_run(
            convert.check_id(request.run_id, "run id"),
            name=convert.check_name(request.name, "run name", empty=True) if request.HasField("name") else None,
            tags=tags or None,
            note=convert.check_name(request.note, "note", empty=True) if request.HasField("note") else None)
        return self._changed_after(convert.run_message(info))

    @_answer
    def ArchiveRun(self, request: spb.ArchiveRunRequest, context: grpc.ServicerContext) -> spb.RunInfo:
        info = self.store.archive_run(convert.check_id(request.run_id, "run id"), archived=not request.restore)
        return self._changed_after(convert.run_message(info))

    @_answer
    def ArchiveExperiment(self, request: spb.ArchiveExperimentRequest, context: grpc.ServicerContext) -> spb.Experiment:
        info = self.store.archive_experiment(convert.check_name(request.experiment, "experiment"), archived=not request.restore)
        return self._changed_after(convert.experiment_message(info))

    @_answer
    def DeleteRun(self, request: spb.RunRequest, context: grpc.ServicerContext) -> spb.DeleteResponse:
        return self._changed_after(convert.delete_message(self.store.delete_run(convert.check_id(request.run_id, "run id"))))

    @_answer
    def DeleteExperiment(self, request: spb.ExperimentRequest, context: grpc.ServicerContext) -> spb.DeleteResponse:
        report = self.store.delete_experiment(convert.check_name(request.experiment, "experiment"))
        return self._changed_after(convert.delete_message(report))

    # ------------------------------------------------------------------ changes
    @_answer
    def ListChanges(self, request: spb.ListChangesRequest, context: grpc.ServicerContext) -> spb.ListChangesResponse:
        limit = min(request.limit, MAX_CHANGES_PAGE)
        changes = self.store.changes(request.since, limit) if limit else []
        return spb.ListChangesResponse(changes=[convert.change_message(c) for c in changes], last_seq=self.store.last_change_seq())

    @_answer_stream
    def Watch(self, request: spb.WatchRequest, context: grpc.ServicerContext) -> Iterator[spb.ChangeEvent]:
        if not self._watchers.acquire(blocking=False):
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many watchers on this server; try again later")
        try:
            seq = request.since if request.HasField("since") else self.store.last_change_seq()
            while context.is_active() and not self.stopping.is_set():
                generation = self._generation
                changes = self.store.changes(seq, 1000)
                for change in changes:
                    yield convert.change_message(change)
                    seq = change.seq
                if not changes:
                    with self._changed:
                        if generation == self._generation and not self.stopping.is_set():
                            self._changed.wait(WATCH_POLL_S)
        finally:
            self._watchers.release()

