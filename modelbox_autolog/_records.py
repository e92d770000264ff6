"""Plain record types that travel from the training thread to a backend.

Records are small slots dataclasses built on the training thread and never mutated
afterwards. Anything slow (hashing, copying files, JSON) happens on the exporter thread.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from typing import Any, NamedTuple

_ids = random.Random(os.urandom(32))  # our own generator: a user's random.seed() never repeats our ids


def _reseed_ids() -> None:
    _ids.seed(os.urandom(32))  # a forked child must not replay its parent's sequence


os.register_at_fork(after_in_child=_reseed_ids)


def new_id() -> str:
    """A fresh 32-character hex identifier (runs, models, events, batches): 128 random bits.

    Drawn from a generator seeded by the OS once per process (and again after fork), not
    ``os.urandom`` per id: a system call costs ~10 µs on some virtual machines, per record.
    """
    return f"{_ids.getrandbits(128):032x}"


@dataclass(slots=True)
class RunStart:
    run_id: str
    experiment: str
    name: str | None
    start_time: float
    parent_run_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class RunUpdate:
    """A change of a run's mutable fields; ``None`` means "leave as is"."""

    run_id: str
    status: str | None = None
    end_time: float | None = None
    progress: float | None = None
    name: str | None = None
    tags: dict[str, str] | None = None
    env: dict[str, Any] | None = None


@dataclass(slots=True)
class Param:
    run_id: str
    key: str
    value: str  # JSON text of the value (or of its repr when not JSON-able)


class Metric(NamedTuple):
    """One metric point. The hot path queues it as a plain tuple in this field order (CPython's
    GC untracks tuples of atoms), and every consumer reads it by position, so both forms work."""

    run_id: str
    key: str
    value: float
    step: int
    timestamp: float
    epoch: int | None = None


@dataclass(slots=True)
class Event:
    id: str
    run_id: str
    name: str
    timestamp: float
    duration_s: float | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Artifact:
    """A file to keep with a run; ``source_path`` is read by the exporter, not the caller."""

    id: str
    run_id: str
    name: str
    source_path: str
    kind: str = "file"  # file | console | checkpoint | table | plot
    delete_source: bool = False  # the file is our own temporary copy


@dataclass(slots=True)
class ModelFile:
    name: str
    source_path: str
    delete_source: bool = False


def model_files(source: str, staged: bool = False) -> list[ModelFile]:
    """The files of a model at a local path: the file itself, or every file under a folder
    (named by their path inside it); [] when nothing is there."""
    if os.path.isdir(source):
        files = []
        for folder, _dirs, names in os.walk(source):
            for file_name in sorted(names):
                full = os.path.join(folder, file_name)
                files.append(ModelFile(os.path.relpath(full, source).replace(os.sep, "/"), full, staged))
        return files
    if os.path.isfile(source):
        return [ModelFile(os.path.basename(source), source, staged)]
    return []


def reference_uri(path: Any) -> str | None:
    """The URI when ``path`` names a model elsewhere (``s3://``, ``https://``, ``hf://``...), not a local file."""
    if isinstance(path, str) and "://" in path and not path.startswith("file://"):
        scheme = path.split("://", 1)[0]
        if scheme and scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
            return path
    return None


@dataclass(slots=True)
class ModelRecord:
    id: str
    run_id: str | None
    name: str
    framework: str
    files: list[ModelFile]
    created_at: float
    metadata: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    datasets: list[str] = field(default_factory=list)
    status: str = "draft"
    source_uri: str | None = None  # registered by reference (s3://, https://, hf://...): no files copied


@dataclass(slots=True)
class Input:
    """Lineage: something a run consumed (a dataset, a loaded model file)."""

    id: str
    run_id: str
    kind: str  # dataset | model
    ref: str
    timestamp: float
    attrs: dict[str, Any] = field(default_factory=dict)


# Order in which a backend applies the records of one batch: parents before children.
RECORD_TYPES: tuple[type, ...] = (RunStart, Param, Metric, Event, Input, Artifact, ModelRecord, RunUpdate)
RECORD_BY_NAME: dict[str, type] = {t.__name__: t for t in RECORD_TYPES}


@dataclass(slots=True)
class Batch:
    """Records sent together; ``id`` makes re-sending a batch harmless (idempotent writes)."""

    id: str
    writer: str
    records: list[Any]
    created_at: float = 0.0
    files_root: str | None = None  # where relative source paths live (spool replay)

    def by_type(self) -> dict[type, list[Any]]:
        """Records grouped by type; plain tuples are metric points (see ``Metric``)."""
        groups: dict[type, list[Any]] = {}
        for record in self.records:
            cls = type(record)
            groups.setdefault(Metric if cls is tuple else cls, []).append(record)
        return groups
