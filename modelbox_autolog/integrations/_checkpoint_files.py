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
from typing import Any

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


# ---------------------------------------------------------------------- the model size limit
def model_limit_bytes() -> int:
    """``max_model_mb`` in bytes: an autologged model above it is recorded as an event, not copied."""
    from .. import _config

    return int(_config.current().max_model_mb * 2**20)


def log_model_within_limit(run: Any, path: str, *, name: str, framework: str, **kwargs: Any) -> Any:
    """``run.log_model``, unless the file (or folder) is above ``max_model_mb``: then a
    ``model_not_logged`` event with the size, and our own staged copy is deleted."""
    size = file_bytes(path)
    limit = model_limit_bytes()
    if size is None or size <= limit:
        return run.log_model(path, name=name, framework=framework, **kwargs)
    source = (kwargs.get("metadata") or {}).get("path") or path  # the user's file, not our staged copy
    reason = f"{_mb(size)} is above max_model_mb ({_mb(limit)})"
    run.log_event("model_not_logged", reason=reason, path=source, bytes=size, model=name, framework=framework)
    run._warn_once("max_model_mb", f"model {name!r}: {reason}; recorded as an event, not stored")
    if kwargs.get("_staged"):
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            _remove(path)
    return None


def _mb(size: float) -> str:
    return f"{size / 2**20:.4g} MB"


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass
