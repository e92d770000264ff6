"""What the read side returns: experiments, runs, metric points, events, artifacts, models."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple


class Experiment(NamedTuple):
    id: str
    name: str
    created_at: float
    archived_at: float | None = None  # archived: hidden from default listings, restorable


class MetricPoint(NamedTuple):
    step: int
    value: float
    timestamp: float
    epoch: int | None


class Event(NamedTuple):
    name: str
    timestamp: float
    duration_s: float | None
    attrs: dict[str, Any]


class Artifact(NamedTuple):
    id: str
    name: str
    path_or_uri: str
    bytes: int | None
    sha256: str | None
    kind: str = "file"


class Input(NamedTuple):
    kind: str
    ref: str
    timestamp: float
    attrs: dict[str, Any]


class ModelFileInfo(NamedTuple):
    name: str
    path_or_uri: str
    bytes: int | None
    sha256: str | None


class ChangeEvent(NamedTuple):
    seq: int
    kind: str  # created | updated | appended | deleted | revoked
    object_type: str  # experiment | run | model | alias | artifact | metrics | params | event | token
    object_id: str
    payload: dict[str, Any]
    actor: str = ""  # who made the change (see modelbox_autolog._actor); "" for events stored before actors were kept


class AccessToken(NamedTuple):
    """A team server's per-user token, as listed: never the token itself (only its sha256 is stored)."""

    id: str  # the public part, shown in lists and accepted by ``token revoke``
    user: str
    role: str  # reader | writer | admin
    created_at: float
    created_by: str | None
    revoked_at: float | None = None
    revoked_by: str | None = None


class Failure(NamedTuple):
    """Why a run failed or was killed: the exception's type, message and traceback (text)."""

    type: str
    message: str
    traceback: str | None = None

    @classmethod
    def from_dict(cls, doc: dict[str, Any] | None) -> Failure | None:
        if not doc:
            return None
        return cls(str(doc.get("type") or ""), str(doc.get("message") or ""), doc.get("traceback"))


@dataclass(slots=True)
class RunInfo:
    id: str
    experiment_id: str
    experiment: str
    name: str | None
    status: str
    start_time: float
    end_time: float | None
    progress: float | None
    parent_run_id: str | None
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    failure: Failure | None = None  # set for failed and killed runs
    archived_at: float | None = None  # archived: hidden from default listings, restorable
    note: str | None = None  # free text a person added (a finished run's description)


@dataclass(slots=True)
class ModelInfo:
    id: str
    name: str
    version: int
    framework: str
    run_id: str | None
    experiment_id: str | None
    files: list[ModelFileInfo]
    metadata: dict[str, Any]
    labels: dict[str, str]
    datasets: list[str]
    status: str
    created_at: float
    url: str = ""
    aliases: list[str] = field(default_factory=list)  # names pointing at this version (production, staging...)
    source_uri: str | None = None  # a model registered by reference (s3://, https://, hf://...): no stored files


class DeleteReport(NamedTuple):
    """What a deletion removed: runs (with their children), models, and stored files."""

    runs: int = 0
    models: int = 0
    experiments: int = 0
    files: int = 0
    bytes: int = 0


class MetricSummary(NamedTuple):
    """The latest value of a series (at its highest step), its extremes (NaN left out) and size."""

    key: str
    last: float | None  # NaN when the latest point is NaN
    step: int | None
    timestamp: float | None
    min: float | None
    max: float | None
    count: int


class SeriesSample(NamedTuple):
    """A series reduced to at most ``max_points`` points that keep every bucket's minimum and
    maximum (and any NaN/inf), in step order; ``total`` is the size of the whole series."""

    key: str
    total: int
    steps: list[int]
    values: list[float]
    timestamps: list[float]
    epochs: list[int | None]

    @property
    def downsampled(self) -> bool:
        return len(self.steps) < self.total
