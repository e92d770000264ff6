"""``grpc://HOST:PORT`` (``grpcs://`` for TLS): records sent to a ``modelbox server``.

The write side uploads the files a batch names (client-streaming, sha256 checked by the
server), then sends the batch in one ``WriteBatch`` call, idempotent by batch id. Failures are
told apart by whose problem they are: the server's or the network's (UNAVAILABLE,
DEADLINE_EXCEEDED, CANCELLED by a stopping server, UNKNOWN/INTERNAL faults) are retried briefly
here and then raised as ``BackendUnavailable``, so the exporter keeps the batch in its journal
and sends it later; a refused token (UNAUTHENTICATED, PERMISSION_DENIED) too, as
``AuthRefused``; the request's (INVALID_ARGUMENT...) as ``BackendError``, so the exporter
drops only the records at fault. A file that changed or vanished since it was logged is
refused before anything is sent (``RecordRefused``).
The read side (``GrpcStore``) answers ``mbx.Client`` and the CLI through the same service.
The channel is lazy: opening a backend never waits for the server.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import grpc

from .._records import Batch, new_id
from ..entities import (
    Artifact,
    ChangeEvent,
    DeleteReport,
    Event,
    Experiment,
    Input,
    MetricPoint,
    MetricSummary,
    ModelInfo,
    RunInfo,
    SeriesSample,
)
from ..proto import convert
from ..proto.modelbox.v1 import records_pb2 as rpb
from ..proto.modelbox.v1 import service_pb2 as spb
from ..proto.modelbox.v1 import service_pb2_grpc as sgrpc
from .base import (
    AuthRefused,
    Backend,
    BackendError,
    BackendUnavailable,
    ImmutableModel,
    NotFound,
    RecordRefused,
    Refused,
    Store,
)
from .files import SourceChanged, check_unchanged, open_source, transfer_progress
from .uris import server_addresses

DEFAULT_PORT = 50051
UPLOAD_CHUNK = 256 << 10  # small messages flow within HTTP/2 windows: faster, less server memory
WRITE_TIMEOUT_S = 60.0
READ_TIMEOUT_S = 30.0
RETRIES = 2  # our own short retry; the exporter's jittered backoff and journal do the rest
# CANCELLED reaches a client whose call the server abandoned while shutting down: transient too.
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED})
# The server's own faults (a bug, a broken store it did not classify): the records are not at
# fault, so they wait in the journal instead of being dropped.
SERVER_FAULTS = frozenset({grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS,
                           grpc.StatusCode.ABORTED, grpc.StatusCode.UNIMPLEMENTED})
AUTH = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})
MAX_MESSAGE_BYTES = 256 << 20

_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # A restarted server is found again within a second, not after grpc's default 2-minute backoff.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.enable_retries", 0),
]


def parse_target(uri: str) -> tuple[str, bool]:
    """``grpc://host:port`` -> ("host:port", tls); several addresses -> "host1:p1,host2:p2"."""
    addresses, tls = server_addresses(uri, DEFAULT_PORT)
    return ",".join(_hostport(host, port) for host, port in addresses), tls


def _hostport(host: str, port: int) -> str:
    return (f"[{host}]" if ":" in host else host) + f":{port}"


def channel_target(uri: str) -> tuple[str, bool, list[tuple[str, Any]]]:
    """(gRPC target, tls, extra channel options) for a server URI.

    One address: gRPC's own DNS resolver. Several (replicas): a static ``ipv4:``/``ipv6:`` address
    list (names resolved once, here) balanced by gRPC's ``round_robin`` policy, which spreads
    calls over every replica and skips one that is down; our retry re-sends to the next one.
    """
    addresses, tls = server_addresses(uri, DEFAULT_PORT)
    if len(addresses) == 1:
        return _hostport(*addresses[0]), tls, []
    resolved: dict[str, list[str]] = {"ipv4": [], "ipv6": []}
    for host, port in addresses:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise BackendError(f"{uri!r}: cannot resolve {host}: {exc}") from exc
        for family, _type, _proto, _name, sockaddr in infos:
            family_name = "ipv6" if family == socket.AF_INET6 else "ipv4"
            entry = _hostport(sockaddr[0], port)
            if entry not in resolved[family_name]:
                resolved[family_name].append(entry)
    family = "ipv4" if resolved["ipv4"] else "ipv6"
    options: list[tuple[str, Any]] = [("grpc.lb_policy_name", "round_robin"),
                                      ("grpc.service_config", '{"loadBalancingConfig": [{"round_robin": {}}]}')]
    names = [host for host, _ in addresses if not _is_ip(host)]
    if names:  # certificates name the host, not its addresses
        options += [("grpc.default_authority", names[0]), ("grpc.ssl_target_name_override", names[0])]
    return f"{family}:" + ",".join(resolved[family]), tls, options


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


# What a plaintext client sees when the server speaks TLS: the handshake bytes close the socket.
_PLAINTEXT_TO_TLS = ("socket closed", "connection reset", "end of tcp stream", "ssl", "handshake", "http2 frame")


def _error(exc: grpc.RpcError, target: str, tls: bool = True) -> Exception:
    """The library's exception for a failed call."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    detail = (exc.details() if hasattr(exc, "details") else None) or str(code)
    if code in RETRYABLE:
        hint = ""
        if not tls and any(word in detail.lower() for word in _PLAINTEXT_TO_TLS):
            hint = f" (if the server was started with --tls-cert, connect with grpcs://{target})"
        return BackendUnavailable(f"modelbox server {target} unavailable: {detail}{hint}")
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFound(detail)
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return ImmutableModel(detail) if "is final and cannot be changed" in detail else Refused(detail)
    if code == grpc.StatusCode.PERMISSION_DENIED:  # the token is good; its role may not do this (the detail says why)
        return AuthRefused(f"modelbox server {target} refused the request (PERMISSION_DENIED): {detail}; use a token whose role allows it "
                           "(MODELBOX_TOKEN)")
    if code in AUTH:
        given = "no token was given" if not os.environ.get("MODELBOX_TOKEN") else "the token in MODELBOX_TOKEN was refused"
        return AuthRefused(f"modelbox server {target} refused the request ({given}: {detail}); set MODELBOX_TOKEN to a "
                           "token the server accepts (its --token, or one made with modelbox server token create)")
    return BackendError(f"modelbox server {target}: {code.name}: {detail}")


def _write_error(exc: grpc.RpcError, target: str, tls: bool = True) -> Exception:
    """As ``_error``, but for writes: a server fault keeps the batch (transient), never drops it."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    if code in SERVER_FAULTS:
        detail = (exc.details() if hasattr(exc, "details") else None) or str(code)
        return BackendUnavailable(f"modelbox server {target} failed: {code.name}: {detail}")
    return _error(exc, target, tls)


class Connection:
    """One channel, its stub and the call metadata; shared by a backend and its store."""

    def __init__(self, uri: str) -> None:
        self.target, _ = parse_target(uri)  # how messages name the server(s)
        channel_address, tls, extra = channel_target(uri)
        self.tls = tls
        options = _CHANNEL_OPTIONS + extra
        token = os.environ.get("MODELBOX_TOKEN")
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        if tls:
            ca_path = os.environ.get("MODELBOX_TLS_CA")
            try:
                ca = None
                if ca_path:
                    with open(ca_path, "rb") as handle:
                        ca = handle.read()
            except OSError as exc:
                raise BackendError(f"cannot read MODELBOX_TLS_CA={ca_path}: {exc.strerror}") from exc
            self.channel = grpc.secure_channel(channel_address, grpc.ssl_channel_credentials(root_certificates=ca), options)
        else:
            self.channel = grpc.insecure_channel(channel_address, options)
        self.stub = sgrpc.ModelBoxStub(self.channel)
        self._closed = False

    def call(self, method: str, request: Any, timeout: float = READ_TIMEOUT_S, retries: int = RETRIES) -> Any:
        """A unary call; transient failures retried briefly, then mapped to library errors."""
        for attempt in range(retries + 1):
            try:
                return getattr(self.stub, method)(request, timeout=timeout, metadata=self.metadata)
            except grpc.RpcError as exc:
                if exc.code() in RETRYABLE and attempt < retries:
                    _pause(attempt)
                    continue
                raise _error(exc, self.target, self.tls) from None
        raise AssertionError("unreachable")

    def stream(self, method: str, request: Any, timeout: float | None = READ_TIMEOUT_S) -> Iterator[Any]:
        try:
            yield from getattr(self.stub, method)(request, timeout=timeout, metadata=self.metadata)
        except grpc.RpcError as exc:
            raise _error(exc, self.target, self.tls) from None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.channel.close()


def _pause(attempt: int) -> None:
    time.sleep(0.1 * (2**attempt) * random.uniform(0.5, 1.5))


# ---------------------------------------------------------------------- write side
class GrpcBackend(Backend):
    """Write side of ``grpc://`` and ``grpcs://``."""

    scheme = "grpc"

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        self._conn = Connection(uri)
        self.target = self._conn.target

    def write(self, batch: Batch) -> bool:
        uploads: dict[str, str] = {}  # kept across attempts: a retry does not re-send files
        for attempt in range(RETRIES + 1):
            try:
                refusals = self._upload_files(batch, uploads)
                if refusals:
                    raise RecordRefused(refusals)
                request = convert.encode_batch(batch, uploads)
                response = self._conn.stub.WriteBatch(request, timeout=WRITE_TIMEOUT_S, metadata=self._conn.metadata)
                return not response.duplicate
            except grpc.RpcError as exc:
                retry = exc.code() in RETRYABLE or exc.code() == grpc.StatusCode.DATA_LOSS
                if retry and attempt < RETRIES:
                    _pause(attempt)
                    continue
                raise _write_error(exc, self.target, self._conn.tls) from None
        raise AssertionError("unreachable")

    def _upload_files(self, batch: Batch, uploads: dict[str, str]) -> list[tuple[Any, str, str]]:
        """Upload each file the batch names (once); the records whose file cannot be read as logged."""
        refusals: list[tuple[Any, str, str]] = []
        for record, files in convert.file_records(batch):
            for path, fingerprint in files:
                if path in uploads:
                    continue
                try:
                    uploads[path] = self._upload(path, fingerprint)
                except SourceChanged as exc:
                    refusals.append((record, "the file changed or was removed before it could be stored", str(exc.strerror or exc)))
                    break
        return refusals

    def _upload(self, path: str, fingerprint: list[int] | None = None) -> str:
        """Stream one file to the server's staging area; its upload id. SourceChanged when the
        file is gone, unreadable, or not what was logged."""
        handle = open_source(path, fingerprint)
        upload_id = new_id()
        with handle:
            size = os.fstat(handle.fileno()).st_size
            timeout = 120.0 + size / (5 << 20)  # generous: a slow disk or link, never a hung call
            advance = transfer_progress.get()  # read here: gRPC pulls the messages on another thread
            self._conn.stub.Upload(_upload_messages(handle, upload_id, size, advance), timeout=timeout,
                                   metadata=self._conn.metadata)
            check_unchanged(handle, path, fingerprint)
        return upload_id

    def close(self) -> None:
        self._conn.close()

    def store(self) -> GrpcStore:
        return GrpcStore(self.uri, self._conn)


def _upload_messages(handle: Any, upload_id: str, size: int,
                     advance: Callable[[int], None] | None = None) -> Iterator[rpb.UploadRequest]:
    """Header, then at most ``size`` bytes in chunks (a file growing meanwhile is cut), then the sha256."""
    yield rpb.UploadRequest(header=rpb.UploadHeader(upload_id=upload_id, size=size))
    digest = hashlib.sha256()
    left = size
    while left > 0:
        chunk = handle.read(min(UPLOAD_CHUNK, left))
        if not chunk:
            break
        digest.update(chunk)
        left -= len(chunk)
        if advance is not None:
            advance(len(chunk))
        yield rpb.UploadRequest(chunk=chunk)
    yield rpb.UploadRequest(sha256=digest.hexdigest())


# ---------------------------------------------------------------------- read side
class GrpcStore(Store):
    """Read side of a ``modelbox server``: the same answers as the store it serves."""

    def __init__(self, uri: str, conn: Connection | None = None) -> None:
        self.uri = uri.rstrip("/")
        self._conn = conn or Connection(uri)
        self._files_prefix = self.uri + "/artifacts/"

    def _location(self, relpath: str) -> str:
        return self._files_prefix + relpath if relpath else ""

    def _model(self, msg: spb.ModelInfo) -> ModelInfo:
        return convert.model_info(msg, self._location, f"{self.uri}#model={msg.id}")

    def experiments(self, archived: bool | None = False) -> list[Experiment]:
        request = spb.ListExperimentsRequest(archived=convert.archived_filter(archived))
        return [convert.experiment(e) for e in self._conn.call("ListExperiments", request).experiments]

    def experiment(self, name_or_id: str) -> Experiment:
        return convert.experiment(self._conn.call("GetExperiment", spb.ExperimentRequest(experiment=name_or_id)))

    def runs(self, experiment: str | None = None, status: str | None = None, limit: int | None = None,
             archived: bool | None = False) -> list[RunInfo]:
        request = spb.ListRunsRequest(experiment=experiment, status=status, limit=int(limit or 0),
                                      archived=convert.archived_filter(archived))
        return [convert.run_info(r) for r in self._conn.call("ListRuns", request).runs]

    def run(self, run_id: str) -> RunInfo:
        return convert.run_info(self._conn.call("GetRun", spb.GetRunRequest(run_id=run_id)))

    def _searching(self, method: str, request: Any, where: str | None, order_by: str | None) -> Any:
        """A call that may carry a search expression: the server's position comes back as SearchError."""
        try:
            return self._conn.call(method, request)
        except BackendError as exc:
            found = re.search(r"INVALID_ARGUMENT: search: (\d+): (.*)$", str(exc), re.S)
            if not found:
                raise
            from ..search import SearchError, parse_order_by, parse_where

            try:  # the same parser here gives the same message; fall back to the server's words
                parse_where(where)
                parse_order_by(order_by)
            except SearchError as local:
                raise local from None
            raise SearchError(found.group(2), where or order_by or "", int(found.group(1))) from None

    def search_runs(self, experiment: str | None = None, status: str | None = None, where: str | None = None,
                    order_by: str | None = None, limit: int | None = None, offset: int = 0,
                    archived: bool | None = False) -> list[RunInfo]:
        request = spb.ListRunsRequest(experiment=experiment, status=status, limit=int(limit or 0), where=where or None,
                                      order_by=order_by or None, offset=int(offset or 0),
                                      archived=convert.archived_filter(archived))
        return [convert.run_info(r) for r in self._searching("ListRuns", request, where, order_by).runs]

    def count_runs(self, experiment: str | None = None, status: str | None = None, where: str | None = None,
                   archived: bool | None = False) -> int:
        request = spb.ListRunsRequest(experiment=experiment, status=status, where=where or None,
                                      archived=convert.archived_filter(archived))
        return self._searching("CountRuns", request, where, None).count

    def metric_summaries(self, run_ids: list[str], keys: list[str] | None = None) -> dict[str, dict[str, MetricSummary]]:
        request = spb.MetricSummariesRequest(run_ids=run_ids, keys=keys or [], all_keys=keys is None)
        out: dict[str, dict[str, MetricSummary]] = {run_id: {} for run_id in run_ids}
        for m in self._conn.call("GetMetricSummaries", request).summaries:
            out.setdefault(m.run_id, {})[m.key] = MetricSummary(
                m.key, m.last if m.HasField("last") else None, m.step if m.HasField("step") else None,
                m.timestamp if m.HasField("timestamp") else None, m.min if m.HasField("min") else None,
                m.max if m.HasField("max") else None, m.count)
        return out

    def search_keys(self, experiment: str | None = None, sample: int = 1000) -> dict[str, list[str]]:
        reply = self._conn.call("SearchKeys", spb.SearchKeysRequest(experiment=experiment))
        return {"params": list(reply.params), "metrics": list(reply.metrics), "tags": list(reply.tags)}

    def metric_sample(self, run_id: str, key: str, max_points: int = 2000) -> SeriesSample:
        pages = list(self._conn.stream("GetMetrics", spb.GetMetricsRequest(run_id=run_id, key=key, max_points=max_points)))
        points = convert.metric_points(pages)
        total = pages[0].total if pages else 0
        return SeriesSample(key, max(total, len(points)), [p.step for p in points], [p.value for p in points],
                            [p.timestamp for p in points], [p.epoch for p in points])

    def metric_keys(self, run_id: str) -> list[str]:
        return list(self._conn.call("ListMetricKeys", spb.RunRequest(run_id=run_id)).keys)

    def metrics(self, run_id: str, key: str) -> list[MetricPoint]:
        return convert.metric_points(self._conn.stream("GetMetrics", spb.GetMetricsRequest(run_id=run_id, key=key)))

    def events(self, run_id: str, name: str | None = None) -> list[Event]:
        response = self._conn.call("ListEvents", spb.ListEventsRequest(run_id=run_id, name=name))
        return [convert.event_info(e) for e in response.events]

    def artifacts(self, run_id: str) -> list[Artifact]:
        response = self._conn.call("ListArtifacts", spb.RunRequest(run_id=run_id))
        return [convert.artifact_info(a, self._location) for a in response.artifacts]

    def inputs(self, run_id: str) -> list[Input]:
        return [convert.input_info(i) for i in self._conn.call("ListInputs", spb.RunRequest(run_id=run_id)).inputs]

    def models(self, name: str | None = None, labels: dict[str, str | None] | None = None,
               run_id: str | None = None) -> list[ModelInfo]:
        labels = labels or {}
        request = spb.ListModelsRequest(name=name, labels={k: v for k, v in labels.items() if v is not None}, run_id=run_id,
                                        label_keys=[k for k, v in labels.items() if v is None])
        return [self._model(m) for m in self._conn.call("ListModels", request).models]

    def model(self, model_id: str) -> ModelInfo:
        return self._model(self._conn.call("GetModel", spb.GetModelRequest(model_id=_model_id(model_id))))

    def update_model(self, model_id: str, metadata: dict[str, Any] | None = None, labels: dict[str, str | None] | None = None,
                     actor: str | None = None) -> ModelInfo:
        from .._values import to_attrs, to_tags

        labels = labels or {}
        request = spb.UpdateModelRequest(
            model_id=_model_id(model_id), metadata_json=convert.dumps(to_attrs(metadata)) if metadata else "",
            labels=to_tags({k: v for k, v in labels.items() if v is not None}),
            remove_labels=[str(k) for k, v in labels.items() if v is None],
        )
        return self._model(self._conn.call("UpdateModel", request, retries=0))

    def finalize_model(self, model_id: str, actor: str | None = None) -> ModelInfo:
        return self._model(self._conn.call("FinalizeModel", spb.GetModelRequest(model_id=_model_id(model_id))))

    # ------------------------------------------------------------------ registry and lifecycle (the server's actor is the token's)
    def set_alias(self, name: str, alias: str, version: int | str, actor: str | None = None) -> ModelInfo:
        request = spb.SetAliasRequest(name=name, alias=alias, version=str(version))
        return self._model(self._conn.call("SetAlias", request))

    def delete_alias(self, name: str, alias: str, actor: str | None = None) -> None:
        self._conn.call("DeleteAlias", spb.DeleteAliasRequest(name=name, alias=alias), retries=0)

    def delete_model(self, model_id: str, actor: str | None = None) -> DeleteReport:
        reply = self._conn.call("DeleteModel", spb.GetModelRequest(model_id=_model_id(model_id)), retries=0)
        return convert.delete_report(reply)

    def update_run(self, run_id: str, *, name: str | None = None, tags: dict[str, str | None] | None = None,
                   note: str | None = None, actor: str | None = None) -> RunInfo:
        from .._values import to_tags

        tags = tags or {}
        request = spb.UpdateRunRequest(run_id=run_id, name=name, note=note,
                                       tags=to_tags({k: v for k, v in tags.items() if v is not None}),
                                       remove_tags=[str(k) for k, v in tags.items() if v is None])
        return convert.run_info(self._conn.call("UpdateRun", request))

    def archive_run(self, run_id: str, archived: bool = True, actor: str | None = None) -> RunInfo:
        return convert.run_info(self._conn.call("ArchiveRun", spb.ArchiveRunRequest(run_id=run_id, restore=not archived)))

    def archive_experiment(self, name_or_id: str, archived: bool = True, actor: str | None = None) -> Experiment:
        request = spb.ArchiveExperimentRequest(experiment=name_or_id, restore=not archived)
        return convert.experiment(self._conn.call("ArchiveExperiment", request))

    def delete_run(self, run_id: str, actor: str | None = None) -> DeleteReport:
        return convert.delete_report(self._conn.call("DeleteRun", spb.RunRequest(run_id=run_id), retries=0))

    def delete_experiment(self, name_or_id: str, actor: str | None = None) -> DeleteReport:
        reply = self._conn.call("DeleteExperiment", spb.ExperimentRequest(experiment=name_or_id), retries=0)
        return convert.delete_report(reply)

    def read_file(self, path_or_uri: str) -> Iterable[bytes]:
        relpath = path_or_uri[len(self._files_prefix):] if path_or_uri.startswith(self._files_prefix) else path_or_uri
        if "://" in relpath:
            raise NotFound(f"{path_or_uri} is not a file of {self.uri}")
        stream = self._conn.stream("Download", spb.DownloadRequest(path=relpath), timeout=None)
        return (chunk.data for chunk in stream)

    def presign(self, path_or_uri: str, expires_s: int = 3600) -> str | None:
        """A URL to fetch a stored file directly (S3), handed out by the server; None when its
        artifact store cannot presign (a local folder): read it with ``read_file`` instead."""
        relpath = path_or_uri[len(self._files_prefix):] if path_or_uri.startswith(self._files_prefix) else path_or_uri
        metadata = (*self._conn.metadata, ("x-modelbox-presign", str(int(expires_s))))
        call = self._conn.stub.Download(spb.DownloadRequest(path=relpath), timeout=READ_TIMEOUT_S, metadata=metadata)
        try:
            url = dict(call.initial_metadata() or ()).get("x-modelbox-url")
            if url is None:
                next(iter(call), None)  # surface an error status (NOT_FOUND...) if there is one
        except grpc.RpcError as exc:
            raise _error(exc, self._conn.target) from None
        finally:
            call.cancel()
        return url

    def changes(self, since: int = 0, limit: int = 1000) -> list[ChangeEvent]:
        response = self._conn.call("ListChanges", spb.ListChangesRequest(since=since, limit=limit))
        return [convert.change_event(c) for c in response.changes]

    def last_change_seq(self) -> int:
        return self._conn.call("ListChanges", spb.ListChangesRequest(since=0, limit=0)).last_seq

    def watch(self, since: int | None = None, timeout: float | None = None, stop: threading.Event | None = None,
              on_reconnect: Callable[[int], None] | None = None) -> Iterator[ChangeEvent]:
        """Change events as they happen (server-streaming), reconnecting and resuming from the
        last sequence number received when the server goes away; ends at ``timeout`` or ``stop``."""
        seq = self.last_change_seq() if since is None else since
        deadline = None if timeout is None else time.monotonic() + timeout
        attempt = 0
        while not (stop is not None and stop.is_set()):
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            call = self._conn.stub.Watch(spb.WatchRequest(since=seq), timeout=remaining, metadata=self._conn.metadata)
            if stop is not None:  # an idle stream sends nothing: cancel it from the side when asked to stop
                threading.Thread(target=_cancel_when, args=(stop, call), name="modelbox-watch-stop", daemon=True).start()
            try:
                for msg in call:
                    attempt = 0
                    seq = msg.seq
                    yield convert.change_event(msg)
                    if stop is not None and stop.is_set():
                        call.cancel()
                        return
            except grpc.RpcError as exc:
                if exc.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
                    return
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise _error(exc, self._conn.target) from None
            # The stream ended (server restart or shutdown): resume after the last event seen.
            if on_reconnect is not None:
                on_reconnect(seq)
            _pause(min(attempt, 3))
            attempt += 1

    def close(self) -> None:
        self._conn.close()


def _cancel_when(stop: threading.Event, call: Any) -> None:
    while not stop.wait(0.25):
        if call.done():
            return
    call.cancel()


def _model_id(model_id: str) -> str:
    return model_id.rsplit("#model=", 1)[1] if "#model=" in model_id else model_id
