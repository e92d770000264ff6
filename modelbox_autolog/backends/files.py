"""Streaming file copies with sha256, and artifact names that can never escape their folder."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator

from .._names import UnsafeName, safe_relpath

__all__ = ["CHUNK", "UnsafeName", "copy_file", "inside", "read_chunks", "safe_relpath", "sha256_of", "write_stream"]

CHUNK = 1 << 20


def inside(root: str, relpath: str) -> str:
    """Join ``relpath`` under ``root`` and prove the result stays inside it."""
    root_abs = os.path.realpath(root)
    target = os.path.realpath(os.path.join(root_abs, safe_relpath(relpath)))
    if target != root_abs and not target.startswith(root_abs + os.sep):
        raise UnsafeName(f"{relpath!r} resolves outside {root}")
    return target


def copy_file(src: str, dst: str) -> tuple[int, str]:
    """Copy ``src`` to ``dst`` in chunks (never reading it whole); return (bytes, sha256)."""
    with open(src, "rb") as reader:
        return write_stream(iter(lambda: reader.read(CHUNK), b""), dst)


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
