"""Streaming file copies with sha256, and artifact names that can never escape their folder."""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar

from .._names import UnsafeName, safe_relpath

CHUNK = 1 << 20

__all__ = [
    "CHUNK", "SourceChanged", "UnsafeName", "copy_file", "counted", "inside", "open_source", "os_error_is_per_record",
    "read_chunks", "safe_relpath", "sha256_of", "transfer_progress", "write_stream",
]

# Errors that no retry fixes and that concern one file name or one source, not the store:
# the record is refused (dropped with its reason) and the rest of the batch flows.
PER_RECORD_ERRNOS = frozenset(
    getattr(errno, name) for name in ("ENAMETOOLONG", "EINVAL", "EISDIR", "ENOTDIR", "EILSEQ", "ELOOP", "EFBIG")
    if hasattr(errno, name)
)


class SourceChanged(OSError):
    """The file a record names changed, vanished or cannot be read since it was logged."""


def os_error_is_per_record(exc: OSError) -> bool:
    """Name too long, invalid name, a file where a folder is needed...: that record only.
    Disk full, read-only, permission denied, I/O errors: the store (transient)."""
    return isinstance(exc, SourceChanged) or exc.errno in PER_RECORD_ERRNOS


def open_source(path: str, fingerprint: list[int] | tuple[int, ...] | None = None):
    """Open a record's file for reading; ``fingerprint`` ([size, mtime_ns] at the call) must
    still match, else SourceChanged (the content the user logged is gone)."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError as exc:
        raise SourceChanged(errno.ENOENT, f"{path} was removed before it could be stored") from exc
    except OSError as exc:
        raise SourceChanged(exc.errno, f"{path} cannot be read: {exc.strerror}") from exc
    if fingerprint is not None and not _matches(os.fstat(handle.fileno()), fingerprint):
        handle.close()
        raise SourceChanged(errno.ESTALE, f"{path} changed after it was logged")
    return handle


def check_unchanged(handle, path: str, fingerprint: list[int] | tuple[int, ...] | None, copied: int | None = None) -> None:
    """After reading: the file still has the logged size and mtime (it was not rewritten meanwhile)."""
    if fingerprint is None:
        return
    if not _matches(os.fstat(handle.fileno()), fingerprint) or (copied is not None and copied != fingerprint[0]):
        raise SourceChanged(errno.ESTALE, f"{path} changed while it was being stored")


def _matches(st: os.stat_result, fingerprint: list[int] | tuple[int, ...]) -> bool:
    return st.st_size == fingerprint[0] and st.st_mtime_ns == fingerprint[1]
# Set around a copy or upload the caller wants to watch (a CLI progress bar): called with the
# size of each chunk read from a local file on its way into a store or to a server.
transfer_progress: ContextVar[Callable[[int], None] | None] = ContextVar("modelbox_transfer_progress", default=None)


def counted(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """``chunks``, reporting each one to ``transfer_progress`` when someone watches."""
    advance = transfer_progress.get()
    if advance is None:
        yield from chunks
        return
    for chunk in chunks:
        advance(len(chunk))
        yield chunk


def inside(root: str, relpath: str) -> str:
    """Join ``relpath`` under ``root`` and prove the result stays inside it."""
    root_abs = os.path.realpath(root)
    target = os.path.realpath(os.path.join(root_abs, safe_relpath(relpath)))
    if target != root_abs and not target.startswith(root_abs + os.sep):
        raise UnsafeName(f"{relpath!r} resolves outside {root}")
    return target


def copy_file(src: str, dst: str, fingerprint: list[int] | tuple[int, ...] | None = None) -> tuple[int, str]:
    """Copy ``src`` to ``dst`` in chunks (never reading it whole); return (bytes, sha256).

    Problems with the source raise ``SourceChanged`` (an OSError); with the destination, the
    OSError as it is. With a ``fingerprint``, a source rewritten since it was logged is refused.
    """
    with open_source(src, fingerprint) as reader:

        def chunks() -> Iterator[bytes]:
            while True:
                try:
                    chunk = reader.read(CHUNK)
                except OSError as exc:
                    raise SourceChanged(exc.errno, f"{src} cannot be read: {exc.strerror}") from exc
                if not chunk:
                    return
                yield chunk

        result = write_stream(chunks(), dst)
        try:
            check_unchanged(reader, src, fingerprint, result[0])
        except SourceChanged:
            try:
                os.unlink(dst)
            except OSError:
                pass
            raise
        return result


def write_stream(chunks: Iterable[bytes], dst: str) -> tuple[int, str]:
    """Write chunks atomically to ``dst`` (temp file + rename); return (bytes, sha256)."""
    os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    tmp = f"{dst}.part-{os.getpid()}"
    try:
        with open(tmp, "wb") as writer:
            for chunk in chunks:
                digest.update(chunk)
                writer.write(chunk)
                size += len(chunk)
        os.replace(tmp, dst)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return size, digest.hexdigest()


def read_chunks(path: str) -> Iterator[bytes]:
    with open(path, "rb") as reader:
        while chunk := reader.read(CHUNK):
            yield chunk


def sha256_of(path: str) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    for chunk in read_chunks(path):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()
