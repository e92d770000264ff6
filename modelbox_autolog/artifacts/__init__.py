"""Artifact stores, chosen by URI: a local folder (``file:///DIR`` or a path) or an
S3-compatible bucket (``s3://BUCKET/PREFIX``, endpoint and credentials from the AWS variables)."""

from __future__ import annotations

from .base import (
    ArtifactNotFound,
    ArtifactStore,
    ArtifactStoreError,
    ArtifactStoreUnavailable,
    StoredObject,
)
from .layout import artifact_key, model_file_key, place_files
from .local import LocalArtifactStore


def open_artifacts(uri: str) -> ArtifactStore:
    """The artifact store at ``uri``; raises ArtifactStoreError for an unknown scheme."""
    if uri.startswith("s3://"):
        try:
            from .s3 import S3ArtifactStore
        except ImportError as exc:
            raise ArtifactStoreError(f"s3:// artifacts need boto3: pip install 'modelbox-autolog[s3]' ({exc})") from exc
        return S3ArtifactStore(uri)
    if "://" in uri and not uri.startswith("file://"):
        raise ArtifactStoreError(f"artifact location {uri!r}: use a folder, file:///DIR or s3://BUCKET/PREFIX")
    return LocalArtifactStore(uri)


__all__ = [
    "ArtifactNotFound", "ArtifactStore", "ArtifactStoreError", "ArtifactStoreUnavailable", "LocalArtifactStore",
    "StoredObject", "artifact_key", "model_file_key", "open_artifacts", "place_files",
]
