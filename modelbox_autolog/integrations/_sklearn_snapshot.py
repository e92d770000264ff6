"""A fitted scikit-learn estimator, pickled once, off the training thread when possible.

The model file, the training metrics and what the estimator learnt (``n_iter_``...) are all
read from one snapshot of the fitted estimator. Taking it on the training thread right after the
fit would put a pickle of the whole model (milliseconds to seconds for forests or
neighbour models) on the training path, so it is taken:

* by the exporter thread, as background work, once no instrumented fit is running; or
* by the training thread, just before anything we see would change the fitted state: a new
  ``fit``/``partial_fit`` of the estimator, or of a pipeline, search or ensemble that holds it
  (whichever comes first; a lock makes it happen once).

Hyperparameters changed in between by attribute assignment or ``set_params`` are caught by
comparing ``get_params(deep=True)`` with the values recorded when the fit started: the snapshot
gets the recorded values back (on a copy; the user's estimator is never touched). A replaced
sub-estimator cannot be put back: that model is not logged, with the reason as an event.
Fitted attributes edited in place by hand (``model.coef_[:] = 0``) are not detected.
"""

from __future__ import annotations

import pickle
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


class Snapshot:
    """The estimator as it was fitted; ``take`` pickles it (once), ``load`` unpickles a copy (once)."""

    __slots__ = ("_estimator", "_params", "_is_estimator", "_read_fitted", "_lock", "data", "failure", "fitted", "_model")

    def __init__(self, estimator: Any, params: dict[str, Any] | None, is_estimator: Callable[[Any], bool],
                 read_fitted: Callable[[Any], Any]) -> None:
        self._estimator = estimator  # held until taken: the user may drop it right after fit
        self._params = params  # get_params(deep=True) when the fit started
        self._is_estimator = is_estimator
        self._read_fitted = read_fitted
        self._lock = threading.Lock()
        self.data: bytes | None = None
        self.failure: str | None = None
        self.fitted: Any = None  # what read_fitted returned, from the live estimator at the same moment
        self._model: Any = None

    @property
    def pending(self) -> bool:
        return self._estimator is not None

    def take(self) -> bytes | None:
        """Pickle the estimator now unless already done; None (and ``failure`` says why) if it cannot be."""
        with self._lock:
            estimator, self._estimator = self._estimator, None
            if estimator is not None:
                try:
                    self.fitted = self._read_fitted(estimator)
                except Exception:
                    self.fitted = None
                try:
                    self.data = self._pickle(estimator)
                except Exception as exc:  # e.g. a FunctionTransformer holding a lambda: the user's choice
                    self.failure = f"{type(exc).__name__}: {exc}"[:500]
            return self.data

    def _pickle(self, estimator: Any) -> bytes:
        data = pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL)
        if self._params is None:
            return data
        current = estimator.get_params(deep=True)
        changed = {k: v for k, v in self._params.items() if not _same(current.get(k, _MISSING), v)}
        if not changed:
            return data
        is_estimator = self._is_estimator
        if any(_holds(v, is_estimator) or _holds(current.get(k), is_estimator) for k, v in changed.items()):
            raise RuntimeError(f"sub-estimators were replaced after the fit, before it could be saved: {sorted(changed)[:5]}")
        # The hyperparameters it was fitted with, put back on a copy only: ``set_params`` of the
        # copy reaches nothing of the user's (the copy's sub-estimators are copies too, and the
        # values set are copies of the recorded ones, which the user may still hold).
        copy = pickle.loads(data)
        copy.set_params(**{k: v if type(v) in PLAIN else deepcopy(v) for k, v in changed.items()})
        return pickle.dumps(copy, protocol=pickle.HIGHEST_PROTOCOL)

    def release(self) -> None:
        """Drop the pickle and the copy once the exporter used them (the registry of pending
        snapshots may keep this object as long as the user keeps the estimator)."""
        with self._lock:
            self._estimator = None
            self.data = None
            self._model = None

    def load(self) -> Any:
        """The unpickled copy (shared by the exporter's producers; they only read it)."""
        data = self.take()
        if data is None:
            raise RuntimeError(self.failure or "no snapshot")
        if self._model is None:
            self._model = pickle.loads(data)
        return self._model
