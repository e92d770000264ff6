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
from ..entities import Artifact, ChangeEvent, Event, Experiment, Input, MetricPoint, ModelInfo, RunInfo


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


class ImmutableModel(BackendError):
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
    def experiments(self) -> list[Experiment]: ...

    @abc.abstractmethod
    def runs(self, experiment: str | None = None, status: str | None = None, limit: int | None = None) -> list[RunInfo]: ...

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
    def models(self, name: str | None = None, labels: dict[str, str] | None = None, run_id: str | None = None) -> list[ModelInfo]: ...

    @abc.abstractmethod
    def model(self, model_id: str) -> ModelInfo: ...

    @abc.abstractmethod
    def update_model(self, model_id: str, metadata: dict[str, Any] | None = None, labels: dict[str, str] | None = None) -> ModelInfo: ...

    @abc.abstractmethod
    def finalize_model(self, model_id: str) -> ModelInfo: ...

    @abc.abstractmethod
    def read_file(self, path_or_uri: str) -> Iterable[bytes]:
        """Stream the bytes of a stored artifact or model file, in chunks."""

    @abc.abstractmethod
    def changes(self, since: int = 0, limit: int = 1000) -> list[ChangeEvent]: ...

    @abc.abstractmethod
    def last_change_seq(self) -> int: ...

    def close(self) -> None:
        pass
