"""A fitted scikit-learn estimator, pickled once, off the training thread when possible.

The model file, the training metrics and what the estimator learnt (``n_iter_``...) are all
read from one snapshot of the fitted estimator. Taking it on the training thread right after the
fit would put a pickle of the whole model (milliseconds to seconds for forests or
neighbour models) on the training path, so it is taken:

* by the exporter thread, as background work, once no instrumented fit is running; or
* by the training thread, just before anything we see would change the fitted state: a new
  ``fit``/``partial_fit`` of the estimator, or of a pipeline, search or ensemble that holds it
  (whichever comes first; a lock makes it happen once).

The pickle stays in memory while it is small (up to 8 MB; written once, as the model file) and
is streamed into a file beyond that (never a second copy in memory); it stops as soon as it
passes ``max_model_mb``: such a model is recorded as an event, not stored.
Functions and classes of the user's script (``__main__``: a ``FunctionTransformer`` of a
function defined there, an estimator class of the script) are pickled by value with
cloudpickle, as MLflow does, so the model loads in another process; so are objects whose
module is gone (a script run through ``runpy`` that has ended).

Hyperparameters changed in between by attribute assignment or ``set_params`` are caught by
comparing ``get_params(deep=True)`` with the values recorded when the fit started: the snapshot
gets the recorded values back (on a copy; the user's estimator is never touched). A replaced
sub-estimator cannot be put back: that model is not logged, with the reason as an event.
Fitted attributes edited in place by hand (``model.coef_[:] = 0``) are not detected.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import pickle
import sys
import threading
from collections.abc import Callable
from copy import deepcopy
from typing import Any

_MISSING = object()
PLAIN = (str, int, float, bool, type(None))  # param values kept as they are


def _same(a: Any, b: Any) -> bool:
    """Unchanged since the fit: the same object, an equal plain value, or a list/tuple of those
    (``steps``/``transformer_list`` are rebound by every fit, holding the same estimators)."""
    if a is b:
        return True
    try:
        if type(a) is not type(b):
            return False
        if type(a) in PLAIN:
            return bool(a == b)
        if type(a) in (list, tuple):
            return len(a) == len(b) and all(_same(x, z) for x, z in zip(a, b, strict=True))
    except Exception:
        return False
    return False


def _holds(value: Any, is_estimator: Callable[[Any], bool], depth: int = 0) -> bool:
    """An estimator, or a list/tuple/dict holding one (a Pipeline's ``steps``)."""
    if is_estimator(value):
        return True
    if depth > 3:
        return False
    if isinstance(value, (list, tuple)):
        return any(_holds(v, is_estimator, depth + 1) for v in value)
    if isinstance(value, dict):
        return any(_holds(v, is_estimator, depth + 1) for v in value.values())
    return False


class TooLarge(Exception):
    """The pickle passed the size limit: the model is not stored."""


SPILL_BYTES = 8 * 2**20  # a pickle up to this size stays in memory until written as the model file


class _Sink:
    """Where a pickle is written: memory up to ``SPILL_BYTES``, then a file (from ``make_path``);
    past ``limit`` bytes the pickling stops."""

    def __init__(self, limit: int, make_path: Callable[[], str]) -> None:
        self._limit = limit
        self._make_path = make_path
        self._chunks: list[bytes] = []
        self._handle: Any = None
        self.size = 0
        self.path: str | None = None

    def write(self, data: Any) -> int:
        size = memoryview(data).nbytes
        self.size += size
        if self.size > self._limit:
            raise TooLarge(self.size)
        if self._handle is None and self.size > SPILL_BYTES:
            self.path = self._make_path()
            self._handle = open(self.path, "wb")  # noqa: SIM115 - closed by close()
            for chunk in self._chunks:
                self._handle.write(chunk)
            self._chunks = []
        if self._handle is not None:
            return self._handle.write(data)
        self._chunks.append(bytes(data))
        return size

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()

    def value(self) -> bytes | None:
        return None if self.path is not None else b"".join(self._chunks)


_script_module_names: tuple[Any, list[str]] = (None, [])


def _script_modules() -> list[str]:
    """Modules of the user's script, which no other process can import: ``__main__``, and the
    temporary modules ``runpy`` runs scripts in (``<run_path>``...). Looked up again only when
    ``sys.modules`` changed (its size or its last entry)."""
    global _script_module_names
    modules = sys.modules
    key = (len(modules), next(reversed(modules), None))
    cached, names = _script_module_names
    if cached != key:
        names = ["__main__", *(name for name in list(modules) if name[:1] == "<")]
        _script_module_names = (key, names)
    return names


def _mentions(sink: _Sink, names: list[str]) -> bool:
    """Does the pickle refer to one of these modules by name?"""
    data = sink.value()
    if data is not None:
        return any(name.encode() in data for name in names)
    with open(sink.path or "", "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        return any(mapped.find(name.encode()) != -1 for name in names)


def _by_value_pickler() -> Any:
    """cloudpickle's Pickler, seeing through our patches: a class of the user's script pickled by
    value carries its own ``fit``, not our wrapper of it."""
    import cloudpickle
    import wrapt

    class ByValuePickler(cloudpickle.Pickler):
        def reducer_override(self, obj: Any) -> Any:
            if isinstance(obj, wrapt.FunctionWrapper):
                obj = obj.__wrapped__
                if not isinstance(obj, type):
                    reduced = super().reducer_override(obj)
                    return obj.__reduce_ex__(self.proto) if reduced is NotImplemented else reduced
            return super().reducer_override(obj)

    return ByValuePickler


def dump(obj: Any, limit: int, make_path: Callable[[], str]) -> tuple[str, _Sink]:
    """Pickle ``obj`` (at most ``limit`` bytes, else ``TooLarge``): the serializer used and where
    the pickle is. Plain pickle, or cloudpickle when the model refers to the user's script (or
    plain pickle fails: a lambda, a function whose module is gone)."""
    script_modules = _script_modules()
    try:
        sink = _dump_with(pickle.Pickler, obj, limit, make_path)
        if not _mentions(sink, script_modules):
            return "pickle", sink
        _remove(sink.path)
    except TooLarge:
        raise
    except Exception as plain_error:
        try:
            import cloudpickle  # noqa: F401
        except ImportError:
            raise plain_error from None
    import cloudpickle

    registered = []
    for name in script_modules[1:]:  # a script runpy is still running: by value, as __main__ is
        module = sys.modules.get(name)
        if module is not None:
            with contextlib.suppress(Exception):
                cloudpickle.register_pickle_by_value(module)
                registered.append(module)
    try:
        return "cloudpickle", _dump_with(_by_value_pickler(), obj, limit, make_path)
    finally:
        for module in registered:
            with contextlib.suppress(Exception):
                cloudpickle.unregister_pickle_by_value(module)


def _dump_with(pickler: Any, obj: Any, limit: int, make_path: Callable[[], str]) -> _Sink:
    sink = _Sink(limit, make_path)
    try:
        pickler(sink, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    except BaseException:
        sink.close()
        _remove(sink.path)
        raise
    sink.close()
    return sink


class Snapshot:
    """The estimator as it was fitted; ``take`` pickles it (once), ``load`` reads a copy (once),
    ``hand_over`` gives the exporter the model file."""

    __slots__ = ("_estimator", "_params", "_is_estimator", "_read_fitted", "_lock", "_make_path", "_limit",
                 "_data", "_path", "bytes", "serializer", "failure", "fitted", "_model")

    def __init__(self, estimator: Any, params: dict[str, Any] | None, is_estimator: Callable[[Any], bool],
                 read_fitted: Callable[[Any], Any], make_path: Callable[[], str], limit_bytes: int) -> None:
        self._estimator = estimator  # held until taken: the user may drop it right after fit
        self._params = params  # get_params(deep=True) when the fit started
        self._is_estimator = is_estimator
        self._read_fitted = read_fitted
        self._lock = threading.Lock()
        self._make_path = make_path  # a fresh file path in our staging folder
        self._limit = limit_bytes
        self._data: bytes | None = None  # the pickle, in memory, or
        self._path: str | None = None  # in a file (a big one)
        self.bytes = 0
        self.serializer = ""
        self.failure: str | None = None
        self.fitted: Any = None  # what read_fitted returned, from the live estimator at the same moment
        self._model: Any = None

    @property
    def pending(self) -> bool:
        return self._estimator is not None

    @property
    def taken(self) -> bool:
        """A pickle is held (in memory or in a file)."""
        return self._data is not None or self._path is not None

    def take(self) -> bool:
        """Pickle the estimator now unless already done; False (``failure`` says why) if it cannot be."""
        with self._lock:
            estimator, self._estimator = self._estimator, None
            if estimator is not None:
                try:
                    self.fitted = self._read_fitted(estimator)
                except Exception:
                    self.fitted = None
                try:
                    self._write(estimator)
                except TooLarge as exc:
                    self.failure = (f"the pickled model passed max_model_mb ({self._limit / 2**20:.4g} MB) "
                                    f"at {int(exc.args[0]) / 2**20:.4g} MB: not stored")
                except Exception as exc:  # e.g. an object nothing can pickle: the user's choice
                    self.failure = f"{type(exc).__name__}: {exc}"[:500]
            return self.taken

    def _keep(self, serializer: str, sink: _Sink) -> None:
        _remove(self._path)
        self.serializer, self._data, self._path, self.bytes = serializer, sink.value(), sink.path, sink.size

    def _write(self, estimator: Any) -> None:
        self._keep(*dump(estimator, self._limit, self._make_path))
        if self._params is None:
            return
        current = estimator.get_params(deep=True)
        changed = {k: v for k, v in self._params.items() if not _same(current.get(k, _MISSING), v)}
        if not changed:
            return
        is_estimator = self._is_estimator
        if any(_holds(v, is_estimator) or _holds(current.get(k), is_estimator) for k, v in changed.items()):
            self._drop()
            raise RuntimeError(f"sub-estimators were replaced after the fit, before it could be saved: {sorted(changed)[:5]}")
        # The hyperparameters it was fitted with, put back on a copy only: ``set_params`` of the
        # copy reaches nothing of the user's (the copy's sub-estimators are copies too, and the
        # values set are copies of the recorded ones, which the user may still hold).
        copy = self._unpickle()
        copy.set_params(**{k: v if type(v) in PLAIN else deepcopy(v) for k, v in changed.items()})
        self._keep(*dump(copy, self._limit, self._make_path))

    def _unpickle(self) -> Any:
        if self._data is not None:
            return pickle.loads(self._data)
        with open(self._path or "", "rb") as handle:
            return pickle.load(handle)

    def _drop(self) -> None:
        _remove(self._path)
        self._data = self._path = None

    def hand_over(self) -> str | None:
        """The model file, now the exporter's (it deletes it once stored); None without a pickle."""
        with self._lock:
            path, data = self._path, self._data
            self._path = self._data = None
        if data is not None:
            path = self._make_path()
            with open(path, "wb") as handle:
                handle.write(data)
        return path

    def release(self) -> None:
        """Drop the pickle (unless handed over) and the copy once the exporter used them (the registry
        of pending snapshots may keep this object as long as the user keeps the estimator)."""
        with self._lock:
            self._estimator = None
            self._drop()
            self._model = None

    def pickled(self) -> bytes | None:
        """The model's pickle when it is held in memory (small models), else None."""
        if not self.take():
            return None
        return self._data

    def load(self) -> Any:
        """The unpickled copy (shared by the exporter's producers; they only read it)."""
        if self._model is None:
            if not self.take():
                raise RuntimeError(self.failure or "no snapshot")
            self._model = self._unpickle()
        return self._model


def _remove(path: str | None) -> None:
    """Delete a pickle of ours, and its staging folder (one per file) once empty."""
    if path is not None:
        with contextlib.suppress(OSError):
            os.remove(path)
            os.rmdir(os.path.dirname(path))
