"""The bounded queue, the exporter thread that journals batches, and the sender that delivers them.

The training thread only appends records to a ``deque`` (atomic under the GIL, no lock).
The exporter thread drains it every ``flush_interval_s`` (or when a batch's worth is queued)
into batches and appends each to the local journal before anything else (one ``write``,
~60 ns per metric point), so a process killed at any moment loses at most what was logged
since the last drain. The sender thread delivers journaled batches to the backend in order
and acks each once stored; a backend that is down, slow, locked or refusing our token only
delays delivery (the batches wait in the journal, in memory up to ``queue_capacity``
records), and the next process or ``modelbox sync`` delivers what a dead process left.
A record the backend refuses for good is dropped alone, counted under its reason.
The sender also keeps the lease of this process's open runs (a heartbeat).
"""

from __future__ import annotations

import errno
import logging
import os
import random
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

# Imported here, not lazily on our threads: a fork while one of them imports a module for the
# first time would leave the child with that module's import lock held forever.
from ._config import Config
from ._journal import Journal, JournalDamaged, Replayed, replay_segment
from ._records import FINAL_STATUSES, Batch, RunStart, RunUpdate, new_id
from .backends import AuthRefused, Backend, BackendUnavailable, StoreUnwritable, open_backend
from .backends.delivery import deliver

log = logging.getLogger("modelbox_autolog")

MAX_BATCH = 8192  # records per batch: one journal frame, one backend transaction
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.1, 5.0
SLOW_BACKOFF_MAX_S = 30.0  # read-only, damaged, refused token: someone must act first
BACKGROUND_MAX_WAIT_S = 2.0  # background work never waits longer than this for training to pause
HOLD_MAX_S = 2.0  # records journaled during a fit are sent at least this often
EXIT_GRACE_S = 1.0  # past the shutdown budget: time to journal what is still queued
EXIT_SLOW_S = 10.0  # more, for an exporter thread doing its own bounded work that the OS runs slowly
BACKLOG_BATCHES = 4  # past this many batches queued in memory, the hot path lets the exporter run
PRESSURE_WAIT_S = 0.002  # at most this, once per batch of points, then it carries on regardless
SPLIT_MIN_RECORDS = 256  # on a full disk, a batch is journaled in halves down to this many records
BACKGROUND_NOT_PRODUCED = ("background items (a model file or training metrics each) were not produced: "
                           "the exit budget (MODELBOX_SHUTDOWN_TIMEOUT) ran out")


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
    before a ``flush`` that follows it completes, and at shutdown within the budget.
    """

    __slots__ = ("produce", "background", "since")

    def __init__(self, produce: Callable[[], list[Any]], background: bool = False) -> None:
        self.produce = produce
        self.background = background
        self.since = time.monotonic()


class _Pending:
    """A batch taken from the queue and journaled, waiting to be stored."""

    __slots__ = ("batch", "entry", "records", "markers", "late")

    def __init__(self, batch: Batch, entry: Any) -> None:
        self.batch: Batch | None = batch  # None: evicted from memory, read back from the journal
        self.entry = entry  # None: the journal refused it (kept in memory only)
        self.records = len(batch.records)
        self.markers: list[FlushMarker] = []
        self.late = False  # counted as journaled: the backend could not take it when it came


class Exporter:
    """Moves records from the training thread's queue to one backend URI."""

    def __init__(self, uri: str, config: Config) -> None:
        self.uri = uri
        self.config = config
        self.queue: deque = deque()
        self.capacity = config.queue_capacity
        self.batch_size = min(config.batch_size, MAX_BATCH)
        self.wake_at = self.batch_size  # the hot path compares len(queue) with this
        self.stats = {"written": 0, "journaled": 0, "replayed": 0, "dropped": 0, "rejected": 0, "waits": 0}
        self.drop_reasons: dict[str, int] = {}
        self.reject_reasons: dict[str, int] = {}
        self.journal_first = not uri.startswith("memory://")  # an in-process store has nothing to recover
        self._reset_threading()
        _live.add(self)

    # ------------------------------------------------------------------ lifecycle
    def _reset_threading(self) -> None:
        self.writer = new_id()
        self._wake = threading.Event()
        self._space = threading.Event()
        self._send_wake = threading.Event()
        self.opened = threading.Event()  # the backend was opened (or found unavailable) once
        self._start_lock = threading.Lock()
        self._lock = threading.Lock()  # outbox and flush markers (exporter and sender threads)
        self._thread: threading.Thread | None = None
        self._sender: threading.Thread | None = None
        self._backend: Backend | None = None
        self._verified = False
        self._journal = Journal(self.config.journal_dir, self.uri, self.writer)
        self.outbox: deque[_Pending] = deque()
        self._in_memory = 0  # records of outbox batches held in memory
        self._marked = 0  # flush markers waiting in the outbox: no holding back meanwhile
        self._leftover_markers: list[FlushMarker] = []  # flushes waiting for the leftovers' replay
        self._down = False
        self._down_reason: type | None = None
        self._retry_at = 0.0
        self._backoff = BACKOFF_MIN_S
        self._leftovers_due = True
        self._stopping = False
        self._sender_stop = threading.Event()  # a fresh one for each sender thread
        self._busy = False
        self._waiting: list[Deferred] = []  # background work held back while fits run
        self._behind = 0  # background items waiting behind the one being produced
        self._held_since: float | None = None  # since when the sender waits for a fit to end
        self._flush_asked = False
        self._deadline = float("inf")
        self._reported: set[str] = set()
        self._live_runs: dict[str, None] = {}  # runs this process opened and has not ended: kept alive
        self._heartbeat_at = 0.0
        self._gave_up = False  # shutdown stopped waiting for the exporter thread
        self._failures = 0  # times the backend was found unavailable
        self._journal_ok = True
        self._sender_in_call = False  # the sender is inside a backend call (which may hang)
        self._in_background = False  # the exporter thread runs background work (a model file, plots)
        self._produced: list[Any] = []  # records background work produced, not yet handed to the journal

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
        """Start the threads now (autolog() calls this): the backend is opened, its schema made
        and the environment read before the first fit, not during it."""
        self._warm_env = capture_env
        self._ensure_started()

    def after_fork_in_child(self) -> None:
        """A forked child (e.g. a DataLoader worker) starts empty: the parent exports its own
        records, keeps its journal segments and ends its own runs."""
        if self._backend is not None:
            _abandoned.append(self._backend)  # never close a connection the parent still uses
        self._journal.forget()  # the parent's segments: never written, acked or deleted from here
        self.queue.clear()
        self.stats = dict.fromkeys(self.stats, 0)
        self.drop_reasons = {}
        self.reject_reasons = {}
        self._reset_threading()
        self.wake_at = 0  # the first record a child logs starts its own exporter thread

    # ------------------------------------------------------------------ training-thread side
    def submit(self, record: Any) -> None:
        self.queue.append(record)
        if len(self.queue) >= self.wake_at:
            self.pressure()

    def pressure(self) -> None:
        """Called by the hot path when the queue is long: wake the exporter; past a few batches,
        let it run. A loop that logs faster than the exporter journals (a million points a second,
        nothing else) waits for it once per batch, up to 2 ms: what sits in memory,
        and what a SIGKILL could lose, stays a fraction of a second's worth. A stalled disk costs
        at most that wait per batch of points, never a stop."""
        if self._thread is None:
            self._ensure_started()
        if not self._wake.is_set():
            self._wake.set()
        backlog = len(self.queue)
        if backlog > BACKLOG_BATCHES * self.batch_size and threading.current_thread() is not self._thread:
            self.stats["waits"] += 1
            self.wake_at = backlog + self.batch_size  # next time after another batch (reset by the exporter)
            self._space.clear()
            self._space.wait(PRESSURE_WAIT_S)

    def reject(self, site: str, reason: str, message: str) -> None:
        """A value the user logged that cannot be stored as given: counted, said once per ``site``."""
        self.stats["rejected"] += 1
        self.reject_reasons[reason] = self.reject_reasons.get(reason, 0) + 1
        self._report("reject:" + site, message)

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
        """Store what we can within ``timeout`` seconds; what is left stays in the journal (or
        is counted as dropped when even that fails), and one line says so; stop the threads."""
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
        self._send_wake.set()
        thread.join(max(0.0, timeout) + EXIT_GRACE_S + 1.0)
        if thread.is_alive() and not self._in_background:
            # Not stuck in someone's code: journaling what is left (bounded work) on a thread the
            # OS runs rarely (a loaded machine; ours run at a lower priority). Giving up now would
            # count as lost records it is about to journal, and count them twice once it does.
            thread.join(EXIT_SLOW_S)
        if thread.is_alive():  # stuck in background work (or a hung disk): say what is not kept, and leave it
            self._gave_up = True
            queued = self._journal_queue_here()
            left = sum(p.records for p in list(self.outbox) if p.entry is None)
            if left:
                self._count_drop(left, "the exit budget (MODELBOX_SHUTDOWN_TIMEOUT) ran out before they were journaled",
                                 say=False)
            items = len(self._waiting) + sum(1 for item in queued if type(item) is Deferred and item.background)
            if items:
                self._count_drop(items, BACKGROUND_NOT_PRODUCED, say=False)
            self._print_exit_report()
            return
        self._close_backend()
        # Stopped, not dead: a record logged after shutdown() starts a fresh thread, and
        # the exit handler will flush it too.
        self._backend = None
        self._verified = False
        self._thread = None
        self._sender = None
        self._stopping = False
        self._deadline = float("inf")
        self.wake_at = 0

    def _journal_queue_here(self) -> list[Any]:
        """Shutdown stops waiting for an exporter thread stuck in background work: the records still
        queued (runs ended, points logged meanwhile) and what the pass's earlier items produced are
        journaled on this thread, so a slow model file or plot never costs them. Returns what was
        queued (the caller counts the rest)."""
        queued: list[Any] = []
        held, self._produced = self._produced, []  # produced by earlier items of the stuck pass
        while True:
            try:
                queued.append(self.queue.popleft())  # atomic: the exporter thread gets none of these
            except IndexError:
                break
        records: list[Any] = list(held)
        for item in queued:
            cls = type(item)
            if cls is Deferred:
                if not item.background:  # quick work (parameters, a console file): done here
                    try:
                        records.extend(item.produce())
                    except Exception as exc:
                        self._count_drop(1, f"background work failed ({type(exc).__name__})", say=False)
            elif cls is not FlushMarker:
                records.append(item)
        if records:
            parts = [(Batch(new_id(), self.writer, records, time.time()), None)]
            if self.journal_first:
                parts, _error = self._journal_parts(parts[0][0])
            refused = sum(len(part.records) for part, entry in parts if entry is None)
            self.stats["journaled"] += len(records) - refused
            if refused:
                self._count_drop(refused, "the exit budget (MODELBOX_SHUTDOWN_TIMEOUT) ran out before they were journaled",
                                 say=False)
        for item in queued:
            if type(item) is FlushMarker:
                item.done.set()  # never stored now: release whoever waits
        return queued

    def _close_backend(self) -> None:
        if self._backend is not None:
            try:
                self._backend.close()
            except Exception:
                pass

    def settled(self) -> bool:
        """Nothing queued, waiting to be sent or held back: a reader sees everything logged."""
        return not self.queue and not self.outbox and not self._busy and not self._waiting and not self._down

    # ------------------------------------------------------------------ exporter thread
    def _loop(self) -> None:
        # At the process's own priority, unlike the sender: journaling is what bounds what a
        # SIGKILL loses, and is cheap (one write per batch). At a lower priority a busy machine
        # (other processes, a local server storing our batches) left it unscheduled for most of a
        # second while the training thread kept logging, past the documented 0.5 s.
        if getattr(self, "_warm_env", False):
            # Read once per process (packages, git) and cached, but as background work: a
            # fresh process's first fit, started right after autolog(), must not wait for it.
            self._waiting.append(Deferred(self._prefetch_environment, background=True))
        self._sender_stop = stop = threading.Event()
        sender = threading.Thread(target=self._send_loop, args=(stop,), name="modelbox-io", daemon=True)
        sender.start()
        self._sender = sender
        while True:
            if not self._stopping and not self.queue:
                self._wake.wait(self.config.flush_interval_s)
            self._wake.clear()
            self._drain()
            if self._stopping and not self.queue and (not self._waiting or self._past_deadline()):
                break
        self._finish(sender)

    def _prefetch_environment(self) -> list[Any]:
        from ._context import capture_environment

        try:
            capture_environment()
        except Exception as exc:
            self._report("env", f"environment capture failed: {exc!r}")
        return []

    def _past_deadline(self) -> bool:
        return self._stopping and time.monotonic() >= self._deadline

    def _take(self, limit: int) -> tuple[list[Any], list[FlushMarker]]:
        queue = self.queue
        n = min(len(queue), limit)
        popleft = queue.popleft
        items = [popleft() for _ in range(n)]
        self.wake_at = self.batch_size  # back-pressure (see pressure) starts afresh
        records: list[Any] = []
        markers: list[FlushMarker] = []
        live = self._live_runs
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
                if cls is RunStart:
                    live[item.run_id] = None
                elif cls is RunUpdate and item.status in FINAL_STATUSES:
                    live.pop(item.run_id, None)
                records.append(item)
        return records, markers

    def _produce(self, item: Deferred) -> list[Any]:
        self._in_background = item.background
        try:
            return list(item.produce())
        except Exception as exc:  # counted: what it would have produced (a model file, metrics) is lost
            self._count_drop(1, f"background work failed ({type(exc).__name__})", f"background work failed: {exc!r}")
            return []
        finally:
            self._in_background = False

    def _run_waiting(self, force: bool) -> list[Any]:
        """Background work that may run now: all of it if forced or no fit is running, else the overdue."""
        if not self._waiting:
            return []
        force = force or self._stopping
        overdue = time.monotonic() - BACKGROUND_MAX_WAIT_S
        self._produced = []  # what this pass produced: shutdown journals it if it gives up on the pass
        keep: list[Deferred] = []
        todo = deque(self._waiting)
        while todo:  # a fit that starts meanwhile holds back the items after it
            if self._past_deadline():
                self._count_drop(len(todo) + len(keep), BACKGROUND_NOT_PRODUCED, say=False)
                todo.clear()
                keep = []
                break
            item = todo[0]
            if force or item.since <= overdue or not _patching_busy():
                if self._stopping and self._produced:  # at exit, what is produced is journaled before the next item
                    records, self._produced = self._produced, []
                    self._enqueue(Batch(new_id(), self.writer, records, time.time()))
                self._waiting = [*keep, *todo]  # not produced yet, this one included (shutdown may count them)
                self._behind = len(todo) - 1
                produced = self._produce(item)
                self._behind = 0
                self._produced.extend(produced)
            else:
                keep.append(item)
            todo.popleft()
        self._waiting = keep
        records, self._produced = self._produced, []
        return records

    def _drain(self) -> None:
        self._busy = True
        self._flush_asked = False  # cleared before taking: a marker queued later sets it again
        try:
            while True:
                records, markers = self._take(self.batch_size) if self.queue else ([], [])
                self._space.set()
                if records:  # journaled before any background work runs: that may take long, or hang
                    self._enqueue(Batch(new_id(), self.writer, records, time.time()))
                produced = self._run_waiting(force=bool(markers))  # a flush waits for it
                if produced:
                    self._enqueue(Batch(new_id(), self.writer, produced, time.time()))
                if markers:
                    self._attach(markers)
                if not self.queue:
                    break
        finally:
            self._busy = False

    def _enqueue(self, batch: Batch) -> None:
        """Journal a batch (first of all), then hand it to the sender."""
        parts: list[tuple[Batch, Any]] = [(batch, None)]
        if self.journal_first:
            parts, error = self._journal_parts(batch)
            self._journal_ok = error is None
            if error is not None:
                self._report("journal-write", f"the journal {self._journal.path} refused records ({error.strerror or error}); "
                                              "they go to the backend from memory, and a crash now would lose them")
        for part, entry in parts:
            pending = _Pending(part, entry)
            with self._lock:
                if self._down:
                    pending.late = True
                    self.stats["journaled"] += pending.records
                self.outbox.append(pending)
                self._in_memory += pending.records
                if self._in_memory > self.capacity and entry is not None and len(self.outbox) > 1:
                    pending.batch = None  # the journal has it: read back when its turn comes
                    self._in_memory -= pending.records
        self._send_wake.set()

    def _journal_parts(self, batch: Batch) -> tuple[list[tuple[Batch, Any]], OSError | None]:
        """Append a batch to the journal; on a full disk, as much of it as fits, in smaller batches
        (halves, down to ``SPLIT_MIN_RECORDS``): what the disk holds is kept whatever the batch
        sizes the timing made. Returns the parts in order with their entry (None: refused)."""
        try:
            return [(batch, self._journal.append(batch))], None
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or len(batch.records) < 2 * SPLIT_MIN_RECORDS:
                return [(batch, None)], exc
        half = len(batch.records) // 2
        first = Batch(new_id(), batch.writer, batch.records[:half], batch.created_at)
        second = Batch(new_id(), batch.writer, batch.records[half:], batch.created_at)
        parts, error = self._journal_parts(first)
        if parts[-1][1] is None:  # not even the first half fitted whole: the second will not either
            return [*parts, (second, None)], error
        more, error = self._journal_parts(second)
        return parts + more, error

    def _attach(self, markers: list[FlushMarker]) -> None:
        """A flush completes once the batches before it are stored, and what earlier processes
        left in the journal too (a reader then sees everything this backend was sent)."""
        with self._lock:
            if self.outbox:
                waiting = self.outbox[-1].markers
            elif self._leftovers_due:
                waiting = self._leftover_markers
            else:
                waiting = None
            if waiting is not None:
                waiting.extend(markers)
                self._marked += len(markers)
                self._send_wake.set()
                return
        self._release(markers)

    def _release(self, markers: list[FlushMarker]) -> None:
        """Wake flush() callers: stored unless something was dropped since they asked."""
        dropped = self.stats["dropped"]
        for marker in markers:
            marker.stored = dropped == marker.dropped_before
            marker.done.set()

    def _finish(self, sender: threading.Thread) -> None:
        """At shutdown: let the sender deliver until the deadline (a backend that is down gets one
        more try, not the whole budget), then keep the rest journaled and say so in one line."""
        failures = self._failures
        if self._down:
            self._retry_at = time.monotonic()  # one more try now
        while (self.outbox or self._leftovers_due) and sender.is_alive() and not self._past_deadline():
            if self._failures > failures:
                break  # it failed again: the journal keeps the rest
            self._send_wake.set()
            time.sleep(0.01)
        self._sender_stop.set()
        self._send_wake.set()
        if self._sender_in_call:  # in a backend call: a short wait, it may be stuck in a write
            sender.join(max(0.0, min(self._deadline - time.monotonic(), 0.5)) + 0.1)
        else:  # idle: it ends as soon as the OS runs it (a loaded machine may take a while)
            sender.join(max(0.0, self._deadline - time.monotonic()) + EXIT_GRACE_S)
        if sender.is_alive():  # stuck in a write: never wait for it (nor close what it uses)
            if self._backend is not None:
                _abandoned.append(self._backend)
            self._backend = None
        with self._lock:
            unjournaled = [p for p in self.outbox if p.entry is None]
        for pending in unjournaled:
            if not self.journal_first or pending.batch is None:
                self._count_drop(pending.records, "the exit budget (MODELBOX_SHUTDOWN_TIMEOUT) ran out before they were stored",
                                 say=False)
                continue
            # The journal refused them earlier: one more try (as much as fits).
            parts, error = self._journal_parts(pending.batch)
            refused = sum(len(part.records) for part, entry in parts if entry is None)
            if error is not None and refused:
                cause = errno.errorcode.get(error.errno or 0, "error") if error.errno else "error"
                self._count_drop(refused, f"neither the backend nor the journal ({cause}) could take them", say=False)
            with self._lock:
                if not pending.late:  # accounted for here: journaled (or dropped, just counted)
                    pending.late = True
                    self.stats["journaled"] += pending.records - refused
        with self._lock:
            for pending in self.outbox:
                if not pending.late and pending.entry is not None:
                    pending.late = True
                    self.stats["journaled"] += pending.records
            markers = [m for p in self.outbox for m in p.markers] + self._leftover_markers
            self._leftover_markers = []
            self.outbox.clear()
            self._in_memory = 0
            self._marked = 0
        self._journal.close()
        if not self._gave_up:
            self._print_exit_report()
        for marker in markers:  # nothing more will happen: release anyone still waiting in flush()
            marker.done.set()

    # ------------------------------------------------------------------ sender thread
    def _send_loop(self, stop: threading.Event) -> None:
        _lower_priority()
        self._leftovers_due = True  # (again after a restart: our own segments closed at shutdown are leftovers now)
        self._sender_in_call = True
        try:
            self._connect()
        finally:
            self.opened.set()
            self._sender_in_call = False
        while not stop.is_set():
            self._sender_in_call = False
            if self._past_deadline():
                break
            if self._down:
                wait = self._retry_at - time.monotonic()
                if wait > 0:
                    self._send_wake.wait(min(wait, 0.25))
                    self._send_wake.clear()
                    continue
                self._sender_in_call = True
                self._connect()
                continue
            self._sender_in_call = True
            if self._leftovers_due:
                self._replay_leftovers()
                continue
            self._heartbeat()
            pending = self.outbox[0] if self.outbox else None
            if pending is None or self._hold_back() or (self._stopping and self._waiting):
                # At exit, background work (model files, training metrics) goes first: what it
                # produces can only be kept once produced, while journaled batches keep anyway.
                self._sender_in_call = False
                self._send_wake.wait(self.config.flush_interval_s)
                self._send_wake.clear()
                continue
            self._send(pending)
        self._sender_in_call = False

    def _connect(self) -> None:
        """Open (and check) the backend; on failure stay down and retry with backoff."""
        try:
            if self._backend is None:
                self._backend = open_backend(self.uri)
                self.opened.set()  # open: autolog() and fork need not wait for the check below
            if not self._verified:
                self._backend.verify()
                self._verified = True
        except StoreUnwritable as exc:
            self._went_down(exc, f"backend {self.uri} must not be written: {exc}")
            return
        except Exception as exc:  # bad path, server gone: keep everything in the journal
            self._went_down(exc, f"cannot open backend {self.uri}: {exc}")
            return
        if self._down:
            self._down = False
            self._backoff = BACKOFF_MIN_S
            self._leftovers_due = True

    def _went_down(self, exc: BaseException, message: str) -> None:
        """The backend cannot take records now: they wait in the journal; say so once per cause."""
        kind = type(exc)
        if isinstance(exc, AuthRefused):
            message = (f"{exc}; the records are kept in the journal {self._journal.path} and are sent once the token is "
                       f"right: set MODELBOX_TOKEN, then run: modelbox sync {self._journal.path} --to {self.uri}")
        elif self.journal_first and self._journal_ok:
            message += f"; records are kept in the journal {self._journal.path}"
        else:
            message += "; records are kept in memory (the journal refuses them) and are lost if the process ends first"
        self._report(f"down:{kind.__name__}", message)
        self._failures += 1
        slow = isinstance(exc, (StoreUnwritable, AuthRefused))
        with self._lock:
            self._down = True
            self._down_reason = kind
            for pending in self.outbox:
                if not pending.late:
                    pending.late = True
                    self.stats["journaled"] += pending.records
        self._retry_at = time.monotonic() + self._backoff * random.uniform(0.5, 1.5)
        self._backoff = min(self._backoff * 2, SLOW_BACKOFF_MAX_S if slow else BACKOFF_MAX_S)

    def _hold_back(self) -> bool:
        """While an instrumented fit runs, journaled records wait before being sent, so writing
        them never competes with training for the GIL: until the fit ends, a batch's worth is
        waiting, a flush asks, or ``HOLD_MAX_S`` passes (a long fit's metrics still arrive)."""
        if (self._stopping or self._marked or self._flush_asked or self._in_memory >= self.batch_size
                or not _patching_busy()):
            self._held_since = None
            return False
        now = time.monotonic()
        if self._held_since is None:
            self._held_since = now
        elif now - self._held_since >= HOLD_MAX_S:
            self._held_since = None
            return False
        return True

    def _send(self, pending: _Pending) -> None:
        assert self._backend is not None
        batch = pending.batch
        if batch is None:
            try:
                batch = self._journal.read(pending.entry)
            except (OSError, JournalDamaged) as exc:
                self._count_drop(pending.records, f"the journal could not give them back ({exc})")
                self._done(pending, None)
                return
        refused = [0]

        def on_refused(record: Any, reason: str, detail: str) -> None:
            refused[0] += 1
            self._count_drop(1, reason, f"{type(record).__name__} refused by {self.uri}: {detail}")
            _remove_staged_record(record)

        try:
            deliver(self._backend, batch, on_refused)
        except BackendUnavailable as exc:
            state = "cannot be written" if isinstance(exc, StoreUnwritable) else "unavailable"
            self._went_down(exc, f"backend {self.uri} {state} ({exc})")
            return
        stored = pending.records - refused[0]
        self.stats["written"] += stored
        if pending.late:
            self.stats["replayed"] += stored
        _remove_staged(batch)
        self._done(pending, batch)

    def _done(self, pending: _Pending, batch: Batch | None) -> None:
        if pending.entry is not None:
            self._journal.ack(pending.entry)
        with self._lock:
            if self.outbox and self.outbox[0] is pending:
                self.outbox.popleft()
            if pending.batch is not None:
                self._in_memory -= pending.records
                pending.batch = None
            markers = pending.markers
            self._marked -= len(markers)
        if markers:
            self._release(markers)

    def _replay_leftovers(self) -> None:
        """Deliver what dead processes left in this backend's journal (before our own records)."""
        assert self._backend is not None
        backend = self._backend

        def send(batch: Batch) -> bool | None:
            def on_refused(record: Any, reason: str, detail: str) -> None:
                self._count_drop(1, reason, f"{type(record).__name__} (replayed) refused by {self.uri}: {detail}")
                _remove_staged_record(record)

            new = deliver(backend, batch, on_refused)
            _remove_staged(batch)
            return new

        for path in self._journal.leftovers():
            if self._sender_stop.is_set() or self._past_deadline():
                return
            result = Replayed()
            try:
                replay_segment(path, send, result)
            except BackendUnavailable as exc:
                self.stats["replayed"] += result.records
                self._went_down(exc, f"backend {self.uri} unavailable ({exc})")
                return
            except JournalDamaged as exc:
                self._report(f"damaged:{path}", f"a journal segment cannot be read ({exc}); it is kept as {path}.damaged")
                try:
                    os.replace(path, path + ".damaged")
                except OSError:
                    pass
            except OSError as exc:
                self._report("leftover", f"cannot replay {path}: {exc}")
            self.stats["replayed"] += result.records
        with self._lock:
            self._leftovers_due = False
            markers, self._leftover_markers = self._leftover_markers, []
            self._marked -= len(markers)
        self._release(markers)

    def _heartbeat(self) -> None:
        """Renew the lease of this process's open runs (a reader then knows it is alive)."""
        now = time.time()
        if now - self._heartbeat_at < self.config.heartbeat_s or not self._live_runs or self._backend is None:
            return
        self._heartbeat_at = now
        records = [RunUpdate(run_id, heartbeat=now) for run_id in list(self._live_runs)]
        try:
            self._backend.write(Batch(new_id(), self.writer, records, now))
        except Exception:
            pass  # a missed beat is harmless; a backend that stays down shows in the next write

    # ------------------------------------------------------------------ reporting
    def _count_drop(self, count: int, reason: str, message: str | None = None, say: bool = True) -> None:
        """Count records lost for ``reason`` (said once per reason; at exit the exit line says it)."""
        if self._gave_up and threading.current_thread() is self._thread:
            return  # shutdown stopped waiting and counted everything left then: never count twice
        self.stats["dropped"] += count
        self.drop_reasons[reason] = self.drop_reasons.get(reason, 0) + count
        if say:
            self._report("drop:" + reason, message or f"{count} record(s) could not be kept: {reason}")

    def _report(self, site: str, message: str) -> None:
        if site in self._reported:
            return
        self._reported.add(site)
        if not self.config.silent:
            log.warning("modelbox-autolog: %s", message)

    def _print_exit_report(self) -> None:
        """One line at exit: what is kept in the journal for later, and what could not be kept."""
        if self.config.silent:
            return
        parts = []
        pending = self._journal.pending_records
        if pending:
            parts.append(
                f"{pending} record(s) for {self.uri} are kept in the journal {self._journal.path}; they are sent at the "
                f"next start, or now with: modelbox sync {self._journal.path} --to {self.uri}"
            )
        if self.stats["dropped"]:
            top = sorted(self.drop_reasons.items(), key=lambda item: -item[1])
            reasons = "; ".join(f"{n} x {r}" for r, n in top[:5])
            more = f"; and {len(top) - 5} other reason(s)" if len(top) > 5 else ""
            parts.append(f"{self.stats['dropped']} record(s) were dropped: {reasons}{more}")
        if parts:
            print("modelbox-autolog: " + " | ".join(parts), file=sys.stderr)


def _patching_busy() -> bool:
    from ._patching import calls_in_progress

    return calls_in_progress() > 0


def _lower_priority() -> None:
    """Let the OS prefer the training threads: ours are background work (Linux: per thread)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


def _remove_staged_record(record: Any) -> None:
    """Delete our own temporary copies (console logs, serialised models, snapshots) a record named."""
    files = getattr(record, "files", None)
    for item in files if files is not None else (record,):
        if getattr(item, "delete_source", False):
            try:
                os.unlink(item.source_path)
                os.rmdir(os.path.dirname(item.source_path))  # our staging folder, once empty
            except OSError:
                pass


def _remove_staged(batch: Batch) -> None:
    """Delete the staged copies of a batch's records once they are stored."""
    for record in batch.records:
        if type(record) is not tuple:
            _remove_staged_record(record)


# ---------------------------------------------------------------------- registry
_live: weakref.WeakSet[Exporter] = weakref.WeakSet()


def background_outlook() -> tuple[int, float | None] | None:
    """Asked by background work while it runs on an exporter thread, so that optional work (drawing
    plots) can yield when the background falls behind: how many background items wait behind the
    current one, and the seconds left in the exit budget (None while the process is not exiting).
    None on any other thread."""
    current = threading.current_thread()
    for exporter in list(_live):
        if exporter._thread is current:
            left = max(0.0, exporter._deadline - time.monotonic()) if exporter._stopping else None
            return exporter._behind, left
    return None


def current_exporter() -> Exporter | None:
    """The exporter whose thread is running this (background work asks where its records go)."""
    current = threading.current_thread()
    for exporter in list(_live):
        if exporter._thread is current:
            return exporter
    return None


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
# Held while shutdown_all counts itself and lists the exporters, and while a warm-up checks that
# count and starts an exporter: a warm-up then either starts before (and is stopped with the
# rest) or sees the shutdown and starts nothing. Without it, a warm-up thread scheduled late
# (a loaded machine) could start threads right after shutdown() returned, that nothing stops.
_lifecycle_lock = threading.Lock()


def shutdowns() -> int:
    return _shutdowns[0]


def start_unless_shut_down(scheduled: int, start: Callable[[], Any]) -> Any:
    """Run ``start`` (which creates and starts an exporter) unless shutdown_all ran since ``scheduled``."""
    with _lifecycle_lock:
        if _shutdowns[0] != scheduled:
            return None
        return start()


def shutdown_all(timeout: float) -> None:
    with _lifecycle_lock:
        _shutdowns[0] += 1
        exporters = all_exporters()
    deadline = time.monotonic() + timeout
    for exporter in exporters:
        exporter.shutdown(max(0.0, deadline - time.monotonic()))
    plots = sys.modules.get("modelbox_autolog.integrations._plot_worker")
    if plots is not None:  # diagnostic plots still to draw go to a worker that outlives this process
        try:
            plots.at_exit()
        except Exception:
            pass


_held_for_fork: list[Any] = []


def _before_fork() -> None:
    """Let no backend be mid-transaction when the process forks: a child that opens the same SQLite
    file would otherwise inherit the parent's lock state and wait forever. Waits for at most one
    write per backend (bounded: a stuck one is not waited for)."""
    for exporter in list(_live):
        if exporter._thread is not None and not exporter.opened.is_set():
            exporter.opened.wait(10)  # still opening (importing, creating the schema): let it finish first
        lock = exporter._backend.fork_lock() if exporter._backend is not None else None
        if lock is not None and lock.acquire(timeout=10):
            _held_for_fork.append(lock)


def _release_fork_locks() -> None:
    while _held_for_fork:
        try:
            _held_for_fork.pop().release()
        except RuntimeError:
            pass


def _after_fork_in_child() -> None:
    global _registry_lock
    _release_fork_locks()
    _registry_lock = threading.Lock()
    for exporter in list(_live):
        exporter.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_release_fork_locks, after_in_child=_after_fork_in_child)
