"""Runs: the manual logging API, the context-local run stack, and auto-runs for fits.

The hot path (``log_metric``) builds one small record and appends it to the exporter's
queue: no locks, no I/O, no formatting.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

from . import _config
from ._console import ConsoleCapture, write_console_file
from ._context import global_rank
from ._exporter import Deferred, Exporter, exporter_for, flush_all, shutdown_all
from ._records import (
    Artifact,
    Event,
    Input,
    ModelFile,
    ModelRecord,
    Param,
    RunStart,
    RunUpdate,
    new_id,
)
from ._values import flatten, safe_repr, to_attrs, to_key, to_param_text, to_tags
from .backends import canonical_uri

log = logging.getLogger("modelbox_autolog")

_current_run: ContextVar[Run | None] = ContextVar("modelbox_current_run", default=None)
_open_runs: dict[str, Run] = {}
_open_lock = threading.Lock()
_time = time.time

STATUSES = ("running", "finished", "failed", "killed")


class LoggedModel:
    """What ``run.log_model`` returns at once; ``version`` is known once the store has it."""

    def __init__(self, record: ModelRecord, uri: str, exporter: Exporter | None) -> None:
        self.id = record.id
        self.name = record.name
        self.framework = record.framework
        self.run_id = record.run_id
        self.metadata = record.metadata
        self.labels = record.labels
        self.datasets = record.datasets
        self.files = [f.name for f in record.files]
        self.url = f"{uri}#model={record.id}"
        self._uri = uri
        self._exporter = exporter

    @property
    def version(self) -> int | None:
        if self._exporter is not None:
            self._exporter.flush(timeout=10)
        from .backends import open_store

        try:
            store = open_store(self._uri)
            try:
                return store.model(self.id).version
            finally:
                store.close()
        except Exception:
            return None

    def __repr__(self) -> str:
        return f"LoggedModel(id={self.id!r}, name={self.name!r}, framework={self.framework!r})"


class _TimedEvent:
    __slots__ = ("_run", "_name", "_attrs", "_start", "_t0")

    def __init__(self, run: Run, name: str, attrs: dict[str, Any]) -> None:
        self._run, self._name, self._attrs = run, name, attrs

    def __enter__(self) -> _TimedEvent:
        self._start = _time()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        duration = time.perf_counter() - self._t0
        attrs = self._attrs
        if exc_type is not None:
            attrs = {**attrs, "error": f"{exc_type.__name__}: {safe_repr(exc)}"}
        self._run._emit_event(self._name, self._start, duration, attrs)


def _param_records(run_id: str, params: Mapping[Any, Any]) -> list[Param]:
    """Params flattened with '.', values as JSON text."""
    return [Param(run_id, key, to_param_text(value)) for key, value in flatten(params).items()]


class Run:
    """A unit of work being logged. Use it as a context manager, or call ``end()``."""

    def __init__(
        self,
        exporter: Exporter,
        experiment: str,
        name: str | None = None,
        tags: Mapping[str, Any] | None = None,
        parent_run_id: str | None = None,
        auto: bool = False,
        config: _config.Config | None = None,
        _existing_id: str | None = None,
    ) -> None:
        self.id = _existing_id or new_id()
        self.name = name
        self.experiment = experiment
        self.parent_run_id = parent_run_id
        self.status = "running"
        self.auto = auto
        self.config = config or _config.current()
        self._exporter = exporter
        self._queue = exporter.queue
        self._steps: dict[str, int] = {}
        self._token = None
        self._console: Any = None
        self._warned: set[str] = set()
        self.start_time = _time()
        if _existing_id is None:
            self._submit(RunStart(self.id, experiment, name, self.start_time, parent_run_id, to_tags(tags)))

    def __reduce__(self) -> tuple[Any, tuple]:
        """A run pickled into another process (a spawned worker holding one of our callbacks)
        arrives there as a reference: it logs into the same run through that process's exporter,
        and never starts or ends it. Unpickled in this process, it is the run itself."""
        return (_attached_run, (self.id, self.experiment, self.name, self.parent_run_id, self.auto, self.config))

    # ------------------------------------------------------------------ plumbing
    def _submit(self, record: Any) -> None:
        queue = self._queue
        queue.append(record)
        if len(queue) >= self._exporter.wake_at:
            self._exporter.pressure()

    def _warn_once(self, site: str, message: str) -> None:
        if site not in self._warned:
            self._warned.add(site)
            if not self.config.silent:
                log.warning("modelbox-autolog: %s", message)

    @property
    def url(self) -> str:
        return f"{self._exporter.uri}#run={self.id}"

    # ------------------------------------------------------------------ params
    def log_param(self, key: Any, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[Any, Any]) -> None:
        """Nested dicts are flattened with '.'; values that are not JSON become their repr."""
        try:
            records = _param_records(self.id, params)
        except Exception as exc:
            self._warn_once("params", f"params not logged: {exc!r}")
            return
        for record in records:
            self._submit(record)

    def _log_params_later(self, params: Mapping[Any, Any]) -> None:
        """``log_params``, flattened and encoded on the exporter thread: for integrations whose
        ``params`` is a fresh dict of values that do not change meanwhile (one record queued, not one per param)."""
        run_id = self.id
        self._submit(Deferred(lambda: _param_records(run_id, params)))

    # ------------------------------------------------------------------ metrics (hot path)
    def log_metric(self, key: str, value: Any, step: int | None = None, epoch: int | None = None, timestamp: float | None = None) -> None:
        try:
            value = float(value)
        except Exception:
            self._reject_metric(key, value)
            return
        if key.__class__ is not str:
            key = to_key(key)
        steps = self._steps
        if step is None:
            step = steps.get(key, 0)
        elif step.__class__ is not int:
            step = self._as_int(step, "step")
        steps[key] = step + 1
        if epoch is not None and epoch.__class__ is not int:
            epoch = self._as_int(epoch, "epoch")
        queue = self._queue
        # A plain tuple, not a Metric: CPython's GC untracks tuples of atoms, so a million
        # queued points never slow down garbage collection in the training thread.
        queue.append((self.id, key, value, step, timestamp or _time(), epoch))
        if len(queue) >= self._exporter.wake_at:
            self._exporter.pressure()

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None, epoch: int | None = None, timestamp: float | None = None) -> None:
        ts = timestamp or _time()
        for key, value in metrics.items():
            self.log_metric(key, value, step, epoch, ts)

    def _as_int(self, value: Any, what: str) -> int:
        try:
            return int(value)
        except Exception:
            self._warn_once(what, f"{what} {safe_repr(value)[:80]} is not an integer; using 0")
            return 0

    def _reject_metric(self, key: Any, value: Any) -> None:
        self._exporter.stats["rejected"] += 1  # the user's value, not a loss of stored data
        self._warn_once(
            f"metric:{key}",
            f"metric {to_key(key)!r} got a non-numeric value {safe_repr(value)[:80]}; not logged (counted as rejected). "
            "Log it with log_param or log_event instead.",
        )

    # ------------------------------------------------------------------ events
    def event(self, name: str, **attrs: Any) -> _TimedEvent:
        """``with run.event("data_loading", epoch=2): ...`` records start, end and duration_s."""
        return _TimedEvent(self, to_key(name), attrs)

    def log_event(self, name: str, *, duration_s: float | None = None, timestamp: float | None = None, **attrs: Any) -> None:
        self._emit_event(to_key(name), timestamp or _time(), duration_s, attrs)

    def _emit_event(self, name: str, start: float, duration: float | None, attrs: Mapping[str, Any]) -> None:
        try:
            clean = to_attrs(attrs)
        except Exception as exc:
            clean = {"attrs_error": repr(exc)}
        if duration is not None:
            clean.setdefault("end", start + duration)
        self._submit(Event(new_id(), self.id, name, start, duration, clean))

    # ------------------------------------------------------------------ files
    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None, kind: str = "file", _staged: bool = False) -> str | None:
        """Keep a file with the run; it is copied off the training thread. Returns the artifact id."""
        source = os.fspath(path)
        if not os.path.isfile(source):
            self._warn_once(f"artifact:{source}", f"log_artifact: {source} is not a file; nothing logged")
            return None
        artifact_id = new_id()
        self._submit(Artifact(artifact_id, self.id, name or os.path.basename(source), os.path.abspath(source), kind, _staged))
        return artifact_id

    def log_model(
        self,
        path: str | os.PathLike[str],
        name: str | None = None,
        framework: str = "unknown",
        metadata: Mapping[str, Any] | None = None,
        labels: Mapping[str, Any] | None = None,
        datasets: Sequence[str] | None = None,
        _staged: bool = False,
    ) -> LoggedModel | None:
        """Record a model file (or a folder of files) as a Model entity with lineage to this run."""
        source = os.path.abspath(os.fspath(path))
        files: list[ModelFile] = []
        if os.path.isdir(source):
            for folder, _dirs, names in os.walk(source):
                for file_name in sorted(names):
                    full = os.path.join(folder, file_name)
                    files.append(ModelFile(os.path.relpath(full, source).replace(os.sep, "/"), full, _staged))
        elif os.path.isfile(source):
            files.append(ModelFile(os.path.basename(source), source, _staged))
        else:
            self._warn_once(f"model:{source}", f"log_model: {source} does not exist; nothing logged")
            return None
        record = ModelRecord(
            id=new_id(),
            run_id=self.id,
            name=to_key(name or os.path.splitext(os.path.basename(source))[0]),
            framework=framework,
            files=files,
            created_at=_time(),
            metadata=to_attrs(metadata or {}),
            labels=to_tags(labels),
            datasets=[str(d) for d in (datasets or [])],
        )
        self._submit(record)
        return LoggedModel(record, self._exporter.uri, self._exporter)

    def log_input(self, ref: str, kind: str = "dataset", **attrs: Any) -> None:
        """Lineage: a dataset or model this run consumed."""
        self._submit(Input(new_id(), self.id, kind, str(ref), _time(), to_attrs(attrs)))

    # ------------------------------------------------------------------ run fields
    def set_progress(self, fraction: float) -> None:
        try:
            value = float(fraction)
        except Exception:
            self._warn_once("progress", f"set_progress needs a number, not {safe_repr(fraction)[:80]}")
            return
        if math.isnan(value):
            return
        self._submit(RunUpdate(self.id, progress=min(1.0, max(0.0, value))))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._submit(RunUpdate(self.id, tags=to_tags(tags)))

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_name(self, name: str) -> None:
        self.name = name
        self._submit(RunUpdate(self.id, name=str(name)))

    # ------------------------------------------------------------------ lifecycle
    def _activate(self) -> None:
        self._token = _current_run.set(self)
        with _open_lock:
            _open_runs[self.id] = self
        if self.config.capture_env:
            from ._context import capture_environment

            run_id = self.id
            self._submit(Deferred(lambda: [RunUpdate(run_id, env=capture_environment())], background=True))
        if self.config.capture_console and self.parent_run_id is None:
            try:
                self._console = ConsoleCapture()
            except Exception as exc:
                self._warn_once("console", f"console capture unavailable: {exc!r}")

    def end(self, status: str = "finished") -> None:
        """End the run (idempotent). ``status``: finished | failed | killed."""
        if self.status != "running":
            return
        if status not in STATUSES[1:]:
            raise ValueError(f"status must be one of finished, failed, killed, not {status!r}")
        if self._console is not None:
            try:
                text = self._console.stop()
                if text:
                    self._submit(Deferred(lambda: [self._console_artifact(text)]))
            except Exception as exc:
                self._warn_once("console-stop", f"console capture failed: {exc!r}")
            self._console = None
        self.status = status
        self._submit(RunUpdate(self.id, status=status, end_time=_time()))
        with _open_lock:
            _open_runs.pop(self.id, None)
        if self._token is not None:
            try:
                _current_run.reset(self._token)
            except ValueError:  # ended from another context: fall back to the parent run
                if _current_run.get() is self:
                    _current_run.set(_open_runs.get(self.parent_run_id or ""))
            self._token = None

    def _console_artifact(self, text: str) -> Artifact:
        return Artifact(new_id(), self.id, "console.log", write_console_file(text), "console", True)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.end("finished")
        elif issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
            self.end("killed")
        else:
            _end_on_error(self, exc)
        return None

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, name={self.name!r}, experiment={self.experiment!r}, status={self.status!r})"


def _attached_run(run_id: str, experiment: str, name: str | None, parent_run_id: str | None, auto: bool,
                  config: _config.Config) -> Run:
    with _open_lock:
        live = _open_runs.get(run_id)
    if live is not None:
        return live
    if canonical_uri(config.backend).startswith("memory://"):
        return NullRun(experiment, name)  # an in-process store cannot be reached from another process
    exporter = exporter_for(canonical_uri(config.backend), config)
    return Run(exporter, experiment, name, parent_run_id=parent_run_id, auto=auto, config=config, _existing_id=run_id)


class NullRun(Run):
    """What non-logging processes (e.g. distributed ranks other than 0) get: every call is a no-op."""

    def __init__(self, experiment: str = "", name: str | None = None) -> None:  # noqa: D107 - no exporter
        self.id = "null"
        self.name = name
        self.experiment = experiment
        self.parent_run_id = None
        self.status = "running"
        self.auto = True
        self.config = _config.current()
        self._token = None
        self._console = None
        self._warned = set()
        self._steps = {}

    def __reduce__(self) -> tuple[Any, tuple]:
        return (NullRun, (self.experiment, self.name))

    def _submit(self, record: Any) -> None:
        pass

    def log_metric(self, *args: Any, **kwargs: Any) -> None:
        pass

    def log_model(self, *args: Any, **kwargs: Any) -> None:
        return None

    def log_artifact(self, *args: Any, **kwargs: Any) -> None:
        return None

    def _activate(self) -> None:
        self._token = _current_run.set(self)

    def end(self, status: str = "finished") -> None:
        if self.status == "running":
            self.status = status
            if self._token is not None:
                try:
                    _current_run.reset(self._token)
                except ValueError:
                    pass
                self._token = None


def is_logging_process(config: _config.Config) -> bool:
    return config.log_all_ranks or global_rank() == 0


_adopted: list = [None, 0]  # the process-level run once module-level logging adopted it, and its pid


def adopt_process_run(run: Run | None) -> None:
    """Make the process-level run (see ``_process_run``) the active run of every context without one."""
    _adopted[0], _adopted[1] = run, os.getpid()


def is_adopted(run: Run) -> bool:
    return _adopted[0] is run


def active_run() -> Run | None:
    """The run that logging calls in this thread/task go to, or None."""
    run = _current_run.get()
    if run is None:
        adopted = _adopted[0]
        if adopted is not None and adopted.status == "running" and _adopted[1] == os.getpid():
            return adopted
    return run


def start_run(
    name: str | None = None,
    experiment: str | None = None,
    tags: Mapping[str, Any] | None = None,
    *,
    parent: Run | None = None,
    _auto: bool = False,
) -> Run:
    """Open a run (a child of the active one, if any) and make it active in this context."""
    config = _config.current()
    experiment_name = experiment or config.experiment_name()
    if not is_logging_process(config):
        run: Run = NullRun(experiment_name, name)
    else:
        parent = parent if parent is not None else active_run()
        if isinstance(parent, NullRun):
            parent = None
        exporter = exporter_for(canonical_uri(config.backend), config)
        run = Run(
            exporter, experiment_name, name, tags,
            parent_run_id=parent.id if parent is not None else None, auto=_auto, config=config,
        )
        if config.system_metrics_interval:
            from ._system_metrics import ensure_started

            ensure_started(config)  # one thread per process; cheap once it runs
    _install_excepthook()
    run._activate()
    return run


@contextlib.contextmanager
def autorun(framework: str, name: str | None = None, tags: Mapping[str, Any] | None = None) -> Iterator[Run]:
    """The run a patched fit logs into: the active one, else a new run ended with the fit."""
    current = active_run()
    if current is not None:
        yield current
        return
    run = start_run(name=name, tags={"framework": framework, "autolog": "true", **(tags or {})}, _auto=True)
    try:
        yield run
    except (KeyboardInterrupt, SystemExit):
        run.end("killed")
        raise
    except BaseException as exc:
        _end_on_error(run, exc)
        raise
    else:
        run.end("finished")


def _end_on_error(run: Run, exc: BaseException) -> None:
    """An exception left a run opened for a patched call: the user's (``failed``), or ours after
    the user's call succeeded (``finished``, with the error as an event; the patch reports it)."""
    from ._patching import failing_after_call

    if failing_after_call():
        run.log_event("autolog_error", error=f"{type(exc).__name__}: {safe_repr(exc)}"[:1000])
        run.end("finished")
    else:
        run.end("failed")


def open_runs() -> list[Run]:
    with _open_lock:
        return list(_open_runs.values())


# ---------------------------------------------------------------------- process exit
_crashed = False
_hook_installed = False


def _install_excepthook() -> None:
    global _hook_installed
    if _hook_installed:
        return
    _hook_installed = True
    _install_sigterm_handler()
    previous = sys.excepthook

    def excepthook(exc_type, exc, tb):  # remember that the process dies of an exception
        global _crashed
        _crashed = True
        previous(exc_type, exc, tb)

    sys.excepthook = excepthook


_sigterm_pid: int | None = None


def _install_sigterm_handler() -> None:
    """Python's default SIGTERM skips atexit; ours marks open runs killed and flushes first.

    Installed only in the main thread and only over the default disposition (a handler of the
    user's or a framework's is left alone). Forked children are not affected (pid check).
    """
    global _sigterm_pid
    import signal

    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return
        signal.signal(signal.SIGTERM, _on_sigterm)
        _sigterm_pid = os.getpid()
    except (ValueError, OSError):
        pass


def _on_sigterm(signum: int, frame: Any) -> None:
    import signal

    if os.getpid() == _sigterm_pid:
        for run in open_runs():
            try:
                run.end("killed")
            except Exception:
                pass
        try:
            shutdown(min(5.0, _config.current().shutdown_timeout_s))
        except Exception:
            pass
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def flush(timeout: float | None = 10.0) -> bool:
    """Block until everything logged so far is stored (True) or ``timeout`` passes (False)."""
    return flush_all(timeout)


def shutdown(timeout: float | None = None) -> None:
    """End open runs, store what was logged (journal what cannot be), stop the exporter threads."""
    from ._system_metrics import stop as stop_system_metrics

    stop_system_metrics()
    status = "failed" if _crashed else "finished"
    for run in open_runs():
        try:
            run.end(status)
        except Exception:
            pass
    budget = _config.current().shutdown_timeout_s if timeout is None else timeout
    shutdown_all(budget)


atexit.register(shutdown)
