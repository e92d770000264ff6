"""Checkpoint files as integrations see them: their size, and a private copy of small ones.

Training loops often overwrite one checkpoint path every epoch (or delete it, as Keras'
``BackupAndRestore`` does), while the exporter copies files later, off the training thread.
A file up to ``SNAPSHOT_LIMIT_BYTES`` is therefore copied at once into a staging folder that
the exporter deletes once stored; a bigger one is logged by path, and the store keeps what is
there when it copies.
"""

from __future__ import annotations

import os
import shutil
import tempfile

SNAPSHOT_LIMIT_BYTES = 64 * 1024 * 1024


def file_bytes(path: str | None) -> int | None:
    """Size of a file, or of every file in a folder (a Keras or Lightning checkpoint dir)."""
    if not path:
        return None
    try:
        if os.path.isdir(path):
            return sum(os.path.getsize(os.path.join(folder, name)) for folder, _dirs, names in os.walk(path) for name in names)
        return os.path.getsize(path)
    except OSError:
        return None


def snapshot(path: str, size: int | None) -> tuple[str, bool]:
    """(file to log, staged): a private copy of a small file, the path itself otherwise."""
    if size is None or size > SNAPSHOT_LIMIT_BYTES or not os.path.isfile(path):
        return path, False
    folder = tempfile.mkdtemp(prefix="modelbox-ckpt-")
    target = os.path.join(folder, os.path.basename(path) or "checkpoint")
    try:
        shutil.copyfile(path, target)
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)
        return path, False
    return target, True
