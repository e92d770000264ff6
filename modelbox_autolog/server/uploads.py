"""Uploaded files: streamed to a staging folder inside the artifacts folder, then moved into place.

A finished upload is named ``<upload_id>-<bytes>-<sha256>`` so a batch that refers to it can
be stored without reading the file again: ``ServerStore`` moves it (same filesystem) where
``SQLiteStore`` would copy and hash. Memory stays bounded by one chunk whatever the file size.
"""

from __future__ import annotations

import glob
import hashlib
import os
import threading
import time
from collections.abc import Iterator

from ..backends.files import inside
from ..backends.sqlite import SQLiteStore
from ..proto.convert import UPLOAD_ID, InvalidRequest
from ..proto.modelbox.v1 import records_pb2 as rpb

STAGING = ".uploads"
STALE_AFTER_S = 24 * 3600


class UploadRefused(Exception):
    """An upload the server does not keep; ``code`` names the gRPC status to answer."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Staging:
    def __init__(self, artifacts_dir: str, max_bytes: int) -> None:
        self.folder = os.path.join(artifacts_dir, STAGING)
        self.max_bytes = max_bytes
        os.makedirs(self.folder, exist_ok=True)
        self._last_sweep = 0.0

    def receive(self, messages: Iterator[rpb.UploadRequest]) -> tuple[str, int, str]:
        """Write one client stream to disk; (upload_id, bytes, sha256) once the checksum matches."""
        self.sweep()
        first = next(messages, None)
        if first is None or first.WhichOneof("part") != "header":
            raise UploadRefused("INVALID_ARGUMENT", "an upload starts with its header")
        upload_id, size = first.header.upload_id, first.header.size
        if not UPLOAD_ID.fullmatch(upload_id):
            raise UploadRefused("INVALID_ARGUMENT", f"upload id {upload_id[:80]!r} is not 32 lowercase hex characters")
        if size > self.max_bytes:
            raise UploadRefused("RESOURCE_EXHAUSTED", f"upload of {size} bytes exceeds the server limit of {self.max_bytes}")
        part = os.path.join(self.folder, f"{upload_id}.part-{os.urandom(4).hex()}")
        try:
            received, digest, claimed = self._write(messages, part, size)
            if claimed is None:
                raise UploadRefused("INVALID_ARGUMENT", "the upload ended without its sha256")
            if received != size:
                raise UploadRefused("INVALID_ARGUMENT", f"announced {size} bytes, received {received}")
            if digest != claimed.lower():
                raise UploadRefused("DATA_LOSS", f"sha256 mismatch: received {digest}, sender computed {claimed}")
            os.replace(part, os.path.join(self.folder, f"{upload_id}-{size}-{digest}"))
        except BaseException:
            _unlink(part)
            raise
        return upload_id, size, digest

    def _write(self, messages: Iterator[rpb.UploadRequest], part: str, size: int) -> tuple[int, str, str | None]:
        digest = hashlib.sha256()
        received = 0
        claimed = None
        with open(part, "wb") as out:
            for message in messages:
                kind = message.WhichOneof("part")
                if claimed is not None:
                    raise UploadRefused("INVALID_ARGUMENT", "nothing may follow the sha256 of an upload")
                if kind == "chunk":
                    data = message.chunk
                    received += len(data)
                    if received > size:
                        raise UploadRefused("INVALID_ARGUMENT", f"received more than the {size} bytes announced")
                    digest.update(data)
                    out.write(data)
                elif kind == "sha256":
                    claimed = message.sha256
                else:
                    raise UploadRefused("INVALID_ARGUMENT", "an upload has one header, then chunks, then its sha256")
        return received, digest.hexdigest(), claimed

    def resolve(self, upload_id: str) -> str:
        """Server-side path of a finished upload; "" (the file was missing) -> a path that does not exist."""
        if not upload_id:
            return os.path.join(self.folder, "missing")
        if not UPLOAD_ID.fullmatch(upload_id):
            raise InvalidRequest(f"upload id {upload_id[:80]!r} is not 32 lowercase hex characters")
        found = glob.glob(os.path.join(self.folder, f"{upload_id}-*-*"))
        if not found:
            raise InvalidRequest(f"no finished upload {upload_id}; upload the file before sending the batch")
        return found[0]

    def discard(self, paths: list[str]) -> None:
        for path in paths:
            if os.path.dirname(path) == self.folder:
                _unlink(path)

    def sweep(self, now: float | None = None) -> None:
        """Forget uploads no batch claimed within a day (the client died), at most every 10 minutes."""
        now = time.time() if now is None else now
        if now - self._last_sweep < 600:
            return
        self._last_sweep = now
        for path in glob.glob(os.path.join(self.folder, "*")):
            try:
                if now - os.stat(path).st_mtime > STALE_AFTER_S:
                    os.unlink(path)
            except OSError:
                pass


class ServerStore(SQLiteStore):
    """A SQLite store that moves staged uploads into place instead of copying them."""

    def __init__(self, uri: str, *, artifacts_dir: str | None = None) -> None:
        super().__init__(uri, artifacts_dir=artifacts_dir)
        self.staging_dir = os.path.realpath(os.path.join(self.artifacts_dir, STAGING))
        self._moves = threading.local()  # per write: staged path -> where it went (one file, several records)

    def applied(self, batch_id: str) -> bool:
        """Whether a batch id was stored before (a re-sent batch)."""
        return bool(self._query("SELECT 1 FROM applied_batches WHERE id=?", (batch_id,)))

    def _copy_files(self, groups: dict) -> dict:
        self._moves.done = {}
        try:
            return super()._copy_files(groups)
        finally:
            self._moves.done = {}

    def _copy_one(self, source: str, rel: str, fingerprint: list[int] | None = None) -> tuple[str, int | None, str | None]:
        if os.path.dirname(os.path.realpath(source)) != self.staging_dir:
            return super()._copy_one(source, rel, fingerprint)
        name = os.path.basename(source)
        pieces = name.split("-")
        if len(pieces) != 3:  # "missing": the client had no file to send
            return super()._copy_one(source, rel)
        dest = inside(self.artifacts_dir, rel)
        done = self._moves.__dict__.setdefault("done", {})
        if source in done:  # a second record naming the same upload: copy the first one's file
            return super()._copy_one(done[source], rel)
        try:
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            os.replace(source, dest)
        except FileNotFoundError:  # moved by an earlier attempt of this batch
            return super()._copy_one(source, rel)
        done[source] = dest
        return rel, int(pieces[1]), pieces[2]


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
