"""Plain record types that travel from the training thread to a backend.

Records are small slots dataclasses built on the training thread and never mutated
afterwards. Anything slow (hashing, copying files, JSON) happens on the exporter thread.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ._names import MAX_TEXT_CHARS, name_problem, relpath_problem

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
    owner: dict[str, Any] | None = None  # the process that opened it (see _liveness), with its lease_s


@dataclass(slots=True)
class RunUpdate:
    """A change of a run's mutable fields; ``None`` means "leave as is".

    A final ``status`` (finished, failed, killed) is applied once: a store never changes a run
    that already has one (a replayed or late update cannot move it backwards). ``failure`` is
    the reason of a failed or killed run: ``{"type", "message", "traceback"}``. ``heartbeat``
    (a timestamp) renews the owner's lease.
    """

    run_id: str
    status: str | None = None
    end_time: float | None = None
    progress: float | None = None
    name: str | None = None
    tags: dict[str, str] | None = None
    env: dict[str, Any] | None = None
    failure: dict[str, Any] | None = None
    heartbeat: float | None = None


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
    fingerprint: list[int] | None = None  # [size, mtime_ns] at the call: a file changed since is refused


FINAL_STATUSES = frozenset({"finished", "failed", "killed"})


@dataclass(slots=True)
class ModelFile:
    name: str
    source_path: str
    delete_source: bool = False
    fingerprint: list[int] | None = None  # as Artifact.fingerprint


def model_file_paths(source: str) -> list[tuple[str, str]]:
    """(name, path) of the files of a model at a local path: the file itself, or every file
    under a folder (named by their path inside it); [] when nothing is there."""
    if os.path.isdir(source):
        found = []
        for folder, _dirs, names in os.walk(source):
            for file_name in sorted(names):
                full = os.path.join(folder, file_name)
                found.append((os.path.relpath(full, source).replace(os.sep, "/"), full))
        return found
    if os.path.isfile(source):
        return [(os.path.basename(source), source)]
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


def name_refusals(groups: dict[type, list[Any]]) -> list[tuple[Any, str, str]]:
    """(record, reason, detail) for records with a name or value no store takes: the same rules
    as the run API applies at the call (``_names``), for records that did not come through it
    (a journal of an older version, another client). Metric keys are checked once per key."""
    refused: list[tuple[Any, str, str]] = []

    def check(record: Any, what: str, value: Any, empty: bool = False) -> bool:
        if empty and value == "":
            return True
        problem = name_problem(value)
        if problem is not None:
            refused.append((record, f"{what} refused", f"{what} {str(value)[:80]!r} {problem}"))
            return False
        return True

    for r in groups.get(RunStart, ()):
        if check(r, "experiment name", r.experiment) and (r.name is None or check(r, "run name", r.name, empty=True)):
            all(check(r, "tag", k) and check(r, "tag", v, empty=True) for k, v in r.tags.items())
    for p in groups.get(Param, ()):
        if check(p, "param key", p.key) and len(p.value) > MAX_TEXT_CHARS:
            refused.append((p, "param refused", f"param {p.key[:80]!r} has a value over {MAX_TEXT_CHARS:,} characters"))
    metrics = groups.get(Metric)
    if metrics:
        bad = {key for key in {m[1] for m in metrics} if name_problem(key) is not None}
        for m in metrics:
            if m[1] in bad:
                check(m, "metric key", m[1])
    for e in groups.get(Event, ()):
        check(e, "event name", e.name)
    for i in groups.get(Input, ()):
        check(i, "input", i.kind) and check(i, "input", i.ref)
    for a in groups.get(Artifact, ()):
        problem = relpath_problem(a.name)
        if problem is not None:
            refused.append((a, "artifact name refused", problem))
    for m in groups.get(ModelRecord, ()):
        problem = next((relpath_problem(f.name) for f in m.files if relpath_problem(f.name)), None)
        if problem is not None:
            refused.append((m, "model file name refused", problem))
        elif check(m, "model name", m.name):
            all(check(m, "label", k) and check(m, "label", v, empty=True) for k, v in m.labels.items())
    for u in groups.get(RunUpdate, ()):
        if u.name is None or check(u, "run name", u.name, empty=True):
            all(check(u, "tag", k) and check(u, "tag", v, empty=True) for k, v in (u.tags or {}).items())
    return refused
