"""The local journal: every batch is appended here before it is sent, and marked delivered after.

One folder per backend URI (a ``BACKEND`` file names it). The exporter appends each batch as
a frame to its own segment file (``seg-<writer>-<n>.mbj``), with one ``write`` system call,
so a process killed at any moment (SIGKILL, the OOM killer) leaves every batch it took from
its queue on disk, whole or not at all. When the backend has stored a batch, an ack frame
follows; a segment whose batches are all acked is deleted once the next one is in use.

The writing process holds an ``flock`` on each of its segments until they are deleted or it
exits, so another process (the next one writing to the same backend, or ``modelbox sync``)
replays only segments of processes that are gone, sends the batches that have no ack, and
deletes the segment. Stores skip batch ids they already have, so a batch that was stored
just before a crash, without its ack, is not stored twice.

Frame: kind (1 byte: ``M`` marshal batch, ``J`` JSON batch, ``A`` ack), payload length and
crc32 (little-endian uint32 each), payload. A torn or damaged frame ends the segment's
readable part. Segments of older versions (``spool-*.jsonl``, one JSON batch per line) are
replayed too. Files are synced to disk when a segment is closed (rotation, exit); until then
they survive the process's death but not the machine's.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import os
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ._codec import decode_batch, pack_batch, unpack_batch
from ._records import Batch

MAGIC = b"MBJ1"
HEADER = struct.Struct("<cII")
SEGMENT_BYTES = 32 << 20  # a segment is closed (and deleted once all acked) past this size
STAGED = "staged"  # files snapshotted at the call, under the journal root


def journal_folder(root: str, backend_uri: str) -> str:
    digest = hashlib.sha256(backend_uri.encode()).hexdigest()[:16]
    return os.path.join(root, digest)


def backend_of(folder: str) -> str | None:
    """The backend URI a journal folder belongs to (its ``BACKEND`` note), if any."""
    try:
        with open(os.path.join(folder, "BACKEND"), encoding="utf-8") as note:
            return note.read().strip() or None
    except OSError:
        return None


class JournalDamaged(Exception):
    """A frame that cannot be decoded (written by a newer version, or damaged)."""


@dataclass(eq=False)
class _Segment:
    path: str
    fd: int
    size: int = 0
    unacked: int = 0
    sealed: bool = False
    records: int = 0  # records of its unacked batches


@dataclass(eq=False)
class Entry:
    """Where one journaled batch is, to ack it or read it back."""

    segment: _Segment
    offset: int
    length: int
    is_marshal: bool
    batch_id: str
    records: int
    acked: bool = field(default=False)


def _frame(kind: bytes, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload), zlib.crc32(payload)) + payload


class Journal:
    """This process's segments for one backend, plus replay of leftovers of other processes."""

    def __init__(self, root: str, backend_uri: str, writer: str) -> None:
        self.root = root
        self.folder = journal_folder(root, backend_uri)
        self.writer = writer
        self.backend_uri = backend_uri
        self._number = 0
        self._current: _Segment | None = None
        self._open_segments: list[_Segment] = []
        self._lock = threading.Lock()  # the exporter appends, the sender acks
        self.pending_records = 0  # records journaled and not acked, in this process's segments

    @property
    def path(self) -> str:
        return self.folder

    # ------------------------------------------------------------------ writing
    def _new_segment(self) -> _Segment:
        if self._number == 0:
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
            with open(os.path.join(self.folder, "BACKEND"), "w", encoding="utf-8") as note:
                note.write(self.backend_uri + "\n")
        self._number += 1
        path = os.path.join(self.folder, f"seg-{self.writer}-{self._number:06d}.mbj")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, MAGIC)
        except BaseException:
            os.close(fd)
            _unlink(path)
            raise
        segment = _Segment(path, fd, len(MAGIC))
        self._open_segments.append(segment)
        return segment

    def append(self, batch: Batch) -> Entry:
        """Append one batch in one ``write`` (raises OSError when the disk refuses)."""
        payload, is_marshal = pack_batch(batch)
        frame = _frame(b"M" if is_marshal else b"J", payload)
        with self._lock:
            segment = self._current
            if segment is None or segment.size >= SEGMENT_BYTES:
                if segment is not None:
                    self._seal(segment)
                segment = self._current = self._new_segment()
            offset = segment.size
            try:
                written = os.write(segment.fd, frame)
            except OSError:
                self._give_back(segment, offset)
                raise
            if written != len(frame):  # a short write (disk full): the frame is torn
                segment.size += written
                self._give_back(segment, offset)
                raise OSError(28, "No space left on device (short write to the journal)")
            segment.size += written
            segment.unacked += 1
            segment.records += len(batch.records)
            self.pending_records += len(batch.records)
        return Entry(segment, offset, len(frame), is_marshal, batch.id, len(batch.records))

    def _give_back(self, segment: _Segment, offset: int) -> None:
        """A write the disk refused: cut the torn frame off (its room is free again for a smaller
        one); where that fails, close the segment there (a torn frame ends its readable part)."""
        try:
            os.ftruncate(segment.fd, offset)
            segment.size = offset
        except OSError:
            self._seal(segment)
            self._current = None

    def ack(self, entry: Entry) -> None:
        """The backend has the batch: note it (a replay skips it) and forget the segment once all are."""
        with self._lock:
            if entry.acked:
                return
            entry.acked = True
            segment = entry.segment
            if segment.fd < 0:
                return  # closed at exit meanwhile: it stays unacked, and a replay finds the batch stored
            segment.unacked -= 1
            segment.records -= entry.records
            self.pending_records -= entry.records
            if segment.unacked == 0 and segment.sealed:
                self._delete(segment)
                return
            try:
                segment.size += os.write(segment.fd, _frame(b"A", entry.batch_id.encode("ascii", "replace")))
            except OSError:
                pass  # only an optimisation: a replay would re-send it, and the store skip it

    def read(self, entry: Entry) -> Batch:
        """Read a journaled batch back (the exporter keeps only so many in memory)."""
        if entry.segment.fd < 0:
            raise OSError(9, "the journal segment is closed")
        data = os.pread(entry.segment.fd, entry.length, entry.offset)
        return _decode_frame(data, entry.segment.path)

    def _seal(self, segment: _Segment) -> None:
        segment.sealed = True
        if segment.unacked == 0:
            self._delete(segment)
        else:
            try:
                os.fsync(segment.fd)  # a closed segment with work in it survives the machine too
            except OSError:
                pass

    def _delete(self, segment: _Segment) -> None:
        _unlink(segment.path)
        _close(segment)
        if segment in self._open_segments:
            self._open_segments.remove(segment)
        if segment is self._current:
            self._current = None

    def close(self) -> int:
        """At exit: delete what is delivered, sync and release the rest; returns records left."""
        with self._lock:
            for segment in list(self._open_segments):
                if segment.unacked == 0:
                    self._delete(segment)
                else:
                    try:
                        os.fsync(segment.fd)
                    except OSError:
                        pass
                    _close(segment)  # releases the lock: the next process replays it
                    segment.sealed = True
            self._open_segments = []
            self._current = None
            return self.pending_records

    def forget(self) -> None:
        """In a forked child: drop the parent's segments without touching them (it still owns
        them). No lock taken: a parent thread may have held it at the fork, and the child is
        single-threaded here."""
        for segment in self._open_segments:
            _close(segment)  # our duplicate of the descriptor; the parent's lock stays
        self._open_segments = []
        self._current = None
        self.pending_records = 0

    # ------------------------------------------------------------------ leftovers
    def leftovers(self) -> list[str]:
        """Segments of other (dead) processes, and of older versions, oldest first."""
        mine = {segment.path for segment in self._open_segments}
        return [path for path in segment_files(self.folder) if path not in mine]

    def has_leftovers(self) -> bool:
        return bool(self.leftovers())


def segment_files(folder: str) -> list[str]:
    paths = glob.glob(os.path.join(folder, "seg-*.mbj")) + glob.glob(os.path.join(folder, "spool-*.jsonl"))

    def age(path: str) -> tuple[float, str]:
        try:
            return os.path.getmtime(path), path
        except OSError:
            return 0.0, path

    return sorted(paths, key=age)


def _decode_frame(data: bytes, where: str) -> Batch:
    kind, length, crc = HEADER.unpack_from(data)
    payload = data[HEADER.size:HEADER.size + length]
    if len(payload) != length or zlib.crc32(payload) != crc:
        raise JournalDamaged(f"{where}: a damaged frame")
    try:
        return unpack_batch(payload, kind == b"M")
    except (ValueError, EOFError, TypeError) as exc:
        raise JournalDamaged(f"{where}: {exc}") from exc


def read_frames(fd: int, path: str) -> Iterator[tuple[bytes, int, bytes]]:
    """(kind, offset, payload) of each whole frame; stops at a torn or damaged tail."""
    with os.fdopen(os.dup(fd), "rb") as handle:
        handle.seek(0)
        if handle.read(len(MAGIC)) != MAGIC:
            return
        offset = len(MAGIC)
        while True:
            header = handle.read(HEADER.size)
            if len(header) < HEADER.size:
                return
            kind, length, crc = HEADER.unpack(header)
            payload = handle.read(length)
            if len(payload) < length or zlib.crc32(payload) != crc or kind not in (b"M", b"J", b"A"):
                return  # torn last frame of a process killed mid-write (never acknowledged)
            yield kind, offset, payload
            offset += HEADER.size + length


class Replayed:
    """What replaying one segment did."""

    def __init__(self) -> None:
        self.batches = 0
        self.records = 0
        self.new = 0  # batches the target did not have
        self.present = 0  # batches it already had (stored before a crash, or by an earlier sync)
        self.skipped_acked = 0


def replay_segment(path: str, send: Callable[[Batch], bool | None], result: Replayed | None = None) -> Replayed | None:
    """Send the unacked batches of a segment nobody holds, in order, acking each; delete it after.

    ``send`` returns False for a batch the target already had. Returns None when the segment is
    locked by a live process (left alone). Whatever ``send`` raises propagates: the segment
    stays, with the acks so far, and a later replay resumes after them.
    """
    result = result if result is not None else Replayed()
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND)
    except FileNotFoundError:
        return result  # replayed and deleted meanwhile by someone else
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None  # a live process still owns it
        if not os.path.exists(path):
            return result  # deleted between our open and our lock
        if path.endswith(".jsonl"):
            _replay_jsonl(fd, path, send, result)
        else:
            frames = list(read_frames(fd, path))
            acked = {payload.decode("ascii", "replace") for kind, _offset, payload in frames if kind == b"A"}
            for kind, _offset, payload in frames:
                if kind == b"A":
                    continue
                try:
                    batch = unpack_batch(payload, kind == b"M")
                except (ValueError, EOFError, TypeError) as exc:
                    raise JournalDamaged(f"{path}: {exc}") from exc
                if batch.id in acked:
                    result.skipped_acked += 1
                    continue
                _count(result, batch, send(batch))
                try:
                    os.write(fd, _frame(b"A", batch.id.encode("ascii", "replace")))
                except OSError:
                    pass
        _unlink(path)
        return result
    finally:
        os.close(fd)


def _replay_jsonl(fd: int, path: str, send: Callable[[Batch], bool | None], result: Replayed) -> None:
    with os.fdopen(os.dup(fd), "r", encoding="utf-8") as handle:
        handle.seek(0)
        for line in handle:
            if not line.endswith("\n"):
                break  # torn last line of a crashed writer: never acknowledged
            try:
                batch = decode_batch(line)
            except ValueError as exc:
                raise JournalDamaged(f"{path}: {exc}") from exc
            _count(result, batch, send(batch))


def _count(result: Replayed, batch: Batch, new: bool | None) -> None:
    result.batches += 1
    result.records += len(batch.records)
    if new is False:
        result.present += 1
    else:
        result.new += 1


def _close(segment: _Segment) -> None:
    if segment.fd >= 0:
        try:
            os.close(segment.fd)
        except OSError:
            pass
        segment.fd = -1


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
