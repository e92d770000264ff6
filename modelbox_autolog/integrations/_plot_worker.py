"""A child process that draws diagnostic plots, so that drawing (tens of milliseconds of Python per
figure, plus matplotlib's import) never holds the training process's GIL.

The exporter thread sends ``(job, paths)`` frames (pickled, length-prefixed) on the child's stdin
and waits, without the GIL, for a one-line answer. The child is started at the first fit that wants plots (so that its start overlaps training) with
the parent's ``sys.path``, at a lower OS priority; it exits when its stdin closes (the parent exited)
and is restarted after a fork or a crash. Where no child can be started, plots are drawn in
process (on the exporter thread).
"""

from __future__ import annotations

import atexit
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable

ANSWER_TIMEOUT_S = 120.0
NICENESS = 10  # the worker's OS priority, below training's
WAIT_SLICE_S = 0.1  # how often a wait for the worker asks whether it may go on waiting
_HEADER = struct.Struct("<I")


class _Worker:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._pid = 0
        self.failed = False  # could not start: draw in process from now on

    def _start(self) -> subprocess.Popen:
        env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        proc = subprocess.Popen(
            [sys.executable, "-c", "from modelbox_autolog.integrations._plot_worker import serve; serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, close_fds=True,
        )
        self._proc, self._pid = proc, os.getpid()
        return proc

    def prestart(self) -> None:
        """Start the worker now (it imports matplotlib while the fits go on), unless it runs."""
        if self.failed or not self._lock.acquire(blocking=False):
            return
        try:
            proc = self._proc
            if proc is None or self._pid != os.getpid() or proc.poll() is not None:
                self._start()
        except (OSError, ValueError):
            self.failed = True
        finally:
            self._lock.release()

    def draw(self, job: tuple, paths: list[str], patient: Callable[[], bool]) -> tuple[list[str], float]:
        with self._lock:
            proc = self._proc
            if proc is None or self._pid != os.getpid() or proc.poll() is not None:
                proc = self._start()
            payload = pickle.dumps((job, paths), protocol=pickle.HIGHEST_PROTOCOL)
            ready: list = []
            try:
                proc.stdin.write(_HEADER.pack(len(payload)) + payload)
                proc.stdin.flush()
                waited_s, abandoned = 0.0, False
                while not ready and waited_s < ANSWER_TIMEOUT_S:
                    ready, _, _ = select.select([proc.stdout], [], [], WAIT_SLICE_S)
                    waited_s += WAIT_SLICE_S
                    if not ready and not patient():
                        abandoned = True
                        break
                answer = proc.stdout.readline() if ready else b""
            except OSError as exc:
                answer = f"plot worker: {exc}".encode()
            if not answer.startswith(b"ok"):
                if not ready or not answer:
                    proc.kill()
                    self._proc = None
                if abandoned:
                    raise RuntimeError("abandoned: the exit budget was running out")
                raise RuntimeError(answer.decode("utf-8", "replace").strip() or "the plot worker did not answer")
            seconds, _, written = answer[2:].decode("utf-8", "replace").strip().partition("\t")
            return (written.split("\t") if written else []), float(seconds)

    def close(self) -> None:
        proc = self._proc
        if proc is not None and self._pid == os.getpid():
            try:
                proc.stdin.close()
                proc.wait(2)
            except Exception:
                proc.kill()


_worker = _Worker()
atexit.register(_worker.close)


def prestart() -> None:
    """Have the worker ready by the time the first plots are due: its start (an interpreter,
    matplotlib's and scikit-learn's imports: seconds on a busy machine) overlaps training instead of
    holding up the exporter, which at exit would leave the run's records waiting behind it."""
    proc = _worker._proc
    if proc is None or _worker._pid != os.getpid() or proc.poll() is not None:
        _worker.prestart()


def draw(job: tuple, paths: list[str], patient: Callable[[], bool] = lambda: True) -> tuple[list[str], float]:
    """Compute and draw one job's figures into ``paths``: in the plot worker, or here if it cannot
    start. Returns the paths written and the seconds the drawing took (a worker's start and imports
    not included: the plot budget charges a fit for its own drawing). While waiting for the worker,
    ``patient()`` is asked every ``WAIT_SLICE_S``: False abandons the drawing (RuntimeError)."""
    if not _worker.failed:
        try:
            return _worker.draw(job, paths, patient)
        except (OSError, ValueError):  # no interpreter to start, no pipes: draw here from now on
            _worker.failed = True
    return _timed_draw(job, paths)


def _timed_draw(job: tuple, paths: list[str]) -> tuple[list[str], float]:
    started = time.perf_counter()
    written = _draw_here(job, paths)
    return written, time.perf_counter() - started


def _draw_here(job: tuple, paths: list[str]) -> list[str]:
    from ._sklearn_plots import JOBS

    kind, *data = job
    return JOBS[kind](*data, *paths)


def _lower_priority(by: int) -> None:
    try:
        os.nice(by)
    except (AttributeError, OSError):
        pass


def serve() -> None:
    """The child's loop: one frame in, the figures written, one line out."""
    reader, writer = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but answers on our channel
    # Below training, but not the lowest priority: the exporter waits for each answer, and at
    # nice 19 a machine whose cores are busy starved the worker (three figures took 30 s, holding
    # up the run's other background work and the exit).
    _lower_priority(NICENESS)
    try:  # imported while the first job is on its way, so that its drawing time is its own
        import matplotlib.backends.backend_agg  # noqa: F401  (only matplotlib: the curves come computed)
    except Exception:
        pass
    while True:
        header = reader.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return
        (size,) = _HEADER.unpack(header)
        try:
            job, paths = pickle.loads(reader.read(size))
            written, seconds = _timed_draw(job, paths)
            answer = ("\t".join([f"ok{seconds:.4f}", *written]) + "\n").encode("utf-8")
        except Exception as exc:
            answer = f"{type(exc).__name__}: {exc}".replace("\n", " ").encode("utf-8", "replace")[:500] + b"\n"
        writer.write(answer)
        writer.flush()

