"""``file:///DIR``: an append-only JSONL spool for offline runs, replayed by ``modelbox sync``.

Each process appends whole batches, one line each, to its own ``spool-<writer>.jsonl``; files
that records name are copied under ``DIR/files`` so the spool is self-contained. Replaying is
idempotent because stores skip batch ids they have already applied.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterator
from dataclasses import replace

from .._codec import decode_batch, encode_batch
from .._records import Artifact, Batch, ModelRecord
from .base import Backend, BackendError, BackendUnavailable, RecordRefused, Store
from .files import SourceChanged, UnsafeName, copy_file, os_error_is_per_record, safe_relpath
from .uris import spool_dir

REMOVED_REASON = "the file changed or was removed before it could be stored"


class SpoolBackend(Backend):
    scheme = "file"

    def __init__(self, uri: str, *, directory: str | None = None, copy_files: bool = True) -> None:
        super().__init__(uri)
        self.directory = os.path.abspath(directory or spool_dir(uri))
        self.copy_files = copy_files
        try:
            os.makedirs(self.directory, exist_ok=True)
        except OSError as exc:
            raise BackendError(f"cannot create the spool folder {self.directory}: {exc.strerror}") from exc
        if not os.access(self.directory, os.W_OK):
            raise BackendError(f"the spool folder {self.directory} is not writable")
        self._handle = None
        self._writer = None

    def _file_for(self, writer: str):
        if self._handle is None or self._writer != writer:
            if self._handle is not None:
                self._handle.close()
            path = os.path.join(self.directory, f"spool-{writer}.jsonl")
            self._handle = open(path, "a", encoding="utf-8")
            self._writer = writer
        return self._handle

    def write(self, batch: Batch) -> bool:
        if self.copy_files:
            batch = self._with_local_files(batch)
        line = encode_batch(batch)
        try:
            handle = self._file_for(batch.writer)
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        except OSError as exc:
            raise BackendUnavailable(f"cannot append to the spool in {self.directory}: {exc}") from exc
        return True  # a spool appends: replays skip what a store already has

    def _with_local_files(self, batch: Batch) -> Batch:
        records = []
        refusals: list[tuple[object, str, str]] = []
        for record in batch.records:
            try:
                if isinstance(record, Artifact):
                    rel = f"files/{record.id}/{safe_relpath(record.name)}"
                    self._copy(record.source_path, rel, record.fingerprint)
                    record = replace(record, source_path=rel, delete_source=False, fingerprint=None)
                elif isinstance(record, ModelRecord):
                    files = []
                    for f in record.files:
                        rel = f"files/{record.id}/{safe_relpath(f.name)}"
                        self._copy(f.source_path, rel, f.fingerprint)
                        files.append(replace(f, source_path=rel, delete_source=False, fingerprint=None))
                    record = replace(record, files=files)
            except SourceChanged as exc:
                refusals.append((record, REMOVED_REASON, str(exc.strerror or exc)))
                continue
            except (UnsafeName, OSError) as exc:
                refusals.append((record, "unusable file name", str(exc)))
                continue
            records.append(record)
        if refusals:
            raise RecordRefused(refusals)
        return replace(batch, records=records)

    def _copy(self, source: str, rel: str, fingerprint: list[int] | None = None) -> None:
        try:
            copy_file(source, os.path.join(self.directory, rel), fingerprint)
        except SourceChanged:
            raise
        except OSError as exc:
            if os_error_is_per_record(exc):
                raise
            raise BackendUnavailable(f"cannot copy {source} into the spool: {exc}") from exc

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def store(self) -> Store:
        """A read-only view: the spool replayed into a private in-memory store."""
        from .memory import MemoryStore

        view = MemoryStore(f"memory://spool-view-{id(self)}")
        replay(self.directory, view)
        view.read_only = (f"{self.uri} is a spool: it can be read, not changed (aliases, tags, archive, delete); "
                          f"modelbox sync {self.directory} --to STORE_URI, then change it there")
        return view


def spool_files(directory: str) -> list[str]:
    return sorted(glob.glob(os.path.join(directory, "spool-*.jsonl")), key=lambda p: (os.path.getmtime(p), p))


def read_spool(directory: str) -> Iterator[Batch]:
    """Every batch in a spool folder, oldest file first; a torn last line is skipped."""
    for path in spool_files(directory):
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.endswith("\n"):
                    break  # written by a process that died mid-line; the rest is not a batch
                try:
                    yield decode_batch(line, files_root=directory)
                except ValueError as exc:
                    raise BackendError(f"{path}:{number} is not a spool batch: {exc}") from exc


def count_batches(directory: str) -> int:
    """How many batches a spool folder holds (its complete lines), without decoding them."""
    total = 0
    for path in spool_files(directory):
        with open(path, "rb") as handle:
            total += sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    return total


def replay(directory: str, target: Backend, progress: Callable[[int], None] | None = None,
           on_refused: Callable[[object, str, str], None] | None = None) -> int:
    """Write every spooled batch to ``target``; returns how many batches were read. Records the
    target refuses for good are skipped (``on_refused`` hears of each) and the rest flows."""
    from .delivery import deliver

    if not os.path.isdir(directory):
        raise BackendError(f"{directory} is not a spool folder")
    count = 0
    for batch in read_spool(directory):
        deliver(target, batch, on_refused or (lambda record, reason, detail: None))
        count += 1
        if progress:
            progress(count)
    return count
