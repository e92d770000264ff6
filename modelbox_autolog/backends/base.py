"""The two narrow interfaces every transport implements.

``Backend`` is the write side the exporter drives: synchronous, simple, one batch at a time,
idempotent by batch id. ``Store`` is the read side behind ``mbx.Client`` and the CLI.
All threading, batching, retries and spooling live in the core, not here.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from typing import Any, ClassVar

from .._records import Batch
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


class BackendError(Exception):
    """A permanent problem with a backend (bad URI, corrupt store, refused record)."""


class RecordRefused(BackendError):
    """A permanent problem with some records of a batch, never with the store: the exporter
    drops those (each counted under its ``reason``) and stores the rest.

    ``refusals`` lists ``(record, reason, detail)``: the refused record object itself, a short
    reason that names the cause (counted and reported once), and the detail of this instance.
    """

    def __init__(self, refusals: list[tuple[Any, str, str]]) -> None:
        super().__init__("; ".join(detail for _record, _reason, detail in refusals[:3]))
        self.refusals = list(refusals)


class BackendUnavailable(BackendError):
    """A transient problem: retry later (server down, database locked, disk full)."""


class StoreUnwritable(BackendUnavailable):
    """The store cannot take writes until someone acts (read-only, permission denied, damaged
    pages): records stay in the journal, one message says what to do, retries are slow."""


class AuthRefused(BackendUnavailable):
    """The server refused our credentials: records stay in the journal until the token is fixed."""


class NotFound(KeyError):
    """An unknown run, model or experiment id."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else "not found"


class Refused(BackendError):
    """A change the store refuses for a reason it names (a final or aliased model, a bad alias)."""


class ImmutableModel(Refused):
    """A finalized model cannot be changed."""


class Backend(abc.ABC):
    """Write side. ``write`` must store a batch completely or not at all, once per batch id."""

    scheme: ClassVar[str] = ""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    @abc.abstractmethod
    def write(self, batch: Batch) -> bool | None:
        """Store every record of ``batch`` (copying/uploading the files they name).

        Returns False when the batch id was stored before (nothing written again), True or
        None otherwise. Raises ``BackendUnavailable`` for transient problems (the batch is
        kept and sent again), ``RecordRefused`` for records no retry can store, and
        ``BackendError`` for any other permanent refusal (the exporter then narrows it down
        to the records at fault).
        """

    def fork_lock(self) -> Any:
        """A lock held while the backend uses a connection that must not be mid-call when the
        process forks (the exporter holds it across ``fork``), or None."""
        return None

    def verify(self) -> None:
        """Called once after opening, before the first write: raise ``StoreUnwritable`` when
        the store must not be written to (e.g. damaged pages)."""

    def close(self) -> None:
        """Release connections; called once at shutdown."""

    def store(self) -> Store:
        """The read side of the same location."""
        raise BackendError(f"{self.scheme}:// backends cannot be read back directly")


class Store(abc.ABC):
    """Read side (plus the few model-registry writes the Client makes)."""

    uri: str

    @abc.abstractmethod
    def experiments(self, archived: bool | None = False) -> list[Experiment]:
        """Experiments, oldest first; ``archived`` False: without the archived ones, True: only them, None: all."""

    @abc.abstractmethod
    def runs(self, experiment: str | None = None, status: str | None = None, limit: int | None = None,
             archived: bool | None = False) -> list[RunInfo]: ...

    @abc.abstractmethod
    def run(self, run_id: str) -> RunInfo: ...

    @abc.abstractmethod
    def metric_keys(self, run_id: str) -> list[str]: ...

    @abc.abstractmethod
    def metrics(self, run_id: str, key: str) -> list[MetricPoint]: ...

    @abc.abstractmethod
    def events(self, run_id: str, name: str | None = None) -> list[Event]: ...

    @abc.abstractmethod
    def artifacts(self, run_id: str) -> list[Artifact]: ...

    @abc.abstractmethod
    def inputs(self, run_id: str) -> list[Input]: ...

    @abc.abstractmethod
    def models(self, name: str | None = None, labels: dict[str, str | None] | None = None,
               run_id: str | None = None) -> list[ModelInfo]: ...

    @abc.abstractmethod
    def model(self, model_id: str) -> ModelInfo: ...

    @abc.abstractmethod
    def update_model(self, model_id: str, metadata: dict[str, Any] | None = None, labels: dict[str, str | None] | None = None,
                     actor: str | None = None) -> ModelInfo:
        """Merge metadata and labels into a draft model; a label set to None is removed."""

    @abc.abstractmethod
    def finalize_model(self, model_id: str, actor: str | None = None) -> ModelInfo: ...

    @abc.abstractmethod
    def read_file(self, path_or_uri: str) -> Iterable[bytes]:
        """Stream the bytes of a stored artifact or model file, in chunks."""

    @abc.abstractmethod
    def changes(self, since: int = 0, limit: int = 1000) -> list[ChangeEvent]: ...

    @abc.abstractmethod
    def last_change_seq(self) -> int: ...

    def close(self) -> None:
        pass

    # ------------------------------------------------------------------ search and charts
    # The run search (``where``/``order_by``, see modelbox_autolog.search) runs inside the store;
    # a store that cannot compile it says so rather than loading every run.
    def search_runs(self, experiment: str | None = None, status: str | None = None, where: str | None = None,
                    order_by: str | None = None, limit: int | None = None, offset: int = 0,
                    archived: bool | None = False) -> list[RunInfo]:
        """Runs matching ``where``, sorted by ``order_by`` (then newest first), one page; archived
        runs (and runs of archived experiments) are left out unless ``archived`` is True (only
        them) or None (all)."""
        if where or order_by or offset:
            raise BackendError(f"{type(self).__name__} cannot search runs (where/order_by/offset)")
        return self.runs(experiment=experiment, status=status, limit=limit, archived=archived)

    def count_runs(self, experiment: str | None = None, status: str | None = None, where: str | None = None,
                   archived: bool | None = False) -> int:
        """How many runs ``search_runs`` would find without a limit."""
        if where:
            raise BackendError(f"{type(self).__name__} cannot search runs (where)")
        return len(self.runs(experiment=experiment, status=status, archived=archived))

    def metric_summaries(self, run_ids: list[str], keys: list[str] | None = None) -> dict[str, dict[str, MetricSummary]]:
        """Per run id, per metric key: the latest value, min, max and count (``keys=None``: all)."""
        from ..series import summarise

        out: dict[str, dict[str, MetricSummary]] = {}
        for run_id in run_ids:
            wanted = self.metric_keys(run_id) if keys is None else [k for k in keys if k in set(self.metric_keys(run_id))]
            out[run_id] = {key: summarise(key, self.metrics(run_id, key)) for key in wanted}
        return out

    def search_keys(self, experiment: str | None = None, sample: int = 200) -> dict[str, list[str]]:
        """The param, metric and tag keys of the newest ``sample`` runs (column choices for a table)."""
        params: set[str] = set()
        metrics: set[str] = set()
        tags: set[str] = set()
        for run in self.runs(experiment=experiment, limit=sample):
            params.update(run.params)
            tags.update(run.tags)
            metrics.update(self.metric_keys(run.id))
        return {"params": sorted(params), "metrics": sorted(metrics), "tags": sorted(tags)}

    def metric_sample(self, run_id: str, key: str, max_points: int = 2000) -> SeriesSample:
        """The series downsampled to at most ``max_points`` points (minima, maxima, NaN and inf kept)."""
        from ..series import sample_points

        return sample_points(key, self.metrics(run_id, key), max_points)

    def child_counts(self, run_ids: list[str]) -> dict[str, int]:
        """How many child runs each of ``run_ids`` has (grid searches fold them under the parent)."""
        return {run_id: self.count_runs(where=f"parent = '{run_id}'") for run_id in run_ids if "'" not in run_id}

    def input_consumers(self, refs: list[str]) -> list[tuple[str, str]]:
        """(run id, ref) of every run that logged one of ``refs`` as an input (lineage: who loaded a model)."""
        return []

    # ------------------------------------------------------------------ registry and lifecycle
    # One method per write, each taking the ``actor`` recorded in its change event, so that an
    # access check can wrap any of them. A store that cannot make a change says so.
    def _unsupported(self, what: str) -> BackendError:
        return BackendError(f"{type(self).__name__} ({self.uri}) cannot {what}")

    def experiment(self, name_or_id: str) -> Experiment:
        """One experiment by name or id (archived ones too); NotFound naming close names."""
        found = [e for e in self.experiments() if name_or_id in (e.name, e.id)]
        if not found:
            raise NotFound(f"no experiment {name_or_id!r} in {self.uri}")
        return found[0]

    def set_alias(self, name: str, alias: str, version: int | str, actor: str | None = None) -> ModelInfo:
        """Point ``NAME@ALIAS`` at a version (moved atomically if it pointed elsewhere)."""
        raise self._unsupported("set model aliases")

    def delete_alias(self, name: str, alias: str, actor: str | None = None) -> None:
        raise self._unsupported("delete model aliases")

    def delete_model(self, model_id: str, actor: str | None = None) -> DeleteReport:
        raise self._unsupported("delete models")

    def update_run(self, run_id: str, *, name: str | None = None, tags: dict[str, str | None] | None = None,
                   note: str | None = None, actor: str | None = None) -> RunInfo:
        """Rename a run, set or remove (None) tags, set its note ("" clears it)."""
        raise self._unsupported("edit runs")

    def archive_run(self, run_id: str, archived: bool = True, actor: str | None = None) -> RunInfo:
        raise self._unsupported("archive runs")

    def archive_experiment(self, name_or_id: str, archived: bool = True, actor: str | None = None) -> Experiment:
        raise self._unsupported("archive experiments")

    def delete_run(self, run_id: str, actor: str | None = None) -> DeleteReport:
        raise self._unsupported("delete runs")

    def delete_experiment(self, name_or_id: str, actor: str | None = None) -> DeleteReport:
        raise self._unsupported("delete experiments")
