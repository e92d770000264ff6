"""Where a record's files go inside an artifact store, and placing a batch's files there.

One layout for every store: ``runs/RUN/ARTIFACT/NAME`` and ``models/MODEL/NAME`` (names
normalised, never escaping their folder). Shared by the SQL stores and the server.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._records import Artifact as ArtifactRecord
from .._records import ModelRecord
from ..backends.base import BackendUnavailable
from ..backends.files import safe_relpath
from .base import ArtifactStore, ArtifactStoreError, sha256_of_object

# record key (artifact id, or "MODEL/FILE") -> (key in the artifact store, bytes, sha256); None = missing
Placed = dict[str, tuple[str, "int | None", "str | None"]]


def artifact_key(run_id: str, artifact_id: str, name: str) -> str:
    return f"runs/{run_id}/{artifact_id}/{safe_relpath(name)}"


def model_file_key(model_id: str, name: str) -> str:
    return f"models/{model_id}/{safe_relpath(name)}"


def file_entries(groups: Mapping[type, list[Any]]) -> list[tuple[str, str, str]]:
    """(record key, destination key, source path) of every file a batch's records name."""
    entries = [(r.id, artifact_key(r.run_id, r.id, r.name), r.source_path) for r in groups.get(ArtifactRecord, ())]
    for model in groups.get(ModelRecord, ()):
        entries += [(f"{model.id}/{f.name}", model_file_key(model.id, f.name), f.source_path) for f in model.files]
    return entries


def place_files(store: ArtifactStore, groups: Mapping[type, list[Any]], placed: Placed | None = None) -> Placed:
    """Copy the local files a batch names into ``store`` (skipping those in ``placed``, already
    there): record key -> (key, bytes, sha256). A vanished source keeps its record, marked
    missing, unless an earlier attempt of the same batch stored it already."""
    result: Placed = dict(placed or {})
    for record_key, key, source in file_entries(groups):
        if record_key in result:
            continue
        try:
            stored = store.put_file(key, source)
        except FileNotFoundError:
            size = store.size(key)
            if size is not None:  # stored by an earlier attempt of this batch
                result[record_key] = (key, size, sha256_of_object(store, key))
            else:
                result[record_key] = (key, None, None)
            continue
        except (ArtifactStoreError, BackendUnavailable):
            raise
        except OSError as exc:
            raise BackendUnavailable(f"cannot copy {source} into {store.uri}: {exc}") from exc
        result[record_key] = (key, stored.bytes, stored.sha256)
    return result
