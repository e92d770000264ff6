"""``modelbox gc``: files in an artifact store that no record points at any more.

Deleting a run or a model removes its files right after the transaction commits; a process
that dies in between, an upload whose batch never came, or files of records removed by hand
leave objects nobody references. They are found by listing the store's ``runs/`` and
``models/`` keys and subtracting what the metadata store references. A file younger than the
grace period is kept: a batch places its files before its transaction commits, so a file that
is not referenced *yet* must not be taken for garbage. Staged uploads (``.uploads/``) are the
server's business (it sweeps them itself).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .backends import BackendError

PREFIXES = ("runs/", "models/")


@dataclass
class GcReport:
    """What a pass found (and removed, unless it was a dry run)."""

    location: str
    deleted: bool
    files: int = 0
    bytes: int = 0
    kept_young: int = 0  # unreferenced but newer than the grace period
    failed: int = 0
    keys: list[str] = field(default_factory=list)  # the first few, for the CLI to show


def collect_garbage(store: Any, delete: bool = False, older_than_s: float = 3600.0, show: int = 20) -> GcReport:
    """Find (and with ``delete`` remove) unreferenced files of ``store``'s artifact store."""
    artifacts = getattr(store, "artifact_store", None)
    referenced = getattr(store, "referenced_files", None)
    if artifacts is None or referenced is None:
        raise BackendError(f"{store.uri} is not a store whose files can be collected here; run `modelbox gc --backend "
                           "STORE_URI` where the store is (sqlite:///PATH or postgresql://..., with ?artifacts= for S3)")
    keep = referenced()
    report = GcReport(location=artifacts.uri, deleted=delete)
    cutoff = time.time() - older_than_s
    for prefix in PREFIXES:
        for key, size, modified in artifacts.list(prefix):
            if key in keep:
                continue
            if modified > cutoff:
                report.kept_young += 1
                continue
            if delete:
                try:
                    artifacts.delete(key)
                except Exception:  # noqa: BLE001 - counted; the next pass tries again
                    report.failed += 1
                    continue
            report.files += 1
            report.bytes += size
            if len(report.keys) < show:
                report.keys.append(key)
    return report
