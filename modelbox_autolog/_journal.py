"""A local, append-only journal of batches the backend could not take (yet).

Segments are spool files (the same JSONL format as ``file://``) in a folder per backend URI.
The owning process holds an ``flock`` on the segment it appends to, so another process
replaying leftovers never takes a live segment. Replay is idempotent (batch ids).
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import os
from collections.abc import Callable

from ._codec import decode_batch, encode_batch
from ._records import Batch


def journal_folder(root: str, backend_uri: str) -> str:
    digest = hashlib.sha256(backend_uri.encode()).hexdigest()[:16]
    return os.path.join(root, digest)


class Journal:
    def __init__(self, root: str, backend_uri: str, writer: str) -> None:
        self.folder = journal_folder(root, backend_uri)
        self.writer = writer
        self.backend_uri = backend_uri
        self._segment = 0
        self._handle = None
        self.pending_records = 0  # records appended and not yet replayed by this process

    # ------------------------------------------------------------------ writing
    def _open(self):
        if self._handle is None:
            os.makedirs(self.folder, exist_ok=True)
            with open(os.path.join(self.folder, "BACKEND"), "w", encoding="utf-8") as note:
                note.write(self.backend_uri + "\n")
            self._segment += 1
            path = os.path.join(self.folder, f"spool-{self.writer}-{self._segment:06d}.jsonl")
            handle = open(path, "a", encoding="utf-8")
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._handle = handle
        return self._handle

    def append(self, *batches: Batch) -> None:
        """Durably append batches, one line each, one fsync (raises OSError when the disk refuses)."""
        handle = self._open()
        for batch in batches:
            handle.write(encode_batch(batch) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
        self.pending_records += sum(len(batch.records) for batch in batches)

    def seal(self) -> None:
        """Close the current segment so it can be replayed; the next append starts a new one."""
        if self._handle is not None:
            self._handle.close()  # releases the lock
            self._handle = None

    @property
    def path(self) -> str:
        return self.folder

    # ------------------------------------------------------------------ replay
    def segments(self) -> list[str]:
        return sorted(glob.glob(os.path.join(self.folder, "spool-*.jsonl")), key=lambda p: (os.path.getmtime(p), p))

    def has_own_pending(self) -> bool:
        """Records of this process still in the journal (an open or sealed segment of ours)."""
        if self._handle is not None:
            return True
        return bool(glob.glob(os.path.join(self.folder, f"spool-{self.writer}-*.jsonl")))

    def replay(self, write: Callable[[Batch], None]) -> int:
        """Send every sealed segment (ours and dead processes') through ``write``; delete each when done.

        Returns the number of records replayed. Raises whatever ``write`` raises (the segment
        stays, and a later replay re-sends it; the store skips batches it already has).
        Call ``seal`` first from the appending thread; segments still locked are left alone.
        """
        replayed = 0
        for path in self.segments():
            try:
                handle = open(path, encoding="utf-8")
            except FileNotFoundError:
                continue
            with handle:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live process is still appending to it
                for line in handle:
                    if not line.endswith("\n"):
                        break  # torn last line of a crashed writer: never acknowledged
                    batch = decode_batch(line)
                    write(batch)
                    replayed += len(batch.records)
                os.unlink(path)
        return replayed
