"""The process-level run: where records of a script without a fit go.

A plain training loop has no ``fit`` to scope a run. Automatic captures (a ``torch.save``, a
TensorBoard scalar, a saved figure) made while no run is active go to one run per process,
opened by the first of them and ended at exit. Opened that way it stays in the background:
a later ``fit`` still gets a run of its own, so a script that never logs by hand keeps one run
per outermost fit. Module-level logging (``mbx.log_metric``...) and ``mbx.active_run()``
*adopt* it: from then on it is the process's active run and later fits log into it, as they
do inside a ``start_run`` block (what a user coming from MLflow's fluent API expects).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from . import _run

PROCESS_RUN_NAME = "process"

_lock = threading.RLock()
_process_run: _run.Run | None = None
_pid = 0
_opened_hooks: list[Callable[[_run.Run], None]] = []


def on_open(hook: Callable[[_run.Run], None]) -> None:
    """``hook(run)`` runs once when the process-level run opens (an integration adds its params)."""
    if hook not in _opened_hooks:
        _opened_hooks.append(hook)


def current() -> _run.Run | None:
    """The process-level run if it is open in this process, else None (never opens one)."""
    run = _process_run
    if run is not None and run.status == "running" and _pid == os.getpid():
        return run
    return None


RANK_RECHECK_S = 1.0  # how often a hot caller (a TensorBoard write per step) re-checks the rank
_rank_checked = [0.0]


def process_run(adopt: bool = False) -> _run.Run:
    """The process-level run, opened now if needed; ``adopt=True`` also makes it the active run."""
    global _process_run, _pid
    run = _process_run
    if run is not None and not adopt and run.status == "running" and _pid == os.getpid():
        now = time.monotonic()  # the fast path: no lock, the rank re-checked once a second
        if now - _rank_checked[0] < RANK_RECHECK_S:
            return run
        _rank_checked[0] = now
        if isinstance(run, _run.NullRun) or _run.is_logging_process(run.config):
            return run
    with _lock:
        run = current()
        if run is not None and not isinstance(run, _run.NullRun) and not _run.is_logging_process(run.config):
            run.end("killed")  # torch.distributed was initialised after it opened: not rank 0 after all
            run = None
        if run is None:
            run = _open()
            _process_run, _pid = run, os.getpid()
            for hook in list(_opened_hooks):
                try:
                    hook(run)
                except Exception as exc:
                    from ._patching import report_error

                    report_error("process-run:on-open", exc)
        if adopt:
            _run.adopt_process_run(run)
    return run


def target_run() -> _run.Run | None:
    """Where an automatic capture goes: the active run, else the process-level run."""
    return _run.active_run() or process_run()


def _open() -> _run.Run:
    run = _run.start_run(name=PROCESS_RUN_NAME, tags={"autolog": "true", "scope": "process"}, _auto=True)
    # Out of the context's run stack: a later fit opens its own run unless the run is adopted.
    if run._token is not None:
        try:
            _run._current_run.reset(run._token)
        except ValueError:
            _run._current_run.set(None)
        run._token = None
    return run


def end_automatic(status: str = "finished") -> None:
    """``autolog(disable=True)``: end the process-level run unless the user logs into it by hand."""
    global _process_run
    with _lock:
        run = current()
        if run is None or _run.is_adopted(run):
            return
        _process_run = None
    run.end(status)



# ---------------------------------------------------------------------- module-level logging
autolog_on = False  # set by autolog(): a plain script under autolog() always has an active run


def active_run() -> _run.Run | None:
    """``mbx.active_run()``: the context's run; under ``autolog()``, else the process-level run."""
    run = _run.active_run()
    if run is None and autolog_on:
        run = process_run(adopt=True)
    return run


def logging_run() -> _run.Run:
    """Where ``mbx.log_metric`` & co. go: the active run, else the process-level run, adopted."""
    return _run.active_run() or process_run(adopt=True)


def log_metric(key: str, value: Any, step: int | None = None, epoch: int | None = None,
               timestamp: float | None = None) -> None:
    """Log one metric point into the active run (a run is opened if none is)."""
    run = _run.active_run() or process_run(adopt=True)
    run.log_metric(key, value, step, epoch, timestamp)
    if step is not None:
        run._mbx_step_hint = step  # what a figure saved next is labelled with


def log_metrics(metrics: Mapping[str, Any], step: int | None = None, epoch: int | None = None,
                timestamp: float | None = None) -> None:
    run = logging_run()
    run.log_metrics(metrics, step, epoch, timestamp)
    if step is not None:
        run._mbx_step_hint = step


def log_param(key: str, value: Any) -> None:
    logging_run().log_param(key, value)


def log_params(params: Mapping[str, Any]) -> None:
    logging_run().log_params(params)


def log_artifact(path: str | os.PathLike[str], name: str | None = None) -> str | None:
    """Keep a file with the active run; returns the artifact id (None when ``path`` is not a file)."""
    return logging_run().log_artifact(path, name=name)


def forget() -> None:
    """Tests' clean slate (``testing.reset``): no process-level run, nothing adopted."""
    global _process_run
    with _lock:
        run, _process_run = _process_run, None
    if run is not None:
        run.end("finished")
    _run.adopt_process_run(None)
