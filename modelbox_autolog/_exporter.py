"""The bounded queue and the background thread that moves records to a backend.

The training thread only appends records to a ``deque`` (atomic under the GIL, no lock).
One exporter thread per backend drains it in batches by size or time and hands each batch
to a small I/O thread, so a stalled backend never stops the exporter from watching memory:
when the backend is down, slow, or the queue passes its capacity, batches go to the local
journal (in order) and are replayed when the backend answers again. Nothing is dropped
unless the disk refuses too, and then it is counted and reported at exit.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout  # not the builtin before 3.11
from typing import Any

from ._config import Config
from ._records import Batch, new_id
from .backends import Backend, BackendError, BackendUnavailable, open_backend

log = logging.getLogger("modelbox_autolog")

JOURNAL_CHUNK = 1024  # records per journal line: each JSON encode holds the GIL well under 1 ms
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.1, 5.0
STALL_S = 0.5  # a backend write in flight this long, with the queue full, counts as stalled
BACKGROUND_MAX_WAIT_S = 2.0  # background work never waits longer than this for training to pause
HOLD_MAX_S = 2.0  # records queued during a fit are written at least this often


class FlushMarker:
    """Placed in the queue by ``flush``; set once everything before it is stored."""

    __slots__ = ("done", "stored", "dropped_before")

    def __init__(self, dropped_before: int) -> None:
        self.done = threading.Event()
        self.stored = False
        self.dropped_before = dropped_before


class Deferred:
    """Work to do on the exporter thread that yields records (e.g. capturing the environment).

    ``background=True``: heavy work (training metrics, serialising a model file) that waits,
    up to ``BACKGROUND_MAX_WAIT_S``, while an instrumented fit is running anywhere in the
    process, so it competes with training for neither the GIL nor a core. It always runs
    before a ``flush`` that follows it completes, and at shutdown.
    """

    __slots__ = ("produce", "background", "since")

    def __init__(self, produce: Callable[[], list[Any]], background: bool = False) -> None:
        self.produce = produce
        self.background = background
        self.since = time.monotonic()


class _IoWorker:
    """One daemon thread that runs backend calls, so the exporter can stop waiting for them."""

    def __init__(self, name: str) -> None:
        self._jobs: deque = deque()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        self._jobs.append((future, fn, args))
        self._ready.set()
        return future

    def stop(self) -> None:
        """The thread ends once the jobs already submitted are done (a stuck one keeps it, as a daemon)."""
        self._jobs.append(None)
        self._ready.set()

    def _run(self) -> None:
        _lower_priority()
        while True:
            self._ready.wait()
            self._ready.clear()
            while self._jobs:
                job = self._jobs.popleft()
                if job is None:
                    return
                future, fn, args = job
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:  # handed to the exporter, which decides
                    future.set_exception(exc)


class Exporter:
    """Moves records from the training thread's queue to one backend URI."""

    def __init__(self, uri: str, config: Config) -> None:
        self.uri = uri
        self.config = config
        self.queue: deque = deque()
        self.capacity = config.queue_capacity
        self.batch_size = min(config.batch_size, JOURNAL_CHUNK)
        self.wake_at = self.batch_size  # the hot path compares len(queue) with this
        self.stats = {"written": 0, "journaled": 0, "replayed": 0, "dropped": 0, "rejected": 0, "waits": 0}
        self.drop_reasons: dict[str, int] = {}
        self._reset_threading()
        _live.add(self)

    # ------------------------------------------------------------------ lifecycle
    def _reset_threading(self) -> None:
        self.writer = new_id()
        self._wake = threading.Event()
        self._space = threading.Event()
        self.opened = threading.Event()  # the backend was opened (or found unavailable) once
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._io: _IoWorker | None = None
        self._backend: Backend | None = None
        from ._journal import Journal  # imported when first needed: keeps `import` cheap

        self._journal = Journal(self.config.journal_dir, self.uri, self.writer)
        self._journal_markers: list[FlushMarker] = []
        self._down = False
        self._stuck: Future | None = None
        self._retry_at = 0.0
        self._backoff = BACKOFF_MIN_S
        self._stopping = False
        self._busy = False
        self._waiting: list[Deferred] = []  # background work held back while fits run
        self._held_since: float | None = None  # since when queued records wait for a fit to end
        self._flush_asked = False
        self._deadline = float("inf")
        self._reported: set[str] = set()

    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self.wake_at = self.batch_size
                thread = threading.Thread(target=self._loop, name="modelbox-exporter", daemon=True)
                thread.start()
                self._thread = thread  # published only once started: shutdown() may join it at once

    def warm_up(self, capture_env: bool) -> None:
        """Start the thread now (autolog() calls this): the backend is opened, its schema made
        and the environment read before the first fit, not during it."""
        self._warm_env = capture_env
        self._ensure_started()

    def after_fork_in_child(self) -> None:
        """A forked child (e.g. a DataLoader worker) starts empty: the parent exports its own records."""
        if self._backend is not None:
            _abandoned.append(self._backend)  # never close a connection the parent still uses
        self.queue.clear()
        self.stats = dict.fromkeys(self.stats, 0)
        self.drop_reasons = {}
        self._reset_threading()
        self.wake_at = 0  # the first record a child logs starts its own exporter thread

    # ------------------------------------------------------------------ training-thread side
    def submit(self, record: Any) -> None:
        self.queue.append(record)
        if len(self.queue) >= self.wake_at:
            self.pressure()

    def pressure(self) -> None:
        """Called by the hot path when the queue is long: wake the exporter, briefly wait if full."""
        if self._thread is None:
            self._ensure_started()
        if not self._wake.is_set():
            self._wake.set()
        if len(self.queue) > 6 * self.capacity and threading.current_thread() is not self._thread:
            # Last-resort back-pressure, bounded: the exporter spills to disk long before this
            # (at 1-4x capacity); only a disk slower than the training loop gets here. Wait a
            # moment for it, then carry on regardless: memory grows rather than data lost.
            self.stats["waits"] += 1
            self._space.clear()
            self._space.wait(0.005)

    def flush(self, timeout: float | None = None) -> bool:
        """True when every record submitted before this call is stored in the backend."""
        marker = FlushMarker(self.stats["dropped"])
        self.queue.append(marker)
        self._flush_asked = True
        self._ensure_started()
        self._wake.set()
        marker.done.wait(timeout)
        return marker.stored

    def shutdown(self, timeout: float) -> None:
        """Store what we can within ``timeout`` seconds; journal the rest; stop the thread."""
        if self._thread is None:
            if not self.queue:
                self._close_backend()
                return
            self._ensure_started()
        with self._start_lock:
            thread = self._thread
        if thread is None:
            return
        self._deadline = time.monotonic() + max(0.0, timeout)
        self._stopping = True
        self._wake.set()
        thread.join(timeout + 1.0)
        self._close_backend()
        if not thread.is_alive():
            # Stopped, not dead: a record logged after shutdown() starts a fresh thread, and
            # the exit handler will flush it too.
            self._backend = None
            self._thread = None
            self._stopping = False
            self._deadline = float("inf")
            self.wake_at = 0

    def _close_backend(self) -> None:
        if self._backend is not None:
            try:
                self._backend.close()
            except Exception:
                pass

    # ------------------------------------------------------------------ exporter thread
    def _loop(self) -> None:
        _lower_priority()
        self._io = _IoWorker("modelbox-io")
        try:
            self._open_backend()
        finally:
            self.opened.set()
        if getattr(self, "_warm_env", False):
            # Read once per process (packages, git) and cached, but as background work: a
            # fresh process's first fit, started right after autolog(), must not wait for it.
            self._waiting.append(Deferred(self._prefetch_environment, background=True))
        if self._backend is not None and self._journal.segments():
            self._recover()  # leftovers of earlier processes writing to this backend
        while True:
            timeout = self.config.flush_interval_s
            if self._down:
                timeout = max(0.01, min(timeout, self._retry_at - time.monotonic()))
            if not self._stopping and (not self.queue or self._hold_back()):
                self._wake.wait(timeout)
            self._wake.clear()
            if self._down and time.monotonic() >= self._retry_at:
                self._recover()
            if self._hold_back():
                continue
            self._drain()
            if self._stopping and not self.queue and not self._waiting:
                break
        if self._down and not self._past_deadline():
            self._recover()
        self._journal.seal()
        self._finish_report()
        self._io.stop()

    def _prefetch_environment(self) -> list[Any]:
        from ._context import capture_environment

        try:
            capture_environment()
        except Exception as exc:
            self._report("env", f"environment capture failed: {exc!r}")
        return []

    def _open_backend(self) -> bool:
        if self._backend is not None:
            return True
        try:
            self._backend = open_backend(self.uri)
            return True
        except Exception as exc:  # bad path, server gone: keep everything in the journal
            self._report("open", f"cannot open backend {self.uri}: {exc}; records are kept in {self._journal.path}")
            self._mark_down()
            return False

    def _hold_back(self) -> bool:
        """While an instrumented fit runs, queued records wait in memory, so writing them never
        competes with training for the GIL: until the fit ends, a batch's worth is queued, a
        flush asks, or ``HOLD_MAX_S`` passes (a long fit's metrics still arrive that often)."""
        if self._stopping or self._flush_asked or len(self.queue) >= self.wake_at or not _patching_busy():
            self._held_since = None
            return False
        now = time.monotonic()
        if self._held_since is None:
            self._held_since = now
        elif now - self._held_since >= HOLD_MAX_S:
            self._held_since = None
            return False
        return True

    def _past_deadline(self) -> bool:
        return self._stopping and time.monotonic() >= self._deadline

    def _take(self, limit: int) -> tuple[list[Any], list[FlushMarker]]:
        queue = self.queue
        n = min(len(queue), limit)
        popleft = queue.popleft
        items = [popleft() for _ in range(n)]
        records: list[Any] = []
        markers: list[FlushMarker] = []
        for item in items:
            cls = type(item)
            if cls is tuple:  # a metric point, as the hot path queues it
                records.append(item)
            elif cls is FlushMarker:
                markers.append(item)
            elif cls is Deferred:
                if item.background:
                    self._waiting.append(item)
                else:
                    records.extend(self._produce(item))
            else:
                records.append(item)
        return records, markers

    def _produce(self, item: Deferred) -> list[Any]:
        try:
            return list(item.produce())
        except Exception as exc:
            self._report("deferred", f"could not produce records: {exc!r}")
            return []

    def _run_waiting(self, force: bool) -> list[Any]:
        """Background work that may run now: all of it if forced or no fit is running, else the overdue."""
        if not self._waiting:
            return []
        force = force or self._stopping
        overdue = time.monotonic() - BACKGROUND_MAX_WAIT_S
        records: list[Any] = []
        keep: list[Deferred] = []
        for item in self._waiting:  # a fit that starts meanwhile holds back the items after it
            if force or item.since <= overdue or not _patching_busy():
                records.extend(self._produce(item))
            else:
                keep.append(item)
        self._waiting = keep
        return records

    def _drain(self) -> None:
        self._busy = True
        self._flush_asked = False  # cleared before taking: a marker queued later sets it again
        try:
            while True:
                records, markers = self._take(self.batch_size) if self.queue else ([], [])
                self._space.set()
                records.extend(self._run_waiting(force=bool(markers)))  # a flush waits for it
                if records:
                    batch = Batch(new_id(), self.writer, records, time.time())
                    self._deliver(batch)
                self._settle(markers)
                if not self.queue:
                    break
        finally:
            self._busy = False

    def settled(self) -> bool:
        """Nothing queued, in flight or waiting in the journal: a reader sees everything logged."""
        return (not self.queue and not self._busy and not self._waiting and not self._down
                and not self._journal.pending_records)

    def _settle(self, markers: list[FlushMarker]) -> None:
        if not markers:
            return
        if self._down or self._journal.pending_records:
            self._journal_markers.extend(markers)  # released when the journal is replayed
            if self._past_deadline():
                for marker in markers:
                    marker.done.set()
            return
        self._release(markers)

    def _release(self, markers: list[FlushMarker]) -> None:
        """Wake flush() callers: stored unless something was dropped since they asked."""
        dropped = self.stats["dropped"]
        for marker in markers:
            marker.stored = dropped == marker.dropped_before
            marker.done.set()

    def _deliver(self, batch: Batch) -> None:
        if self._down or self._journal.pending_records or self._past_deadline():
            self._to_journal(batch)
            return
        outcome = self._write_watching_memory(batch)
        if outcome == "ok":
            self.stats["written"] += len(batch.records)
            _remove_staged(batch)
        elif outcome == "unavailable":
            self._to_journal(batch)
            self._mark_down()
        elif outcome == "rejected":
            self._write_one_by_one(batch)

    def _write_watching_memory(self, batch: Batch) -> str:
        """Write on the I/O thread; journal instead if the queue overflows or time runs out meanwhile."""
        assert self._io is not None and self._backend is not None
        future = self._io.submit(self._backend.write, batch)
        started = time.monotonic()
        while True:
            try:
                future.result(timeout=0.05)
                return "ok"
            except FutureTimeout:
                # A backend that is merely slower than a burst keeps its place (memory allows up
                # to four times the capacity, ~170 MB of points); one that stalls with the queue
                # full, or a queue past that, sends records to disk instead.
                backlog = len(self.queue)
                stalled = backlog > self.capacity and time.monotonic() - started > STALL_S
                if stalled or backlog > 4 * self.capacity or self._past_deadline():
                    # The backend is too slow for the load: this batch and what follows go to the
                    # journal, in order. If the slow write lands after all, replay skips it.
                    self._report("slow", f"backend {self.uri} is slow; spilling to the journal {self._journal.path}")
                    self._to_journal(batch)
                    self._mark_down(stuck=future)
                    return "journaled"
            except BackendUnavailable as exc:
                self._report("unavailable", f"backend {self.uri} unavailable ({exc}); keeping records in {self._journal.path}")
                return "unavailable"
            except BackendError as exc:
                self._report("rejected", f"backend {self.uri} refused a batch ({exc}); retrying record by record")
                return "rejected"
            except Exception as exc:
                self._report("rejected", f"unexpected error writing to {self.uri}: {exc!r}; retrying record by record")
                return "rejected"

    def _write_one_by_one(self, batch: Batch) -> None:
        """Isolate the records a backend refuses; store the rest; count the refused ones."""
        assert self._backend is not None
        for index, record in enumerate(batch.records):
            single = Batch(f"{batch.id}.{index}", batch.writer, [record], batch.created_at)
            try:
                self._backend.write(single)
                self.stats["written"] += 1
                _remove_staged(single)
            except BackendUnavailable:
                self._to_journal(single)
                self._mark_down()
            except Exception as exc:
                self._drop(1, f"{type(record).__name__} refused by {self.uri}: {exc}")

    def _to_journal(self, batch: Batch) -> None:
        records = batch.records
        try:
            if len(records) <= JOURNAL_CHUNK:
                self._journal.append(batch)
            else:
                self._journal.append(*(
                    Batch(f"{batch.id}.j{start}", batch.writer, records[start:start + JOURNAL_CHUNK], batch.created_at)
                    for start in range(0, len(records), JOURNAL_CHUNK)
                ))
            self.stats["journaled"] += len(records)
        except OSError as exc:
            self._drop(len(records), f"the journal {self._journal.path} refused records: {exc.strerror or exc}")

    def _mark_down(self, stuck: Future | None = None) -> None:
        self._down = True
        self._stuck = stuck
        self._retry_at = time.monotonic() + self._backoff * random.uniform(0.5, 1.5)
        self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)

    def _recover(self) -> None:
        """Try the backend again: replay the journal in order; on success resume direct writes."""
        stuck = self._stuck
        if stuck is not None and not stuck.done():
            self._retry_at = time.monotonic() + self._backoff
            return
        self._stuck = None
        if not self._open_backend():
            return
        assert self._io is not None and self._backend is not None
        self._journal.seal()  # replay takes sealed segments; spills meanwhile open a new one
        backend = self._backend

        def write_and_clean(batch: Batch) -> None:
            backend.write(batch)
            _remove_staged(batch)

        future = self._io.submit(self._journal.replay, write_and_clean)
        try:
            while True:
                try:
                    replayed = future.result(timeout=0.05)
                    break
                except FutureTimeout:
                    if len(self.queue) > self.capacity:
                        self._spill_queue()
                    if self._past_deadline():
                        self._mark_down(stuck=future)
                        return
        except BackendUnavailable:
            self._mark_down()
            return
        except Exception as exc:
            self._report("replay", f"replaying the journal failed ({exc}); it stays in {self._journal.path}")
            self._mark_down()
            return
        self.stats["replayed"] += replayed
        self._journal.pending_records = max(0, self._journal.pending_records - replayed)
        if self._journal.has_own_pending():  # spilled while we replayed: go round again
            self._mark_down()
            self._retry_at = time.monotonic()
            return
        self._journal.pending_records = 0
        self._down = False
        self._backoff = BACKOFF_MIN_S
        markers, self._journal_markers = self._journal_markers, []
        self._release(markers)

    def _spill_queue(self) -> None:
        """Move the oldest queued records to the journal until the queue is half empty."""
        while len(self.queue) > self.capacity // 2:
            records, markers = self._take(JOURNAL_CHUNK)
            self._space.set()
            if records:
                self._to_journal(Batch(new_id(), self.writer, records, time.time()))
            self._journal_markers.extend(markers)

    # ------------------------------------------------------------------ reporting
    def _drop(self, count: int, reason: str) -> None:
        self.stats["dropped"] += count
        self.drop_reasons[reason] = self.drop_reasons.get(reason, 0) + count
        self._report("drop:" + reason, f"{count} record(s) could not be kept: {reason}")

    def _report(self, site: str, message: str) -> None:
        if site in self._reported:
            return
        self._reported.add(site)
        if not self.config.silent:
            log.warning("modelbox-autolog: %s", message)

    def _finish_report(self) -> None:
        pending = self._journal.pending_records
        if pending and not self.config.silent:
            print(
                f"modelbox-autolog: {pending} record(s) for {self.uri} are kept in the journal {self._journal.path}; "
                f"they are sent at the next start, or now with: modelbox sync {self._journal.path} --to {self.uri}",
                file=sys.stderr,
            )
        if self.stats["dropped"] and not self.config.silent:
            reasons = "; ".join(f"{n} x {r}" for r, n in self.drop_reasons.items())
            print(f"modelbox-autolog: {self.stats['dropped']} record(s) were dropped: {reasons}", file=sys.stderr)
        # Release anyone still waiting in flush(): nothing more will happen.
        for marker in self._journal_markers:
            marker.done.set()


def _patching_busy() -> bool:
    from ._patching import calls_in_progress

    return calls_in_progress() > 0


def _lower_priority() -> None:
    """Let the OS prefer the training threads: ours are background work (Linux: per thread)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


def _remove_staged(batch: Batch) -> None:
    """Delete our own temporary copies (console logs, serialised models) once they are stored."""
    for record in batch.records:
        files = getattr(record, "files", None)
        for item in files if files is not None else (record,):
            if getattr(item, "delete_source", False):
                try:
                    os.unlink(item.source_path)
                    os.rmdir(os.path.dirname(item.source_path))  # our staging folder, once empty
                except OSError:
                    pass


# ---------------------------------------------------------------------- registry
_live: weakref.WeakSet[Exporter] = weakref.WeakSet()
_abandoned: list[Any] = []
_exporters: dict[str, Exporter] = {}
_registry_lock = threading.Lock()


def exporter_for(uri: str, config: Config) -> Exporter:
    exporter = _exporters.get(uri)
    if exporter is None:
        with _registry_lock:
            exporter = _exporters.get(uri)
            if exporter is None:
                exporter = _exporters[uri] = Exporter(uri, config)
    return exporter


def all_exporters() -> list[Exporter]:
    return list(_exporters.values())


def flush_all(timeout: float | None = None) -> bool:
    deadline = None if timeout is None else time.monotonic() + timeout
    ok = True
    for exporter in all_exporters():
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        ok = exporter.flush(remaining) and ok
    return ok


_shutdowns = [0]  # how many times shutdown_all ran: a warm-up scheduled before one must not undo it


def shutdowns() -> int:
    return _shutdowns[0]


def shutdown_all(timeout: float) -> None:
    _shutdowns[0] += 1
    deadline = time.monotonic() + timeout
    for exporter in all_exporters():
        exporter.shutdown(max(0.0, deadline - time.monotonic()))


def _after_fork_in_child() -> None:
    global _registry_lock
    _registry_lock = threading.Lock()
    for exporter in list(_live):
        exporter.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
