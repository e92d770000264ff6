"""The artifact-store interface: where the bytes of artifacts and model files live.

A metadata store (SQLite, PostgreSQL) records *which* files a run or model has; an artifact
store holds their bytes under keys such as ``runs/RUN/ARTIFACT/NAME``. Both are chosen by URI
and composed, so any metadata store can keep its files in any artifact store.
"""

from __future__ import annotations

import abc
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

from ..backends.base import BackendError, BackendUnavailable, NotFound
from ..backends.files import CHUNK, SourceChanged, check_unchanged, counted, open_source

# Called after every request to the store: (operation, seconds, error kind or None).
Observer = Callable[[str, float, "str | None"], None]
# Called once the whole stream is received, before it becomes visible: (bytes, sha256); raise to refuse.
Verifier = Callable[[int, str], None]


class StoredObject(NamedTuple):
    key: str
    bytes: int
    sha256: str


class ArtifactStoreError(BackendError):
    """A permanent problem with an artifact store (missing bucket, no permission, bad URI)."""


class ArtifactStoreUnavailable(BackendUnavailable):
    """A transient problem (endpoint down, timeout): retry later."""


class ArtifactNotFound(NotFound):
    """No object under that key."""


class ArtifactStore(abc.ABC):
    """Bytes by key. Writes are atomic: an object is visible whole, or not at all."""

    uri: str
    observer: Observer | None = None

    @abc.abstractmethod
    def put(self, key: str, chunks: Iterable[bytes], *, verify: Verifier | None = None,
            size_hint: int | None = None) -> StoredObject:
        """Stream ``chunks`` to ``key`` with bounded memory; (key, bytes, sha256). When ``verify``
        raises (or the stream does), nothing becomes visible and partial data is discarded.
        ``size_hint`` (the announced size) lets a store choose its part size."""

    def put_file(self, key: str, path: str, fingerprint: list[int] | None = None) -> StoredObject:
        """Copy a local file to ``key``. A source that is gone, unreadable, or (with a
        ``fingerprint``, its [size, mtime_ns] when logged) rewritten since, raises SourceChanged
        and stores nothing."""
        with open_source(path, fingerprint) as reader:

            def chunks() -> Iterator[bytes]:
                while True:
                    try:
                        chunk = reader.read(CHUNK)
                    except OSError as exc:
                        raise SourceChanged(exc.errno, f"{path} cannot be read: {exc.strerror}") from exc
                    if not chunk:
                        return
                    yield chunk

            def unchanged(size: int, _sha: str) -> None:
                check_unchanged(reader, path, fingerprint, size)

            return self.put(key, counted(chunks()), verify=unchanged, size_hint=os.fstat(reader.fileno()).st_size)

    @abc.abstractmethod
    def get(self, key: str) -> Iterator[bytes]:
        """The object's bytes in chunks; ArtifactNotFound when there is none."""

    @abc.abstractmethod
    def size(self, key: str) -> int | None:
        """The object's size, or None when there is no object under ``key``."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object (no error when it is already gone)."""

    def move(self, source: str, dest: str) -> None:
        """Rename an object within the store (implementations do it without a round trip)."""
        self.put(dest, self.get(source))
        self.delete(source)

    @abc.abstractmethod
    def list(self, prefix: str) -> Iterator[tuple[str, int, float]]:
        """(key, bytes, modified time) of the objects whose key starts with ``prefix``."""

    @abc.abstractmethod
    def location(self, key: str) -> str:
        """What readers see as ``path_or_uri`` (a local path, an ``s3://`` URI)."""

    @abc.abstractmethod
    def key_of(self, location: str) -> str | None:
        """The key of a ``location`` of this store; None when it belongs elsewhere."""

    def presign(self, key: str, expires_s: int = 3600) -> str | None:
        """A URL anyone holding it may GET for ``expires_s`` seconds; None when unsupported."""
        return None

    def check(self) -> None:
        """Prove the store is reachable and writable; raise with a precise message otherwise."""

    def read_file(self, location: str) -> Iterator[bytes]:
        key = self.key_of(location)
        if key is None:
            raise ArtifactNotFound(f"{location} is not a file of {self.uri}")
        return self.get(key)

    def close(self) -> None:
        pass

    @contextmanager
    def observed(self, operation: str):
        """Time one request and report it (and its failure kind) to ``observer``."""
        start = time.perf_counter()
        error = None
        try:
            yield
        except ArtifactNotFound:
            raise  # an answer (a probe for a key that is not there), not a failure
        except BaseException as exc:
            error = _error_kind(exc)
            raise
        finally:
            if self.observer is not None:
                self.observer(operation, time.perf_counter() - start, error)


def _error_kind(exc: BaseException) -> str:
    """A short label for a failed request: the S3 error code when there is one (AccessDenied,
    NoSuchBucket, SlowDown...), else the exception type of the underlying failure."""
    cause = exc.__cause__ or exc
    response = getattr(cause, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(cause).__name__


def sha256_of_object(store: ArtifactStore, key: str) -> str:
    """Hash a stored object by reading it back (rare: a retried batch whose source is gone)."""
    import hashlib

    digest = hashlib.sha256()
    for chunk in store.get(key):
        digest.update(chunk)
    return digest.hexdigest()
