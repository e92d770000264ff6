"""Uploaded files: streamed into the artifact store under ``.uploads/``, claimed by a batch.

An upload is written straight into the artifact store (a temporary file, or an S3 multipart
upload) with its sha256 checked before it becomes visible; a refused or interrupted upload
leaves nothing behind. A small ``.uploads/ID.done`` note then records its size and sha256, so
any server replica can resolve the upload id when a batch names it. Claiming a batch moves
each staged object to its place (a rename, or a server-side copy) without reading it again.
Memory stays bounded by a few chunks (one S3 part) whatever the file size.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from ..artifacts import ArtifactNotFound, ArtifactStore
from ..artifacts.layout import Placed, file_entries
from ..proto.convert import UPLOAD_ID, InvalidRequest
from ..proto.modelbox.v1 import records_pb2 as rpb

STAGING = ".uploads/"
STAGED_REF = "staged:"  # how a decoded batch names a staged upload in ``source_path``
STALE_AFTER_S = 24 * 3600
SWEEP_EVERY_S = 600


class UploadRefused(Exception):
    """An upload the server does not keep; ``code`` names the gRPC status to answer."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class StagedUpload(NamedTuple):
    upload_id: str
    bytes: int
    sha256: str

    @property
    def key(self) -> str:
        return f"{STAGING}{self.upload_id}"


def _note_key(upload_id: str) -> str:
    return f"{STAGING}{upload_id}.done"


class Staging:
    def __init__(self, artifacts: ArtifactStore, max_bytes: int) -> None:
        self.artifacts = artifacts
        self.max_bytes = max_bytes
        self._last_sweep = 0.0

    def receive(self, messages: Iterator[rpb.UploadRequest]) -> StagedUpload:
        """Stream one client upload into the artifact store; its size and sha256 once they match."""
        self.sweep()
        first = next(messages, None)
        if first is None or first.WhichOneof("part") != "header":
            raise UploadRefused("INVALID_ARGUMENT", "an upload starts with its header")
        upload_id, size = first.header.upload_id, first.header.size
        if not UPLOAD_ID.fullmatch(upload_id):
            raise UploadRefused("INVALID_ARGUMENT", f"upload id {upload_id[:80]!r} is not 32 lowercase hex characters")
        if size > self.max_bytes:
            raise UploadRefused("RESOURCE_EXHAUSTED", f"upload of {size} bytes exceeds the server limit of {self.max_bytes}")
        claimed: list[str] = []

        def chunks() -> Iterator[bytes]:
            received = 0
            for message in messages:
                kind = message.WhichOneof("part")
                if claimed:
                    raise UploadRefused("INVALID_ARGUMENT", "nothing may follow the sha256 of an upload")
                if kind == "chunk":
                    received += len(message.chunk)
                    if received > size:
                        raise UploadRefused("INVALID_ARGUMENT", f"received more than the {size} bytes announced")
                    yield message.chunk
                elif kind == "sha256":
                    claimed.append(message.sha256)
                else:
                    raise UploadRefused("INVALID_ARGUMENT", "an upload has one header, then chunks, then its sha256")

        def verify(received: int, digest: str) -> None:
            if not claimed:
                raise UploadRefused("INVALID_ARGUMENT", "the upload ended without its sha256")
            if received != size:
                raise UploadRefused("INVALID_ARGUMENT", f"announced {size} bytes, received {received}")
            if digest != claimed[0].lower():
                raise UploadRefused("DATA_LOSS", f"sha256 mismatch: received {digest}, sender computed {claimed[0]}")

        staged_key = f"{STAGING}{upload_id}"
        stored = self.artifacts.put(staged_key, chunks(), verify=verify, size_hint=size)
        note = json.dumps({"bytes": stored.bytes, "sha256": stored.sha256}).encode()
        self.artifacts.put(_note_key(upload_id), [note])  # the upload is finished once this exists
        return StagedUpload(upload_id, stored.bytes, stored.sha256)

    def resolve(self, upload_id: str) -> StagedUpload | None:
        """A finished upload (None for "", a file the client did not have)."""
        if not upload_id:
            return None
        if not UPLOAD_ID.fullmatch(upload_id):
            raise InvalidRequest(f"upload id {upload_id[:80]!r} is not 32 lowercase hex characters")
        try:
            note = json.loads(b"".join(self.artifacts.get(_note_key(upload_id))))
        except ArtifactNotFound:
            raise InvalidRequest(f"no finished upload {upload_id}; upload the file before sending the batch") from None
        return StagedUpload(upload_id, int(note["bytes"]), str(note["sha256"]))

    def claim(self, groups: Mapping[type, list[Any]], staged: Mapping[str, StagedUpload]) -> Placed:
        """Move the staged uploads a batch names to their places: record key -> (key, bytes, sha256).
        A second record naming the same upload gets a copy; an object moved by an earlier
        attempt of this batch (on this replica or another) is found at its place."""
        placed: Placed = {}
        moved: dict[str, str] = {}
        for record_key, dest, source in file_entries(groups):
            if not source.startswith(STAGED_REF):
                continue
            upload = staged[source[len(STAGED_REF):]]
            if upload.upload_id in moved:
                self.artifacts.put(dest, self.artifacts.get(moved[upload.upload_id]))
            else:
                try:
                    self.artifacts.move(upload.key, dest)
                except ArtifactNotFound:
                    if self.artifacts.size(dest) != upload.bytes:
                        raise InvalidRequest(f"upload {upload.upload_id} is gone; upload the file again") from None
                moved[upload.upload_id] = dest
            placed[record_key] = (dest, upload.bytes, upload.sha256)
        return placed

    def discard(self, staged: Mapping[str, StagedUpload]) -> None:
        """Forget uploads whose batch is stored."""
        self.forget(list(staged))

    def forget(self, upload_ids: list[str]) -> None:
        """Delete whatever is staged under these upload ids (nothing, usually)."""
        for upload_id in upload_ids:
            if UPLOAD_ID.fullmatch(upload_id):
                self.artifacts.delete(f"{STAGING}{upload_id}")
                self.artifacts.delete(_note_key(upload_id))

    def sweep(self, now: float | None = None) -> None:
        """Forget uploads no batch claimed within a day (the client died), at most every 10 minutes."""
        now = time.time() if now is None else now
        if now - self._last_sweep < SWEEP_EVERY_S:
            return
        self._last_sweep = now
        try:
            for key, _size, modified in list(self.artifacts.list(STAGING)):
                if now - modified > STALE_AFTER_S:
                    self.artifacts.delete(key)
            abandon = getattr(self.artifacts, "abort_incomplete", None)
            if abandon is not None:
                abandon(STAGING, STALE_AFTER_S)
        except Exception:  # a sweep that fails is retried at the next one
            pass


def upload_ids(request: rpb.WriteBatchRequest) -> list[str]:
    """Every upload id a WriteBatch request names."""
    ids = [a.file.upload_id for a in request.artifacts]
    ids += [f.upload_id for m in request.models for f in m.files]
    return [i for i in ids if i]
