"""The detached plot worker: diagnostic plots are drawn and delivered by a process of their own,
so the training process never waits for them, neither between fits nor at exit.

Jobs. The exporter thread computes a fit's plot data (confusion matrix, curves, a residual
sample: milliseconds) and writes it as a job file into ``<the backend's journal folder>/plots/``
(written whole, then renamed: a job is complete or absent), with the ids its artifacts will have.

The worker. One per training process, started when that process's oldest job has waited
``START_DELAY_S`` or at its exit, whichever comes first (a short script's training never shares
the machine with it), or at once by ``flush(plots=True)``. It runs in a session of its own, at a
lower OS priority, with the parent's ``sys.path``. It claims a job (``flock``), draws the figures
into the journal's staging folder and hands the artifacts to an exporter of its own for the same
backend: journaled first, then delivered, like any record of the training process. The job file
is deleted once they are stored (or journaled, when the backend is down: the next process or
``modelbox sync`` delivers them). It learns new jobs from its stdin (one path a line) and exits
when that closes (the training process ended) and no job is left, or after ``IDLE_EXIT_S``
without work.

Nothing lost. A job whose worker died stays as an unlocked file: the next worker drawing for that
backend draws it (artifact ids were chosen with the job, so a job drawn twice is stored once). A
job that cannot be drawn says why on its run (tag ``plots_skipped``, event ``plots_not_logged``).

In process. A ``memory://`` backend (no other process can reach it), or no worker that can start:
the figures are drawn on the exporter thread, as background work.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import select
import subprocess
import sys
import threading
import time
from collections import deque
from typing import Any

from .._journal import journal_folder
from .._records import Artifact, new_id
from .._snapshots import staging_root

NICENESS = 10  # the worker's OS priority, below training's
START_DELAY_S = 3.0  # a job waits this long for the worker to start (unless the process exits first)
IDLE_EXIT_S = 30.0  # a worker with nothing to do for this long exits (the next job starts another)
POLL_S = 1.0  # how often an idle worker looks for jobs it was not told about (a dead worker's)
JOB_FLUSH_TIMEOUT_S = 60.0  # a job's artifacts wait this long to be stored (else they stay journaled)
JOB_SUFFIX = ".job"
EXIT_WAIT_S = 10.0  # a worker started at its parent's exit waits at most this long for it to be gone
# The worker's first lines, before any import: its lower priority, and when it was started at its
# parent's exit, a wait until that parent is gone (reparented), so that an interpreter importing
# scikit-learn and matplotlib never competes with the parent's own exit on a busy machine.
_BOOT = """import os, time
try:
    os.nice({niceness})
except (AttributeError, OSError):
    pass
deadline = time.monotonic() + {wait_s}
while {parent} and os.getppid() == {parent} and time.monotonic() < deadline:
    time.sleep(0.02)
from modelbox_autolog.integrations._plot_worker import serve
serve()
"""


def jobs_folder(journal_dir: str, uri: str) -> str:
    return os.path.join(journal_folder(journal_dir, uri), "plots")


# ---------------------------------------------------------------------- the training process's side
class _Parent:
    """This process's worker and the jobs it handed over (a forked child starts afresh)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.pid = os.getpid()
        self.failed = False  # no worker could start: draw in process from now on
        self.submitted: list[str] = []  # job files written and not yet seen gone
        self.timer: threading.Timer | None = None

    def mine(self) -> _Parent:
        if self.pid != os.getpid():  # forked: the parent's worker and jobs are the parent's
            self.__init__()
        return self


_parent = _Parent()


def in_process(uri: str) -> bool:
    """Draw here: the backend lives in this process, or no worker can start."""
    return uri.startswith("memory://") or _parent.mine().failed


def submit(uri: str, journal_dir: str, run_id: str, job: tuple, names: list[str]) -> str:
    """Write a plot job for the worker (raises OSError when it cannot be written); the worker starts
    after ``START_DELAY_S``, at exit, or at ``flush(plots=True)``."""
    folder = jobs_folder(journal_dir, uri)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    payload = pickle.dumps({"uri": uri, "journal_dir": journal_dir, "run_id": run_id, "job": job, "names": names,
                            "ids": [new_id() for _ in names], "created_at": time.time()}, protocol=pickle.HIGHEST_PROTOCOL)
    path = os.path.join(folder, f"{time.time_ns():020d}-{new_id()}{JOB_SUFFIX}")
    with open(path + ".tmp", "wb") as handle:
        handle.write(payload)
    os.replace(path + ".tmp", path)
    parent = _parent.mine()
    with parent.lock:
        parent.submitted.append(path)
        if parent.proc is not None and parent.proc.poll() is None:
            _tell(parent, [path])
        elif parent.timer is None:
            timer = threading.Timer(START_DELAY_S, start)
            timer.name, timer.daemon = "modelbox-plot-start", True
            parent.timer = timer
            timer.start()
    return path


def pending() -> int:
    """Jobs this process handed over that are not drawn and stored yet."""
    parent = _parent.mine()
    with parent.lock:
        parent.submitted = [p for p in parent.submitted if os.path.exists(p)]
        return len(parent.submitted)


def start(after_exit: bool = False) -> bool:
    """Have a worker draw this process's pending jobs (started if none runs); False if none can.
    ``after_exit``: this process is exiting; the worker lets it finish before it imports anything."""
    parent = _parent.mine()
    with parent.lock:
        if parent.timer is not None:
            parent.timer.cancel()
            parent.timer = None
        parent.submitted = [p for p in parent.submitted if os.path.exists(p)]
        if not parent.submitted:
            return True
        if parent.proc is not None and parent.proc.poll() is None:
            return True
        if parent.failed:
            return False
        env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        try:
            parent.proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT.format(parent=os.getpid() if after_exit else 0, niceness=NICENESS, wait_s=EXIT_WAIT_S)],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, close_fds=True,
                start_new_session=True,  # a Ctrl-C in the terminal, or the end of the process, does not stop it
            )
            os.set_blocking(parent.proc.stdin.fileno(), False)
        except (OSError, ValueError):
            parent.failed = True
            return False
        _tell(parent, parent.submitted)
        return True


def _tell(parent: _Parent, paths: list[str]) -> None:
    """Job paths on the worker's stdin; a full pipe is fine (the worker also looks in the folder)."""
    assert parent.proc is not None and parent.proc.stdin is not None
    with contextlib.suppress(OSError):  # BlockingIOError, BrokenPipeError (it died: wait() restarts one)
        os.write(parent.proc.stdin.fileno(), "".join(p + "\n" for p in paths).encode())


def wait(timeout: float | None) -> bool:
    """(``flush(plots=True)``.) Until every job handed over so far is drawn and stored: True, or
    False when ``timeout`` passed first or no worker can start."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while pending():
        if not start():
            return False
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def at_exit() -> None:
    """(After the exporters' shutdown.) Jobs still pending go to a worker that outlives us: this
    process waits neither for their drawing nor for their delivery."""
    if pending():
        start(after_exit=True)
    detach()  # nothing of the worker's is left for the interpreter's teardown


def detach() -> None:
    """Forget this process's worker (it finishes the jobs it knows, then exits)."""
    parent = _parent.mine()
    with parent.lock:
        if parent.timer is not None:
            parent.timer.cancel()
        proc = parent.proc
        parent.__init__()
    if proc is not None and proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()


# ---------------------------------------------------------------------- drawing (either process)
def draw_records(job: dict[str, Any]) -> list[Any]:
    """Draw one job into the journal's staging folder: its artifacts, or why there are none."""
    from ._sklearn_plots import JOBS, not_logged

    folder = os.path.join(staging_root(job["journal_dir"]), new_id())
    try:
        os.makedirs(folder, mode=0o700)
        kind, *data = job["job"]
        written = JOBS[kind](*data, *[os.path.join(folder, name) for name in job["names"]])
    except Exception as exc:  # plots are a bonus; say why there are none
        with contextlib.suppress(OSError):
            for name in os.listdir(folder):
                os.unlink(os.path.join(folder, name))
            os.rmdir(folder)
        return not_logged(job["run_id"], f"{type(exc).__name__}: {exc}"[:300])
    ids = dict(zip(job["names"], job["ids"], strict=True))
    return [Artifact(ids[os.path.basename(p)], job["run_id"], os.path.basename(p), p, "plot", True) for p in written]


# ---------------------------------------------------------------------- the worker process
class _Worker:
    def __init__(self) -> None:
        self.queue: deque[str] = deque()
        self.folders: set[str] = set()
        self.exporters: dict[str, Any] = {}
        self.parent = os.getppid()
        self.parent_gone = False
        self._partial = b""

    def read_stdin(self, wait_s: float) -> None:
        if self.parent_gone:
            if wait_s:
                time.sleep(wait_s)
            return
        fd = sys.stdin.fileno()
        ready, _, _ = select.select([fd], [], [], wait_s)
        if ready:
            data = os.read(fd, 1 << 16)
            if not data:
                self.parent_gone = True
            lines = (self._partial + data).split(b"\n")
            self._partial = lines.pop()
            for line in lines:
                path = line.decode("utf-8", "replace").strip()
                if path:
                    self.queue.append(path)
                    self.folders.add(os.path.dirname(path))
        if os.getppid() != self.parent:  # gone, while a forked child of it still holds our stdin
            self.parent_gone = True

    def next_job(self) -> str | None:
        while self.queue:
            path = self.queue.popleft()
            if os.path.exists(path):
                return path
        for folder in sorted(self.folders):  # jobs we were not told about: a dead worker's, a full pipe
            with contextlib.suppress(OSError):
                for name in sorted(os.listdir(folder)):
                    if name.endswith(JOB_SUFFIX) and _unlocked(os.path.join(folder, name)):
                        return os.path.join(folder, name)
        return None

    def run_job(self, path: str) -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return  # drawn meanwhile by another worker
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # another worker is drawing it
            if not os.path.exists(path):
                return
            with os.fdopen(os.dup(fd), "rb") as handle:
                job = pickle.load(handle)
            exporter = self._exporter(job["uri"], job["journal_dir"])
            for record in draw_records(job):
                exporter.submit(record)
            exporter.flush(JOB_FLUSH_TIMEOUT_S)  # stored, or journaled for the next process to deliver
            with contextlib.suppress(OSError):
                os.unlink(path)
        except Exception:
            pass  # a job we cannot read stays: the next worker tries it again
        finally:
            os.close(fd)

    def _exporter(self, uri: str, journal_dir: str) -> Any:
        exporter = self.exporters.get(uri)
        if exporter is None:
            from .._config import build_config
            from .._exporter import Exporter

            config = build_config(backend=uri, journal_dir=journal_dir, silent=True, capture_console=False,
                                  capture_env=False)
            exporter = self.exporters[uri] = Exporter(uri, config)
        return exporter

    def serve(self) -> None:
        idle_since = time.monotonic()
        while True:
            self.read_stdin(0.0 if self.queue else POLL_S)
            path = self.next_job()
            if path is not None:
                self.run_job(path)
                idle_since = time.monotonic()
                continue
            if self.parent_gone or time.monotonic() - idle_since > IDLE_EXIT_S:
                break
        for exporter in self.exporters.values():
            exporter.shutdown(30.0)


def _unlocked(path: str) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # releases the test lock


def serve() -> None:
    """The worker's main loop (``python -c ...serve()``)."""
    sys.stdout = sys.stderr  # nothing of ours on a channel nobody reads (its priority was lowered by _BOOT)
    with contextlib.suppress(Exception):  # imported before the first job: its drawing time is its own
        import matplotlib.backends.backend_agg  # noqa: F401
    _Worker().serve()
