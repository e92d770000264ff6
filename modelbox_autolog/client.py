"""``mbx.Client``: read back experiments, runs, metrics, events, artifacts and models."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from . import _config
from ._exporter import _exporters
from .backends import NotFound, Store, canonical_uri, open_store
from .entities import (
    Artifact,
    ChangeEvent,
    DeleteReport,
    Event,
    Experiment,
    Input,
    MetricPoint,
    MetricSummary,
    ModelFileInfo,
    ModelInfo,
    RunInfo,
    SeriesSample,
)

Model = ModelInfo


class RunView:
    """A stored run. Attributes are a snapshot; methods query the store each time."""

    def __init__(self, store: Store, info: RunInfo, client: Client) -> None:
        self._store = store
        self._client = client
        self._info = info
        self.id = info.id
        self.name = info.name
        self.status = info.status
        self.progress = info.progress
        self.params = info.params
        self.tags = info.tags
        self.env = info.env
        self.experiment = info.experiment
        self.experiment_id = info.experiment_id
        self.parent_run_id = info.parent_run_id
        self.start_time = info.start_time
        self.end_time = info.end_time
        # Why a failed or killed run ended: Failure(type, message, traceback), else None. A run whose
        # process died without ending it (SIGKILL, the OOM killer) reads as "killed", with type
        # "ProcessLost", once the store notices (at once on the same machine, else when its lease runs out).
        self.failure = info.failure
        self.archived_at = info.archived_at
        self.note = info.note

    @property
    def archived(self) -> bool:
        return self.archived_at is not None

    @property
    def duration_s(self) -> float | None:
        return None if self.end_time is None else self.end_time - self.start_time

    def metric_keys(self) -> list[str]:
        return self._store.metric_keys(self.id)

    def metrics(self, key: str) -> list[MetricPoint]:
        return self._store.metrics(self.id, key)

    def events(self, name: str | None = None) -> list[Event]:
        return self._store.events(self.id, name)

    def artifacts(self) -> list[Artifact]:
        return self._store.artifacts(self.id)

    def inputs(self) -> list[Input]:
        return self._store.inputs(self.id)

    def models(self) -> list[ModelInfo]:
        return self._store.models(run_id=self.id)

    def children(self) -> list[RunView]:
        try:
            return self._client.runs(where=f"parent = '{self.id}'")
        except Exception:  # a store that cannot search
            return [r for r in self._client.runs(experiment=self.experiment_id) if r.parent_run_id == self.id]

    def refresh(self) -> RunView:
        return self._client.run(self.id)

    def __repr__(self) -> str:
        return f"RunView(id={self.id!r}, name={self.name!r}, status={self.status!r}, experiment={self.experiment!r})"


def _split_model_url(model_id: str) -> tuple[str | None, str]:
    if "#model=" in model_id:
        uri, _, ident = model_id.rpartition("#model=")
        return uri, ident
    return None, model_id


class Client:
    """Read side of a backend URI (the same forms autolog writes to)."""

    def __init__(self, uri: str | None = None, *, flush_timeout: float = 10.0) -> None:
        self.uri = canonical_uri(uri or _config.current().backend)
        self._flush_timeout = flush_timeout
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.uri)
        exporter = _exporters.get(self.uri)
        if exporter is not None and not exporter.settled():
            exporter.flush(self._flush_timeout)  # read what this process has logged so far
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ runs
    def experiments(self, archived: bool | None = False) -> list[Experiment]:
        """Experiments, oldest first; archived ones only with ``archived=True`` (only them) or None (all)."""
        return self.store.experiments(archived=archived)

    def experiment(self, name_or_id: str) -> Experiment:
        """One experiment (archived ones too); NotFound naming the closest names."""
        return self.store.experiment(name_or_id)

    def runs(self, experiment: str | None = None, status: str | None = None, limit: int | None = None, *,
             where: str | None = None, order_by: str | None = None, offset: int = 0,
             archived: bool | None = False) -> list[RunView]:
        """Runs, newest first; ``where`` filters and ``order_by`` sorts them inside the store
        (the language is described in ``modelbox_autolog.search``; a bad expression raises
        ``SearchError`` with its position); ``limit``/``offset`` page through them. Archived
        runs (and runs of archived experiments not named by ``experiment``) are left out;
        ``archived=True`` lists only them, ``archived=None`` everything."""
        store = self.store
        if where or order_by or offset:
            infos = store.search_runs(experiment=experiment, status=status, where=where, order_by=order_by,
                                      limit=limit, offset=offset, archived=archived)
        else:
            infos = store.runs(experiment=experiment, status=status, limit=limit, archived=archived)
        return [RunView(store, info, self) for info in infos]

    def count_runs(self, experiment: str | None = None, status: str | None = None, where: str | None = None,
                   archived: bool | None = False) -> int:
        """How many runs ``runs(...)`` finds without a limit."""
        return self.store.count_runs(experiment=experiment, status=status, where=where, archived=archived)

    def metric_summaries(self, run_ids: list[str], keys: list[str] | None = None) -> dict[str, dict[str, MetricSummary]]:
        """Per run id and metric key: latest value, min, max and point count, from the store's index."""
        return self.store.metric_summaries(list(run_ids), None if keys is None else list(keys))

    def search_keys(self, experiment: str | None = None) -> dict[str, list[str]]:
        """The param, metric and tag keys of recent runs (``{"params": [...], "metrics": [...], "tags": [...]}``)."""
        return self.store.search_keys(experiment=experiment)

    def metric_sample(self, run_id: str, key: str, max_points: int = 2000) -> SeriesSample:
        """A series downsampled in the store to at most ``max_points`` (each bucket's min and max kept)."""
        return self.store.metric_sample(run_id, key, max_points)

    def run(self, run_id: str) -> RunView:
        store = self.store
        return RunView(store, store.run(run_id), self)

    # ------------------------------------------------------------------ editing runs and experiments
    def update_run(self, run_id: str, *, name: str | None = None, tags: dict[str, Any] | None = None,
                   note: str | None = None) -> RunView:
        """Rename, set or remove (None) tags and set the note of a run in one change."""
        return self._view(self.store.update_run(run_id, name=name, tags=dict(tags) if tags else None, note=note))

    def set_tags(self, run_id: str, tags: dict[str, Any]) -> RunView:
        """Set tags on a run in any state (finished runs too); a tag set to None is removed."""
        return self._view(self.store.update_run(run_id, tags=dict(tags)))

    def rename_run(self, run_id: str, name: str) -> RunView:
        return self._view(self.store.update_run(run_id, name=str(name)))

    def set_note(self, run_id: str, note: str) -> RunView:
        """A free-text note on the run (what it was for, what came out of it); "" clears it."""
        return self._view(self.store.update_run(run_id, note=str(note)))

    def archive_run(self, run_id: str) -> RunView:
        """Hide a run (and its child runs) from default listings; ``restore_run`` brings it back."""
        return self._view(self.store.archive_run(run_id, archived=True))

    def restore_run(self, run_id: str) -> RunView:
        return self._view(self.store.archive_run(run_id, archived=False))

    unarchive_run = restore_run

    def archive_experiment(self, name_or_id: str) -> Experiment:
        """Hide an experiment and its runs from default listings; ``restore_experiment`` brings it back
        (so does a new run logged into it)."""
        return self.store.archive_experiment(name_or_id, archived=True)

    def restore_experiment(self, name_or_id: str) -> Experiment:
        return self.store.archive_experiment(name_or_id, archived=False)

    unarchive_experiment = restore_experiment

    def delete_run(self, run_id: str) -> DeleteReport:
        """Delete a run, its child runs and everything they logged (artifacts and model files too),
        for good. Refused (``Refused``, with the reason) when one of its models is final or aliased."""
        return self.store.delete_run(run_id)

    def delete_experiment(self, name_or_id: str) -> DeleteReport:
        """Delete an experiment and all its runs (as ``delete_run``); refused as a whole when any
        run's model is final or aliased."""
        return self.store.delete_experiment(name_or_id)

    def _view(self, info: RunInfo) -> RunView:
        return RunView(self.store, info, self)

    # ------------------------------------------------------------------ models
    def models(self, name: str | None = None, labels: dict[str, str | None] | None = None) -> list[ModelInfo]:
        """Models, newest first; ``labels={"stage": "prod"}`` must match, ``{"stage": None}``: has the label."""
        return self.store.models(name=name, labels=labels)

    def _store_for(self, model_id: str) -> tuple[Store, str]:
        uri, ident = _split_model_url(model_id)
        if uri is None or canonical_uri(uri) == self.uri or uri == self.store.uri:  # a URL shows no password
            return self.store, ident
        return Client(uri).store, ident

    def model(self, model_id: str) -> ModelInfo:
        """A model by id (or unique prefix), URL, ``NAME@VERSION``, ``NAME@latest``, ``NAME@ALIAS``,
        ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``; NotFound names what exists."""
        store, ident = self._store_for(model_id)
        return store.model(ident)

    def update_model(self, model_id: str, metadata: dict[str, Any] | None = None,
                     labels: dict[str, Any] | None = None) -> ModelInfo:
        """Merge metadata and labels into a draft model; ``labels={"stage": None}`` removes a label."""
        store, ident = self._store_for(model_id)
        return store.update_model(ident, metadata=metadata, labels=labels)

    def finalize_model(self, model_id: str) -> ModelInfo:
        store, ident = self._store_for(model_id)
        return store.finalize_model(ident)

    def delete_model(self, model_id: str) -> DeleteReport:
        """Delete one model version and its files; refused when it is final or an alias points at it."""
        store, ident = self._store_for(model_id)
        return store.delete_model(ident)

    def set_alias(self, name: str, alias: str, version: int | str) -> ModelInfo:
        """Point ``NAME@ALIAS`` (e.g. ``churn-clf@production``) at ``version`` (a number or "latest"),
        moving it atomically from the version it pointed at; recorded in the change feed."""
        return self.store.set_alias(name, alias, version)

    def delete_alias(self, name: str, alias: str) -> None:
        self.store.delete_alias(name, alias)

    def register_model(self, path_or_uri: str | os.PathLike[str], name: str, framework: str | None = None,
                       metadata: dict[str, Any] | None = None, labels: dict[str, Any] | None = None,
                       datasets: list[str] | None = None, *, progress: Callable[[int, int], None] | None = None) -> ModelInfo:
        """Register a model no run produced: a local file or folder (its files copied into the
        store, streamed) or a URI kept as a reference (``s3://``, ``https://``, ``hf://``, ``gs://``...).
        It gets the next version of ``name``. ``progress(done_bytes, total_bytes)`` follows the upload."""
        from .registry import register_model

        return register_model(self, path_or_uri, name, framework, metadata, labels, datasets, progress)

    def download_model(self, model_id: str, dest_dir: str | os.PathLike[str],
                       progress: Callable[[int, int], None] | None = None) -> str:
        """Copy a model's files into ``dest_dir``/<name>-v<version>/; returns that folder. A model
        registered by reference is fetched when its scheme allows it (``http(s)://``, ``file://``,
        ``s3://`` with boto3); otherwise (``hf://``, ``gs://``...) its URI is returned as it is.
        ``progress(done_bytes, total_bytes)`` is called as bytes arrive."""
        from .registry import download_model

        store, ident = self._store_for(model_id)
        return download_model(store, store.model(ident), os.fspath(dest_dir), progress)

    def download_artifact(self, run_id: str, name: str, dest_dir: str | os.PathLike[str],
                          progress: Callable[[int, int], None] | None = None) -> str:
        """Copy a run's artifact (the latest of that name) into ``dest_dir``; returns its path."""
        from .backends.files import inside
        from .registry import copy_stream

        store = self.store
        artifacts = store.artifacts(run_id)
        matches = [a for a in artifacts if a.name == name]
        if not matches:
            names = ", ".join(sorted({a.name for a in artifacts})) or "none"
            raise NotFound(f"run {run_id} has no artifact named {name!r}; it has: {names}")
        artifact = matches[-1]
        if artifact.bytes is None:
            raise NotFound(f"artifact {name!r} of run {run_id} was never stored (its source was missing when logged)")
        target = inside(os.fspath(dest_dir), name)
        copy_stream(store.read_file(artifact.path_or_uri), target, artifact.bytes, progress)
        return target

    def gc(self, delete: bool = False, older_than_s: float = 3600.0) -> Any:
        """Files in the artifact store that no record points at any more (left by interrupted
        deletes or writes), older than ``older_than_s``; removed when ``delete``. A ``GcReport``."""
        from .gc import collect_garbage

        return collect_garbage(self.store, delete=delete, older_than_s=older_than_s)

    def download_url(self, path_or_uri: str, expires_s: int = 3600) -> str | None:
        """A presigned URL for a stored file (``Artifact.path_or_uri``, ``ModelFileInfo.path_or_uri``)
        that anyone holding it may GET for ``expires_s`` seconds, straight from the bucket; None
        when the files live in a local folder (use ``download_artifact``/``download_model``)."""
        store = self.store
        presign = getattr(store, "presign", None)  # a server asks its artifact store
        if presign is not None:
            return presign(path_or_uri, expires_s)
        artifacts = getattr(store, "artifact_store", None)
        key = artifacts.key_of(path_or_uri) if artifacts is not None else None
        return artifacts.presign(key, expires_s) if key is not None else None

    def open_artifact(self, run_id: str, artifact_id: str) -> tuple[Artifact, Iterable[bytes]]:
        """A run's artifact (by id, or by name: the latest of that name) and its bytes, streamed in chunks."""
        artifacts = self.run(run_id).artifacts()
        found = [a for a in artifacts if a.id == artifact_id] or [a for a in artifacts if a.name == artifact_id][-1:]
        if not found:
            raise NotFound(f"run {run_id} has no artifact {artifact_id!r}")
        artifact = found[0]
        if artifact.bytes is None:
            raise NotFound(f"artifact {artifact.name!r} of run {run_id} was never stored (its source was missing when logged)")
        return artifact, self.store.read_file(artifact.path_or_uri)

    def open_model_file(self, model_id: str, name: str) -> tuple[ModelFileInfo, Iterable[bytes]]:
        """One file of a model and its bytes, streamed in chunks."""
        store, ident = self._store_for(model_id)
        info = store.model(ident)
        found = [f for f in info.files if f.name == name]
        if not found or found[0].bytes is None:
            raise NotFound(f"model {info.id} has no stored file {name!r}")
        return found[0], store.read_file(found[0].path_or_uri)

    def child_counts(self, run_ids: list[str]) -> dict[str, int]:
        """How many child runs each run has."""
        return self.store.child_counts(list(run_ids))

    def model_consumers(self, model_id: str) -> list[RunView]:
        """Runs that logged this model (its id or URL) as an input: the lineage after the model."""
        info = self.model(model_id)
        refs = [info.id, info.url, *(f.path_or_uri for f in info.files)]
        run_ids = list(dict.fromkeys(run_id for run_id, _ in self.store.input_consumers([r for r in refs if r])))
        views = []
        for run_id in run_ids:
            try:
                views.append(self.run(run_id))
            except NotFound:
                pass
        return views

    def load_model(self, model_id: str) -> Any:
        """Download and load with the framework that logged it; returns the live object."""
        import shutil
        import tempfile

        from .integrations.loaders import model_loader

        info = self.model(model_id)
        folder = tempfile.mkdtemp(prefix="modelbox-model-")
        try:
            path = self.download_model(info.url or info.id, folder)
            if not os.path.isdir(path):
                raise NotFound(f"model {info.name} v{info.version} is a reference to {path}, which cannot be fetched here; "
                               "load it with its own framework's tools")
            loader = model_loader(info.framework)
            if loader is not None:
                return loader(path, info)
            return _load_generic(path, info)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    # ------------------------------------------------------------------ changes
    def changes(self, since: int = 0, limit: int = 1000) -> list[ChangeEvent]:
        """Change events with ``seq > since``, at most ``limit``, in order (one page of ``watch``)."""
        return self.store.changes(since, limit)

    def last_change_seq(self) -> int:
        return self.store.last_change_seq()

    def watch(self, since: int | None = None, *, poll_interval: float = 0.5, timeout: float | None = None) -> Iterator[ChangeEvent]:
        """Change events in order, as they happen. ``since=None`` starts from now; ``0`` from the start."""
        store = self.store
        streaming = getattr(store, "watch", None)
        if streaming is not None:  # a server pushes changes (and resumes after reconnects)
            yield from streaming(since=since, timeout=timeout)
            return
        seq = store.last_change_seq() if since is None else since
        deadline = None if timeout is None else time.monotonic() + timeout
        wait_for_change = getattr(store, "wait_for_change", None)  # PostgreSQL: woken by NOTIFY
        while deadline is None or time.monotonic() < deadline:
            batch = store.changes(seq, limit=1000)
            for change in batch:
                seq = change.seq
                yield change
            if not batch:
                pause = poll_interval if deadline is None else max(0.0, min(poll_interval, deadline - time.monotonic()))
                if wait_for_change is not None:
                    wait_for_change(pause)
                else:
                    time.sleep(pause)


def _load_generic(path: str, info: ModelInfo) -> Any:
    files = [f.name for f in info.files]
    if len(files) == 1 and files[0].endswith((".pkl", ".pickle", ".joblib")):
        import pickle

        try:
            import joblib

            return joblib.load(os.path.join(path, files[0]))
        except ImportError:
            with open(os.path.join(path, files[0]), "rb") as handle:
                return pickle.load(handle)
    raise NotFound(f"no loader for framework {info.framework!r}; download the files with download_model instead")
