"""What ``log_artifact``/``log_model`` keep is the file as it was at the call.

Before the call returns, the file is cloned (a reflink, free on btrfs/XFS), or copied when it
is small (up to ``COPY_AT_CALL_BYTES``), or hard-linked (a file deleted or replaced by a new
one afterwards keeps its logged content); these snapshots live in the journal folder
(``staged/``) until stored. A larger file on another filesystem is remembered by size and
mtime and copied later: if it changed or vanished meanwhile, the record is refused with the
reason "the file changed or was removed before it could be stored" (counted as dropped, and
``flush()`` returns False). The caller's thread pays a ``stat`` and a link or a small copy.
"""

from __future__ import annotations

import errno
import os
import shutil
import time

from ._records import new_id

COPY_AT_CALL_BYTES = 16 << 20  # copied on the caller's thread up to this size (~5 ms from the page cache)
STAGED_FOLDER = "staged"
STALE_AFTER_S = 7 * 24 * 3600  # snapshots nobody claimed (their record was lost with its process)
_FICLONE = 0x40049409  # linux/fs.h


class Snapshot:
    """Where the logged content is: our staged copy (``delete_source``), or the file itself with its fingerprint."""

    __slots__ = ("path", "delete_source", "fingerprint", "how")

    def __init__(self, path: str, delete_source: bool, fingerprint: list[int] | None, how: str) -> None:
        self.path, self.delete_source, self.fingerprint, self.how = path, delete_source, fingerprint, how


def staging_root(journal_dir: str) -> str:
    return os.path.join(journal_dir, STAGED_FOLDER)


def take(source: str, journal_dir: str, copy_limit: int = COPY_AT_CALL_BYTES) -> Snapshot:
    """Snapshot ``source`` (an absolute path to a regular file); raises OSError if it cannot be read."""
    stat = os.stat(source)
    fingerprint = [stat.st_size, stat.st_mtime_ns]
    folder = os.path.join(staging_root(journal_dir), new_id())
    try:
        os.makedirs(folder, mode=0o700)
    except OSError:
        return Snapshot(source, False, fingerprint, "fingerprint")  # no room for a snapshot: check at copy time
    dest = os.path.join(folder, os.path.basename(source) or "file")
    try:
        how = _clone_or_copy(source, dest, stat.st_size, copy_limit)
        if how is None:
            os.link(source, dest)
            return Snapshot(dest, True, fingerprint, "link")  # same inode: an in-place rewrite still shows
        return Snapshot(dest, True, None, how)
    except OSError:
        _discard(dest, folder)
        return Snapshot(source, False, fingerprint, "fingerprint")


def _clone_or_copy(source: str, dest: str, size: int, copy_limit: int) -> str | None:
    """"reflink" or "copy" into ``dest``; None when the file is too large to copy here."""
    with open(source, "rb") as reader, open(dest, "wb") as writer:
        try:
            import fcntl

            fcntl.ioctl(writer.fileno(), _FICLONE, reader.fileno())
            return "reflink"
        except (ImportError, OSError):
            pass
        if size > copy_limit:
            writer.close()
            os.unlink(dest)
            return None
        before = os.fstat(reader.fileno())
        try:
            left = size
            while left > 0:
                sent = os.copy_file_range(reader.fileno(), writer.fileno(), left)
                if sent == 0:
                    break
                left -= sent
        except (AttributeError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            reader.seek(0)
            writer.seek(0)
            writer.truncate()
            shutil.copyfileobj(reader, writer, 1 << 20)
        after = os.fstat(reader.fileno())
        if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
            raise OSError(errno.EAGAIN, "the file changed while it was copied")
    return "copy"


def _discard(dest: str, folder: str) -> None:
    for remove, path in ((os.unlink, dest), (os.rmdir, folder)):
        try:
            remove(path)
        except OSError:
            pass


def sweep(journal_dir: str, now: float | None = None) -> int:
    """Remove snapshots older than a week (their records died with a process); returns how many."""
    root = staging_root(journal_dir)
    now = time.time() if now is None else now
    removed = 0
    try:
        names = os.listdir(root)
    except OSError:
        return 0
    for name in names:
        folder = os.path.join(root, name)
        try:
            if now - os.stat(folder).st_mtime < STALE_AFTER_S:
                continue
            shutil.rmtree(folder)
            removed += 1
        except OSError:
            pass
    return removed
