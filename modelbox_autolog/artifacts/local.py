"""A folder as artifact store (the default beside a SQLite file): ``file:///DIR`` or a plain path.

Objects are written to a temporary name in their folder and renamed into place, so a reader
never sees a partial file; keys are normalised and can never resolve outside the folder.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from urllib.parse import unquote

from ..backends.files import inside, read_chunks
from .base import ArtifactNotFound, ArtifactStore, ArtifactStoreError, StoredObject, Verifier


class LocalArtifactStore(ArtifactStore):
    def __init__(self, root: str) -> None:
        if root.startswith("file://"):
            root = unquote(root[len("file://"):])
        self.root = os.path.abspath(root)
        self.uri = "file://" + self.root
        self._real_root = os.path.realpath(self.root)

    def path(self, key: str) -> str:
        """The file of ``key`` (proved to stay inside the folder)."""
        return inside(self.root, key)

    def put(self, key: str, chunks: Iterable[bytes], *, verify: Verifier | None = None,
            size_hint: int | None = None) -> StoredObject:
        dest = self.path(key)
        with self.observed("put"):
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            tmp = f"{dest}.part-{os.getpid()}-{os.urandom(4).hex()}"
            digest = hashlib.sha256()
            size = 0
            try:
                with open(tmp, "wb") as writer:
                    for chunk in chunks:
                        digest.update(chunk)
                        writer.write(chunk)
                        size += len(chunk)
                sha = digest.hexdigest()
                if verify is not None:
                    verify(size, sha)
                os.replace(tmp, dest)
            except BaseException:
                _unlink(tmp)
                raise
        return StoredObject(key, size, sha)

    def get(self, key: str) -> Iterator[bytes]:
        path = self.path(key)
        if not os.path.isfile(path):
            raise ArtifactNotFound(f"no file {key} in {self.root}")
        return read_chunks(path)

    def size(self, key: str) -> int | None:
        try:
            return os.stat(self.path(key)).st_size
        except OSError:
            return None

    def delete(self, key: str) -> None:
        _unlink(self.path(key))

    def move(self, source: str, dest: str) -> None:
        target = self.path(dest)
        with self.observed("move"):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(self.path(source), target)

    def list(self, prefix: str) -> Iterator[tuple[str, int, float]]:
        folder = os.path.dirname(prefix)
        base = os.path.join(self.root, folder) if folder else self.root
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                full = os.path.join(dirpath, name)
                key = os.path.relpath(full, self.root).replace(os.sep, "/")
                if key.startswith(prefix):
                    try:
                        stat = os.stat(full)
                    except OSError:
                        continue
                    yield key, stat.st_size, stat.st_mtime

    def location(self, key: str) -> str:
        return os.path.join(self.root, key)

    def key_of(self, location: str) -> str | None:
        if location.startswith("file://"):
            location = unquote(location[len("file://"):])
        if not os.path.isabs(location):
            return None
        real = os.path.realpath(location)
        if not real.startswith(self._real_root + os.sep):
            return None
        return os.path.relpath(real, self._real_root).replace(os.sep, "/")

    def check(self) -> None:
        probe = self.root
        while not os.path.exists(probe):
            parent = os.path.dirname(probe)
            if parent == probe:
                break
            probe = parent
        if (os.path.exists(self.root) and not os.path.isdir(self.root)) or not os.access(probe, os.W_OK | os.X_OK):
            raise ArtifactStoreError(f"the artifacts folder {self.root} is not writable")
        try:
            os.makedirs(self.root, exist_ok=True)
        except OSError as exc:
            raise ArtifactStoreError(f"cannot create the artifacts folder {self.root}: {exc.strerror}") from exc


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
