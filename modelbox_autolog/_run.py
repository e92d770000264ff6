"""Runs: the manual logging API, the context-local run stack, and auto-runs for fits.

The hot path (``log_metric``) builds one small record and appends it to the exporter's
queue: no locks, no I/O, no formatting.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import operator
import os
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from itertools import count
from typing import Any

from . import _config, _console
from ._console import ConsoleCapture, write_console_file
from ._context import global_rank
from ._exporter import Deferred, Exporter, exporter_for, flush_all, shutdown_all
from ._liveness import lease_for, process_owner
from ._names import MAX_TEXT_CHARS, name_problem, relpath_problem
from ._records import (
    Artifact,
    Event,
    Input,
    ModelFile,
    ModelRecord,
    Param,
    RunStart,
    RunUpdate,
    model_file_paths,
    new_id,
    reference_uri,
)
from ._values import flatten, safe_repr, to_attrs, to_key, to_param_text, to_tags
from .backends import canonical_uri

log = logging.getLogger("modelbox_autolog")

_current_run: ContextVar[Run | None] = ContextVar("modelbox_current_run", default=None)
_open_runs: dict[str, Run] = {}
_open_lock = threading.Lock()
_time = time.time

STATUSES = ("running", "finished", "failed", "killed")
I64_MIN, I64_MAX = -(2**63), 2**63 - 1  # steps and epochs are stored as 64-bit integers
EPOCH_MIN = I64_MIN + 1  # -2**63 means "no epoch" inside a packed column: refused as a value
MAX_TRACEBACK_CHARS = 64 * 1024


def failure_of(exc: BaseException | None, tb: Any = None) -> dict[str, Any] | None:
    """What a failed run keeps of the exception that ended it: type, message, traceback text."""
    if exc is None:
        return None
    try:
        text = "".join(traceback.format_exception(type(exc), exc, tb if tb is not None else exc.__traceback__))
    except Exception:
        text = None
    if text is not None and len(text) > MAX_TRACEBACK_CHARS:
        text = text[:4096] + "\n...\n" + text[-(MAX_TRACEBACK_CHARS - 4096):]
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ in ("builtins", "__main__") else f"{kind.__module__}.{kind.__qualname__}"
    return {"type": name, "message": safe_repr(exc) if not str(exc) else _safe_str(exc), "traceback": text}


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)[:MAX_TEXT_CHARS]
    except Exception:
        return safe_repr(exc)


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


def _param_records(run_id: str, params: Mapping[Any, Any], exporter: Exporter | None = None) -> list[Param]:
    """Params flattened with '.', values as JSON text, stored as given; a key no store takes or a
    value over 16 MiB of JSON is refused (said once per key, counted as rejected)."""
    records = []
    for key, value in flatten(params).items():
        problem = name_problem(key)
        if problem is None:
            if value.__class__ is str and len(value) > MAX_TEXT_CHARS:
                problem = f"has a value of {len(value):,} characters (at most {MAX_TEXT_CHARS:,})"
            else:
                text = to_param_text(value)
                if len(text) <= MAX_TEXT_CHARS:
                    records.append(Param(run_id, key, text))
                    continue
                problem = f"has a value of {len(text):,} characters as JSON (at most {MAX_TEXT_CHARS:,})"
        if exporter is not None:
            exporter.reject(f"param:{key[:200]}", "param refused", f"param {_shown(key)} {problem}; not logged")
    return records


def _shown(key: Any) -> str:
    text = repr(key)
    return text if len(text) <= 80 else text[:60] + "...'"


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
        self._steps: dict[str, Any] = {}  # key -> itertools.count of its next automatic step
        self._token = None
        self._console: Any = None
        self._warned: set[str] = set()
        self._pid = os.getpid()  # a forked child never ends (or re-statuses) a run it did not open
        self.start_time = _time()
        if _existing_id is None:
            owner = process_owner()
            owner["lease_s"] = lease_for(self.config.heartbeat_s)
            self._submit(RunStart(self.id, experiment, name, self.start_time, parent_run_id, self._clean_tags(tags),
                                  owner))

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

    def _reject(self, site: str, reason: str, message: str) -> None:
        """A value that cannot be stored as given: not logged, counted as rejected, said once per site."""
        self._exporter.reject(site, reason, message)

    @property
    def url(self) -> str:
        return f"{self._exporter.uri}#run={self.id}"

    def _clean_tags(self, tags: Mapping[Any, Any] | None) -> dict[str, str]:
        clean = to_tags(tags)
        for key in [k for k in clean if name_problem(k) or (clean[k] and name_problem(clean[k]))]:
            problem = name_problem(key) or f"has a value that {name_problem(clean[key])}"
            self._reject(f"tag:{key[:200]}", "tag refused", f"tag {_shown(key)} {problem}; not logged")
            del clean[key]
        return clean

    # ------------------------------------------------------------------ params
    def log_param(self, key: Any, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[Any, Any]) -> None:
        """Nested dicts are flattened with '.'; values that are not JSON become their repr."""
        try:
            records = _param_records(self.id, params, self._exporter)
        except Exception as exc:
            self._warn_once("params", f"params not logged: {exc!r}")
            return
        for record in records:
            self._submit(record)

    def _log_params_later(self, params: Mapping[Any, Any]) -> None:
        """``log_params``, flattened and encoded on the exporter thread: for integrations whose
        ``params`` is a fresh dict of values that do not change meanwhile (one record queued, not one per param)."""
        run_id, exporter = self.id, self._exporter
        self._submit(Deferred(lambda: _param_records(run_id, params, exporter)))

    # ------------------------------------------------------------------ metrics (hot path)
    def log_metric(self, key: str, value: Any, step: int | None = None, epoch: int | None = None, timestamp: float | None = None) -> None:
        try:
            value = float(value)
        except Exception:
            self._reject_metric(key, value)
            return
        if key.__class__ is not str:
            key = to_key(key)
        counter = self._steps.get(key)
        if counter is None:
            counter = self._first_use(key)
            if counter is None:
                return
        if epoch is not None and (epoch.__class__ is not int or not EPOCH_MIN <= epoch <= I64_MAX):
            epoch = self._checked_int(key, epoch, "epoch", EPOCH_MIN)
            if epoch is None:
                return
        if timestamp is None:
            timestamp = _time()
        elif timestamp.__class__ is not float:
            timestamp = self._checked_timestamp(key, timestamp)
            if timestamp is None:
                return
        if step is None:
            step = next(counter)  # atomic under the GIL: threads sharing a key never get the same step
        else:
            if step.__class__ is not int or not I64_MIN <= step <= I64_MAX:
                step = self._checked_int(key, step, "step", I64_MIN)
                if step is None:
                    return
            self._steps[key] = count(step + 1)
        queue = self._queue
        # A plain tuple, not a Metric: CPython's GC untracks tuples of atoms, so a million
        # queued points never slow down garbage collection in the training thread.
        queue.append((self.id, key, value, step, timestamp, epoch))
        if len(queue) >= self._exporter.wake_at:
            self._exporter.pressure()

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None, epoch: int | None = None, timestamp: float | None = None) -> None:
        ts = _time() if timestamp is None else timestamp
        for key, value in metrics.items():
            self.log_metric(key, value, step, epoch, ts)

    def _first_use(self, key: str) -> Any:
        """A key's first point: check the name once; its step counter, or None when refused."""
        problem = name_problem(key)
        if problem is not None:
            self._reject(f"metric-key:{key[:200]}", "metric key refused", f"metric key {_shown(key)} {problem}; not logged")
            return None
        return self._steps.setdefault(key, count())

    def _checked_int(self, key: str, value: Any, what: str, lowest: int) -> int | None:
        """A step or epoch as a 64-bit integer: numpy/torch integers and whole floats are taken as
        they are; anything else is refused (said once per key, counted as rejected)."""
        try:
            number = operator.index(value)
        except TypeError:
            number = None
            if isinstance(value, float) and value.is_integer():
                number = int(value)
        if number is None:
            problem = f"{safe_repr(value)[:40]} is not a whole number"
        elif not lowest <= number <= I64_MAX:
            problem = f"{number} is outside the range a 64-bit integer holds" if number != I64_MIN else (
                f"{number} is reserved (it stands for 'no epoch')")
        else:
            return number
        self._reject(f"{what}:{key[:200]}", f"{what} refused",
                     f"metric {_shown(key)}: {what} {problem}; the point is not logged")
        return None

    def _checked_timestamp(self, key: str, value: Any) -> float | None:
        try:
            stamp = float(value)
        except Exception:
            stamp = math.nan
        if math.isfinite(stamp):
            return stamp
        self._reject(f"timestamp:{key[:200]}", "timestamp refused",
                     f"metric {_shown(key)}: timestamp {safe_repr(value)[:40]} is not a finite number; the point is not logged")
        return None

    def _reject_metric(self, key: Any, value: Any) -> None:
        self._reject(
            f"metric:{to_key(key)[:200]}", "metric value is not a number",
            f"metric {to_key(key)!r} got a non-numeric value {safe_repr(value)[:80]}; not logged (counted as rejected). "
            "Log it with log_param or log_event instead.",
        )

    # ------------------------------------------------------------------ events
    def event(self, name: str, **attrs: Any) -> _TimedEvent:
        """``with run.event("data_loading", epoch=2): ...`` records start, end and duration_s."""
        return _TimedEvent(self, to_key(name), attrs)

    def log_event(self, name: str, *, duration_s: float | None = None, timestamp: float | None = None, **attrs: Any) -> None:
        self._emit_event(to_key(name), _time() if timestamp is None else timestamp, duration_s, attrs)

    def _emit_event(self, name: str, start: float, duration: float | None, attrs: Mapping[str, Any]) -> None:
        problem = name_problem(name)
        if problem is not None:
            self._reject(f"event:{name[:200]}", "event name refused", f"event name {_shown(name)} {problem}; not logged")
            return
        try:
            clean = to_attrs(attrs)
        except Exception as exc:
            clean = {"attrs_error": repr(exc)}
        if duration is not None:
            clean.setdefault("end", start + duration)
        self._submit(Event(new_id(), self.id, name, start, duration, clean))

    # ------------------------------------------------------------------ files
    def _snapshot(self, source: str, staged: bool) -> tuple[str, bool, list[int] | None]:
        """(path, delete_source, fingerprint): the content as it is now (see ``_snapshots``)."""
        if staged:
            return source, True, None
        from ._snapshots import take

        snap = take(source, self.config.journal_dir)
        return snap.path, snap.delete_source, snap.fingerprint

    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None, kind: str = "file", _staged: bool = False) -> str | None:
        """Keep a file with the run, as it is now (a snapshot is taken before returning; it is
        stored off the training thread). Returns the artifact id."""
        source = os.path.abspath(os.fspath(path))
        if not os.path.isfile(source):
            self._warn_once(f"artifact:{source}", f"log_artifact: {source} is not a file; nothing logged")
            return None
        artifact_name = name or os.path.basename(source)
        problem = relpath_problem(artifact_name)
        if problem is not None:
            self._reject(f"artifact:{str(artifact_name)[:200]}", "artifact name refused", f"log_artifact: {problem}; not logged")
            return None
        try:
            stored_from, delete, fingerprint = self._snapshot(source, _staged)
        except OSError as exc:
            self._reject(f"artifact-read:{source}", "artifact file unreadable",
                         f"log_artifact: cannot read {source} ({exc.strerror or exc}); not logged")
            return None
        artifact_id = new_id()
        self._submit(Artifact(artifact_id, self.id, artifact_name, stored_from, kind, delete, fingerprint))
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
        """Record a model file (or a folder of files) as a Model entity with lineage to this run;
        the files are kept as they are at the call; a URI (``s3://``, ``https://``, ``hf://``...) is
        recorded as a reference, not copied."""
        source_uri = reference_uri(path)
        source = source_uri or os.path.abspath(os.fspath(path).removeprefix("file://"))
        found = [] if source_uri else model_file_paths(source)
        if not found and not source_uri:
            self._warn_once(f"model:{source}", f"log_model: {source} does not exist; nothing logged")
            return None
        model_name = to_key(name or os.path.splitext(os.path.basename(source.rstrip("/")))[0])
        problem = name_problem(model_name) or next((relpath_problem(n) for n, _ in found if relpath_problem(n)), None)
        if problem is not None:
            self._reject(f"model:{model_name[:200]}", "model refused", f"log_model {_shown(model_name)}: {problem}; not logged")
            return None
        files: list[ModelFile] = []
        try:
            for file_name, full in found:
                stored_from, delete, fingerprint = self._snapshot(full, _staged)
                files.append(ModelFile(file_name, stored_from, delete, fingerprint))
        except OSError as exc:
            for file in files:
                if file.delete_source and not _staged:
                    _discard_snapshot(file.source_path)
            self._reject(f"model-read:{source}", "model file unreadable",
                         f"log_model: cannot read {source} ({exc.strerror or exc}); not logged")
            return None
        record = ModelRecord(
            id=new_id(),
            run_id=self.id,
            name=model_name,
            framework=framework,
            files=files,
            created_at=_time(),
            metadata=to_attrs(metadata or {}),
            labels=self._clean_tags(labels),
            datasets=[str(d) for d in (datasets or [])],
            source_uri=source_uri,
        )
        self._submit(record)
        return LoggedModel(record, self._exporter.uri, self._exporter)

    def log_input(self, ref: str, kind: str = "dataset", **attrs: Any) -> None:
        """Lineage: a dataset or model this run consumed."""
        ref = str(ref)
        problem = name_problem(ref) or name_problem(kind)
        if problem is not None:
            self._reject(f"input:{ref[:200]}", "input refused", f"log_input {_shown(ref)} ({kind}): {problem}; not logged")
            return
        self._submit(Input(new_id(), self.id, kind, ref, _time(), to_attrs(attrs)))

    # ------------------------------------------------------------------ run fields
    def set_progress(self, fraction: float) -> None:
        """A fraction from 0 to 1; anything else is refused with a warning (never clamped silently)."""
        try:
            value = float(fraction)
        except Exception:
            value = math.nan
        if not 0.0 <= value <= 1.0:  # NaN fails too
            self._reject("progress", "progress refused",
                         f"set_progress({safe_repr(fraction)[:40]}): progress is a fraction from 0 to 1; not stored")
            return
        self._submit(RunUpdate(self.id, progress=value))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        clean = self._clean_tags(tags)
        if clean:
            self._submit(RunUpdate(self.id, tags=clean))

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_name(self, name: str) -> None:
        name = str(name)
        problem = name_problem(name)
        if problem is not None:
            self._reject("run-name", "run name refused", f"set_name: run name {_shown(name)} {problem}; not stored")
            return
        self.name = name
        self._submit(RunUpdate(self.id, name=name))

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
            if self.auto and _console.process_capture_active():
                _pass_console_to(self)  # the process's console, from the last cut on, goes to this run
                return
            try:
                self._console = ConsoleCapture()
            except Exception as exc:
                self._warn_once("console", f"console capture unavailable: {exc!r}")

    def end(self, status: str = "finished", *, failure: BaseException | Mapping[str, Any] | None = None) -> None:
        """End the run (idempotent). ``status``: finished | failed | killed; ``failure`` (an
        exception, or a dict with type/message/traceback) says why a failed or killed run ended."""
        if self.status != "running":
            return
        if status not in STATUSES[1:]:
            raise ValueError(f"status must be one of finished, failed, killed, not {status!r}")
        if os.getpid() != self._pid:
            return  # a forked child: the run belongs to the parent, which ends it
        if self._console is not None:
            try:
                text = self._console.stop()
                if text:
                    self._submit(Deferred(lambda: [self._console_artifact(text)]))
            except Exception as exc:
                self._warn_once("console-stop", f"console capture failed: {exc!r}")
            self._console = None
        _console_run_ends(self)  # the console goes back to the run this one interrupted, if it still runs
        self.status = status
        reason = failure_of(failure) if isinstance(failure, BaseException) else (dict(failure) if failure else None)
        self._submit(RunUpdate(self.id, status=status, end_time=_time(), failure=reason))
        self._after_end()
        with _open_lock:
            _open_runs.pop(self.id, None)
        if self._token is not None:
            try:
                _current_run.reset(self._token)
            except ValueError:  # ended from another context: fall back to the parent run
                if _current_run.get() is self:
                    _current_run.set(_open_runs.get(self.parent_run_id or ""))
            self._token = None

    def _after_end(self) -> None:
        """Logging into an ended run still stores the records, with one warning per key saying so."""
        for method in ("log_metric", "log_params", "log_event", "log_artifact", "log_model", "log_input", "set_progress",
                       "set_tags"):
            setattr(self, method, _LateLogging(self, method))

    def _console_artifact(self, text: str) -> Artifact:
        return Artifact(new_id(), self.id, "console.log", write_console_file(text), "console", True)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.end("finished")
        elif issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
            self.end("killed", failure=exc)
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


class _LateLogging:
    """Installed on a run once it ended: the call goes through, with a warning naming the key."""

    __slots__ = ("_run", "_method")

    def __init__(self, run: Run, method: str) -> None:
        self._run, self._method = run, method

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        run = self._run
        from ._patching import active_groups, in_own_code

        if in_own_code() or active_groups() or threading.current_thread().name.startswith("modelbox-"):
            # An integration adding to the run that did the work (a model saved after its fit: a
            # hook's own code), or our own threads (a system-metrics sample racing the run's end):
            # ours to decide, not a user's slip.
            return getattr(Run, self._method)(run, *args, **kwargs)
        what = args[0] if args else kwargs.get("key", kwargs.get("name", kwargs.get("path", "")))
        if isinstance(what, Mapping):
            what = ", ".join(map(str, list(what)[:3]))
        key = f"{self._method}({str(what)[:100]!r})"
        run._exporter.stats["after_end"] = run._exporter.stats.get("after_end", 0) + 1
        run._exporter._report(
            f"after-end:{run.id}:{key}",
            f"run {run.id[:12]} already ended ({run.status}); {key} is stored anyway. Log into an open run, or keep "
            "the run open until everything is logged",
        )
        return getattr(Run, self._method)(run, *args, **kwargs)


def _discard_snapshot(path: str) -> None:
    try:
        os.unlink(path)
        os.rmdir(os.path.dirname(path))
    except OSError:
        pass


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
        self._pid = os.getpid()
        self._exporter = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, tuple]:
        return (NullRun, (self.experiment, self.name))

    def _submit(self, record: Any) -> None:
        pass

    def _reject(self, site: str, reason: str, message: str) -> None:
        pass

    def log_metric(self, *args: Any, **kwargs: Any) -> None:
        pass

    def log_model(self, *args: Any, **kwargs: Any) -> None:
        return None

    def log_artifact(self, *args: Any, **kwargs: Any) -> None:
        return None

    def _activate(self) -> None:
        self._token = _current_run.set(self)

    def end(self, status: str = "finished", *, failure: Any = None) -> None:
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
        problem = name_problem(experiment_name) or (name_problem(name) if name is not None else None)
        if problem is not None:  # never raise at the user: an unusable name is replaced, and said so
            exporter.reject("run-name", "run or experiment name refused",
                            f"start_run: experiment {_shown(experiment_name)} / name {_shown(name)}: {problem}; "
                            "using experiment 'default' and no name")
            if name_problem(experiment_name):
                experiment_name = "default"
            name = None
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
    except (KeyboardInterrupt, SystemExit) as exc:
        run.end("killed", failure=exc)
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
        run.end("failed", failure=exc)


def open_runs() -> list[Run]:
    with _open_lock:
        return list(_open_runs.values())


def _forget_runs_after_fork() -> None:
    """A forked child did not open its parent's runs: it neither ends them nor marks them killed."""
    global _open_lock, _console_owner, _console_lock
    _open_lock = threading.Lock()
    _open_runs.clear()
    _console_lock = threading.Lock()
    _console_owner = None  # nor does it store the parent's console
    _interrupted.clear()
    _held_console.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_runs_after_fork)


# ---------------------------------------------------------------------- the process console
# Under autolog() the console is captured from autolog() to exit and cut into the console.log
# of each top-level automatic run (a fit's run, or the process-level run): a run's part runs
# from the previous cut (autolog(), or where the run before it was cut) to the start of the
# next top-level automatic run, or to exit (so the prints before and after a fit, and a final
# traceback, are its own). A run cut off while it still runs (the process-level run, when a
# fit opens a run of its own) gets the console back when the run that interrupted it ends; its
# parts are kept together and stored as one console.log when it is cut for good. In an
# interactive session, where the process does not exit, a run's part is cut when it ends.
_console_owner: Run | None = None
_interrupted: list[Run] = []  # owners cut off while running, the latest last: the console returns to them
_held_console: dict[str, str] = {}  # run id -> the parts so far of a run in _interrupted
_console_lock = threading.Lock()


def _interactive() -> bool:
    return hasattr(sys, "ps1") or bool(sys.flags.interactive) or "IPython" in sys.modules


def _pass_console_to(run: Run | None) -> None:
    """Cut the process console: what was printed since the last cut goes to the current owner
    (with no owner yet, it stays for the next one: the first fit's run starts at autolog()).
    An owner still running is interrupted: its part is held until it is cut for good."""
    global _console_owner
    with _console_lock:
        owner, _console_owner = _console_owner, run
        if owner is None or owner is run:
            return
        text = _console.take_process_text()
        if run is not None and owner.status == "running":
            _interrupted.append(owner)
            _held_console[owner.id] = _held_console.get(owner.id, "") + text
            return
        text = _held_console.pop(owner.id, "") + text
    _store_console(owner, text)


def _console_run_ends(run: Run) -> None:
    """``run`` ends. The console's owner: its part is cut now if the run it interrupted still runs
    (which owns the console again) or in an interactive session; else it keeps the console (the
    prints after a fit are its own) until the next cut. An interrupted run: its parts are stored."""
    global _console_owner
    with _console_lock:
        if _console_owner is run:
            while _interrupted and _interrupted[-1].status != "running":
                _interrupted.pop()
            resume = _interrupted.pop() if _interrupted else None
            if resume is None and not _interactive():
                return
            _console_owner = resume
            text = _held_console.pop(run.id, "") + _console.take_process_text()
        elif run in _interrupted:
            _interrupted.remove(run)
            text = _held_console.pop(run.id, "")
        else:
            return
    _store_console(run, text)


def _store_console(owner: Run | None, text: str) -> None:
    if not text or owner is None or isinstance(owner, NullRun) or owner._pid != os.getpid():
        return
    run_id = owner.id
    owner._exporter.submit(Deferred(lambda: [Artifact(new_id(), run_id, "console.log", write_console_file(text), "console", True)]))


def start_process_console(config: _config.Config) -> None:
    """``autolog()``: keep the process's console from now to exit, for the fits' runs."""
    if config.capture_console and is_logging_process(config):
        try:
            _console.start_process_capture()
        except Exception as exc:
            log.warning("modelbox-autolog: console capture unavailable: %r", exc)


def _store_process_console() -> None:
    """At exit (or ``autolog(disable=True)``): the last cut goes to the console's owner, the parts
    held for interrupted runs to theirs; capture stops."""
    global _console_owner
    with _console_lock:
        owner, _console_owner = _console_owner, None
        held = [(run, _held_console.pop(run.id, "")) for run in _interrupted if run is not owner]
        _interrupted.clear()
        text = _console.stop_process_capture()
        if owner is not None:
            text = _held_console.pop(owner.id, "") + text
        _held_console.clear()
    for run, part in held:
        _store_console(run, part)
    _store_console(owner, text)


# ---------------------------------------------------------------------- process exit
_crashed: dict[str, Any] | None = None  # the failure of an exception the interpreter is dying of
_hook_installed = False


def _install_excepthook() -> None:
    global _hook_installed
    if _hook_installed:
        return
    _hook_installed = True
    _install_sigterm_handler()
    previous = sys.excepthook

    def excepthook(exc_type, exc, tb):  # remember that (and why) the process dies of an exception
        global _crashed
        try:
            _crashed = failure_of(exc, tb) or {"type": getattr(exc_type, "__name__", "?"), "message": "", "traceback": None}
        except Exception:
            _crashed = {"type": "unknown", "message": "", "traceback": None}
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
        stack = "".join(traceback.format_stack(frame)) if frame is not None else None
        for run in open_runs():
            try:
                run.end("killed", failure={"type": "SIGTERM", "message": "the process received SIGTERM", "traceback": stack})
            except Exception:
                pass
        try:
            shutdown(min(5.0, _config.current().shutdown_timeout_s))
        except Exception:
            pass
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def flush(timeout: float | None = 10.0, *, plots: bool = False) -> bool:
    """Block until everything logged so far is stored (True) or ``timeout`` passes (False).

    Diagnostic plots are drawn and delivered by the plot worker, which nobody waits for;
    ``plots=True`` also waits until the plots of every fit so far are stored."""
    deadline = None if timeout is None else time.monotonic() + timeout
    stored = flush_all(timeout)
    worker = sys.modules.get("modelbox_autolog.integrations._plot_worker") if plots else None
    if worker is not None:
        stored = worker.wait(None if deadline is None else max(0.0, deadline - time.monotonic())) and stored
    return stored


def shutdown(timeout: float | None = None) -> None:
    """End open runs, store what was logged (journal what cannot be), stop the exporter threads."""
    from ._system_metrics import stop as stop_system_metrics

    stop_system_metrics()
    status = "failed" if _crashed else "finished"
    for run in open_runs():
        try:
            run.end(status, failure=_crashed)
        except Exception:
            pass
    try:
        _store_process_console()
    except Exception:
        pass
    budget = _config.current().shutdown_timeout_s if timeout is None else timeout
    shutdown_all(budget)


atexit.register(shutdown)
