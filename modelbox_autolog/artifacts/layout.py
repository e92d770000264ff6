"""Where a record's files go inside an artifact store, and placing a batch's files there.

One layout for every store: ``runs/RUN/ARTIFACT/NAME`` and ``models/MODEL/NAME`` (names
normalised, never escaping their folder). Shared by the SQL stores and the server. Whose
problem a failure is decides what happens to the records: a file removed or rewritten since
it was logged, or a name no filesystem takes, refuses that record alone (``RecordRefused``);
a full, read-only or unreachable artifact store keeps the whole batch for later.
"""

from __future__ import annotations

import errno
from collections.abc import Mapping
from typing import Any

from .._records import Artifact as ArtifactRecord
from .._records import ModelRecord
from ..backends.base import BackendUnavailable, RecordRefused, StoreUnwritable
from ..backends.files import SourceChanged, UnsafeName, os_error_is_per_record, safe_relpath
from .base import ArtifactStore, ArtifactStoreError, ArtifactStoreUnavailable, sha256_of_object

# record key (artifact id, or "MODEL/FILE") -> (key in the artifact store, bytes, sha256)
Placed = dict[str, tuple[str, "int | None", "str | None"]]

REMOVED_REASON = "the file changed or was removed before it could be stored"


def artifact_key(run_id: str, artifact_id: str, name: str) -> str:
    return f"runs/{run_id}/{artifact_id}/{safe_relpath(name)}"


def model_file_key(model_id: str, name: str) -> str:
    return f"models/{model_id}/{safe_relpath(name)}"


def file_entries(groups: Mapping[type, list[Any]]) -> list[tuple[str, str, str]]:
    """(record key, destination key, source path) of every file a batch's records name."""
    return [(record_key, key, source) for _record, record_key, key, source, _fp in _entries(groups)]


def _entries(groups: Mapping[type, list[Any]]) -> list[tuple[Any, str, str, str, Any]]:
    """(record, record key, destination key, source path, fingerprint) per file; a name that
    cannot be a key gives the destination "" (refused when placed)."""
    found = []
    for r in groups.get(ArtifactRecord, ()):
        found.append((r, r.id, _key(artifact_key, r.run_id, r.id, r.name), r.source_path, getattr(r, "fingerprint", None)))
    for model in groups.get(ModelRecord, ()):
        for f in model.files:
            found.append((model, f"{model.id}/{f.name}", _key(model_file_key, model.id, f.name), f.source_path,
                          getattr(f, "fingerprint", None)))
    return found


def _key(make, *parts: str) -> str:
    try:
        return make(*parts)
    except UnsafeName:
        return ""


def refusal(record: Any, exc: Exception) -> tuple[Any, str, str]:
    """(record, reason, detail) for a file no store can take, whatever the retries."""
    if isinstance(exc, SourceChanged):
        return record, REMOVED_REASON, str(exc.strerror or exc)
    if isinstance(exc, UnsafeName):
        return record, "unusable file name", str(exc)
    name = errno.errorcode.get(exc.errno or 0, "error") if isinstance(exc, OSError) else type(exc).__name__
    return record, f"file refused by the filesystem ({name})", f"{getattr(record, 'name', '')!r}: {exc}"


def os_unavailable(exc: OSError, where: str) -> BackendUnavailable:
    """A failed write into a folder: read-only or permission problems need someone to act."""
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StoreUnwritable(f"{where}: {exc.strerror or exc} (fix the folder's permissions or mount)")
    return BackendUnavailable(f"{where}: {exc.strerror or exc}")


def place_files(store: ArtifactStore, groups: Mapping[type, list[Any]], placed: Placed | None = None) -> Placed:
    """Copy the local files a batch names into ``store`` (skipping those in ``placed``, already
    there): record key -> (key, bytes, sha256). A file an earlier attempt of this batch stored
    is found in place; records whose file cannot be stored are refused together, at the end."""
    result: Placed = dict(placed or {})
    refusals: list[tuple[Any, str, str]] = []
    for record, record_key, key, source, fingerprint in _entries(groups):
        if record_key in result or any(r[0] is record for r in refusals):
            continue
        try:
            if not key:
                raise UnsafeName(f"{getattr(record, 'name', record_key)!r} cannot be a file name")
            stored = store.put_file(key, source, fingerprint)
        except SourceChanged as exc:
            size = store.size(key) if exc.errno == errno.ENOENT else None
            if size is not None:  # placed by an earlier attempt of this batch
                result[record_key] = (key, size, sha256_of_object(store, key))
            else:
                refusals.append(refusal(record, exc))
        except UnsafeName as exc:
            refusals.append(refusal(record, exc))
        except ArtifactStoreUnavailable:
            raise
        except ArtifactStoreError as exc:  # a missing bucket, a refused key: someone must act; records wait
            raise StoreUnwritable(f"{exc} (records wait in the journal until it is fixed)") from exc
        except OSError as exc:
            if os_error_is_per_record(exc):
                refusals.append(refusal(record, exc))
            else:
                raise os_unavailable(exc, f"cannot copy {source} into {store.uri}") from exc
        else:
            result[record_key] = (key, stored.bytes, stored.sha256)
    if refusals:
        raise RecordRefused(refusals)
    return result
