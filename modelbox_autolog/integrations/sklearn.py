"""scikit-learn (and joblib) autologging: every estimator's fit becomes a run.

How estimators are found, without a hand-written list: at setup we walk the subclasses of
``BaseEstimator`` that already exist, and we hook ``__init_subclass__`` of sklearn's two base
mixins (``_MetadataRequester``, which every ``BaseEstimator`` derives from, and
``_SetOutputMixin``) so that every estimator class defined later, in sklearn or in third-party
code, is instrumented as soon as its class statement completes. The outermost hook in the
``__init_subclass__`` chain does the work, after sklearn's own ``set_output`` wrapping, so our
wrapper is the class attribute and ``autolog(disable=True)`` restores the originals by identity.
``fit``, ``fit_transform``, ``fit_predict`` and ``partial_fit`` are wrapped where they are
defined (wrapt keeps signatures, ``isinstance``, pickling and ``clone`` intact). Estimators
from xgboost, lightgbm and catboost are left to their own integrations.

One run per outermost fit: nested fits (a Pipeline's steps, a search's candidates, a meta
estimator's sub-estimators, also inside sklearn's joblib worker threads) are not logged again.
Searches add the best params and score, ``cv_results_`` as a CSV table, and the best candidates
as child runs. ``partial_fit`` calls of one estimator share one run, ended when the estimator is
fitted from scratch, garbage collected, or at exit.

The model file, what the estimator learnt and the training metrics all come from one snapshot
(a pickle) of the fitted estimator, taken on the exporter thread once no fit is running, or on
the training thread just before something refits it (``_sklearn_snapshot``); the metrics use a
strided view of the training rows (no copy; skipped if the data's fingerprint changed
meanwhile), within a time budget. On the training thread a fit pays for the params, a
fingerprint of 16 rows and the run's records (~0.3 ms). ``joblib.dump`` of any estimator is captured as a
model with lineage to the run that fitted it; ``joblib.load`` of an estimator is recorded as an
input model of the active run (or of the next run that fits or saves that estimator).

Options (``autolog(options={"sklearn": {...}})``): ``log_training_metrics`` (True),
``max_metric_rows`` (10000, rows sampled for training metrics), ``metric_time_budget_s`` (1.0,
exporter time per fit for metrics), ``max_tuning_runs`` (5 child runs per search; 0 = none).
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import inspect
import math
import os
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from .. import _patching
from .._exporter import Deferred
from .._records import Event, Input, Metric, ModelFile, ModelRecord, Param, new_id
from .._run import NullRun, Run, active_run, autorun, start_run
from .._values import to_attrs, to_key, to_param_text
from . import _callers, _sklearn_plots
from . import _sklearn_metrics as m
from ._checkpoint_files import log_model_within_limit, model_limit_bytes
from ._identity import WeakIdentityMap
from ._sklearn_snapshot import PLAIN, Snapshot
from .base import Integration

FIT_METHODS = ("fit", "fit_transform", "fit_predict", "partial_fit")
OWN_INTEGRATIONS = ("xgboost", "lightgbm", "catboost")  # these log their sklearn wrappers themselves
FIT_GROUP = "sklearn.fit"
MODEL_FILE = "model.pkl"  # a plain pickle: joblib.load and pickle.load both read it
PROBE_ROWS = 256
HOLD_SNAPSHOTS = True  # snapshots, model files and metrics wait while a fit runs
METRIC_SHARE = 0.1  # training metrics may take this share of the fit's own time (beyond the probe)

_warnings_seen: ContextVar[list[str] | None] = ContextVar("modelbox_sklearn_warnings", default=None)
_subclass_depth: ContextVar[int] = ContextVar("modelbox_sklearn_subclass_depth", default=0)


# ---------------------------------------------------------------------- identity registries
_fitted_by = WeakIdentityMap()  # estimator -> Run that fitted it (lineage for joblib.dump)
_loaded_from = WeakIdentityMap()  # estimator -> (path, attrs) it was joblib.load-ed from
_partial_runs = WeakIdentityMap()  # estimator -> Run its partial_fit calls log into
_pending = WeakIdentityMap()  # estimator (and its fitted parts) -> Snapshot not yet taken


def _take_pending(estimator: Any) -> None:
    """Something is about to refit ``estimator``: the snapshot of its last fit is taken first."""
    snapshot = _pending.pop(estimator)
    if snapshot is not None and snapshot.pending:
        snapshot.take()


def remember_fitted(estimator: Any, run: Run) -> None:
    """Note which run fitted ``estimator``; a later ``joblib.dump`` of it is logged to that run.

    Other integrations (xgboost, lightgbm, catboost sklearn wrappers) may call this.
    """
    _fitted_by.set(estimator, run)


# ---------------------------------------------------------------------- small helpers
def _remember_tree(estimator: Any, run: Run, snapshot: Snapshot | None = None, depth: int = 0) -> None:
    """The estimator and the fitted parts users save on their own (a search's best estimator,
    a pipeline's steps) all trace back to this run; refitting any of them first takes the
    run's pending snapshot."""
    _fitted_by.set(estimator, run)
    if snapshot is not None:
        _pending.set(estimator, snapshot)
    if depth > 3:
        return
    parts = [step for _name, step in getattr(estimator, "steps", None) or [] if isinstance(_name, str)]
    parts += [getattr(estimator, attr, None) for attr in ("best_estimator_", "estimator_", "final_estimator_")]
    for part in parts:
        if _is_estimator(part):
            _remember_tree(part, run, snapshot, depth + 1)


def _is_estimator(obj: Any) -> bool:
    return not isinstance(obj, type) and callable(getattr(obj, "fit", None)) and callable(getattr(obj, "get_params", None))


_own_integration: weakref.WeakKeyDictionary[type, bool] = weakref.WeakKeyDictionary()


def _from_own_integration(cls: type) -> bool:
    known = _own_integration.get(cls)
    if known is None:
        known = any((getattr(k, "__module__", "") or "").split(".")[0] in OWN_INTEGRATIONS for k in cls.__mro__)
        with contextlib.suppress(TypeError):
            _own_integration[cls] = known
    return known


def _class_path(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _param_value(value: Any) -> Any:
    """Estimators inside params become their class name: their repr is slow and says nothing new."""
    if type(value) in PLAIN:
        return value
    if _is_estimator(value):
        return type(value).__name__
    if isinstance(value, (list, tuple)):
        return [_param_value(v) for v in value]
    return value


def _params_of(estimator: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``get_params(deep=True)`` as it is, and as logged (estimators named, lists copied; encoding
    is left to the exporter). Sub-estimators about to be refitted have their pending snapshots taken."""
    raw = estimator.get_params(deep=True)
    params: dict[str, Any] = {"estimator_class": _class_path(estimator)}
    for key, value in raw.items():
        if type(value) not in PLAIN and _is_estimator(value):
            _take_pending(value)
        params[key] = _param_value(value)
    return raw, params


_param_names: weakref.WeakKeyDictionary[type, tuple[Any, list[str]]] = weakref.WeakKeyDictionary()


def _cached_param_names(wrapped: Any, cls: Any, args: tuple, kwargs: dict) -> Any:
    """``BaseEstimator._get_param_names``, remembered per class: sklearn reads ``__init__``'s
    signature with ``inspect`` on every ``get_params`` (~25 µs per estimator, per call, and
    ``clone`` calls it for every candidate of a search). Same answer, a fresh list each time;
    a class whose ``__init__`` is replaced is read again."""
    if args or kwargs or not isinstance(cls, type):
        return wrapped(*args, **kwargs)
    init = cls.__init__
    known = _param_names.get(cls)
    if known is not None and known[0] is init:
        return list(known[1])
    names = wrapped()
    _param_names[cls] = (init, list(names))
    return names


def _fitted_values(estimator: Any, prefix: str = "") -> tuple[dict[str, float], dict[str, Any]]:
    """Scalars sklearn learnt (``n_iter_``, ``inertia_``, ``best_score_``...): floats as metrics, ints as params."""
    import numpy as np

    metrics: dict[str, float] = {}
    params: dict[str, Any] = {}
    for name, value in list(vars(estimator).items()):
        if not name.endswith("_") or name.startswith("_") or isinstance(value, bool):
            continue
        if name == "n_iter_" and isinstance(value, np.ndarray) and value.size and value.dtype.kind in "iuf":
            metrics[prefix + name] = float(value.max())
        elif isinstance(value, (float, np.floating)) or (name == "n_iter_" and isinstance(value, (int, np.integer))):
            metrics[prefix + name] = float(value)
        elif isinstance(value, (int, np.integer)):
            params[f"fitted.{prefix}{name}"] = int(value)
    for step_name, step in getattr(estimator, "steps", None) or []:
        if _is_estimator(step):
            m, p = _fitted_values(step, f"{prefix}{step_name}.")
            metrics.update(m)
            params.update(p)
    best = getattr(estimator, "best_estimator_", None)
    if _is_estimator(best):
        m, p = _fitted_values(best, f"{prefix}best_estimator.")
        metrics.update(m)
        params.update(p)
    return metrics, params


@functools.cache
def _library_versions() -> dict[str, str]:
    """Versions of the libraries a pickled estimator needs (fixed for the process; callers copy it)."""
    import sys

    versions = {"python": sys.version.split()[0]}
    for name in ("sklearn", "joblib", "numpy", "scipy"):
        module = sys.modules.get(name)
        if module is not None:
            versions[f"{name}_version"] = str(getattr(module, "__version__", ""))
    return versions


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _log_model_input(run: Run, path: str, attrs: dict[str, Any]) -> None:
    """``run.log_input(path, kind="model", sha256=...)`` with the hash computed on the exporter thread."""
    run_id, stamp = run.id, time.time()

    def produce() -> list[Any]:
        extra = dict(attrs)
        try:
            extra["sha256"] = _sha256(path)
        except OSError:
            pass
        return [Input(new_id(), run_id, "model", path, stamp, to_attrs(extra))]

    run._submit(Deferred(produce))


# ---------------------------------------------------------------------- staging of our own files
class _Staging:
    """Per-fit folders for files we hand to the exporter (``_staged=True``, deleted once stored).

    Each call makes a fresh folder (race-free: no thread ever removes a folder another is about
    to use); the exporter removes the file and then its folder once it is stored.
    """

    def __init__(self) -> None:
        self._root: str | None = None
        self._lock = threading.Lock()

    def file(self) -> str:
        """A fresh ``model.pkl`` path (not created yet) in a folder of its own, which the exporter
        removes with the file once it is stored."""
        return os.path.join(self.folder(), MODEL_FILE)

    def folder(self) -> str:
        with self._lock:
            if self._root is None or not os.path.isdir(self._root):
                self._root = tempfile.mkdtemp(prefix="modelbox-sklearn-")
            return tempfile.mkdtemp(dir=self._root)

    def cleanup(self) -> None:
        """Remove the root once empty (folders still holding a file wait for the exporter)."""
        with self._lock:
            if self._root is not None:
                with contextlib.suppress(OSError):
                    os.rmdir(self._root)


_staging = _Staging()


# ---------------------------------------------------------------------- training metrics
def _evaluate(model: Any, X: Any, y: Any, sample_weight: Any) -> dict[str, float]:
    """Training metrics of a fitted model on (a sample of) its training data."""
    import numpy as np
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(model) and y is not None and hasattr(model, "predict"):
        classes = getattr(model, "classes_", None)
        proba = model.predict_proba(X) if hasattr(model, "predict_proba") else None
        if proba is not None and classes is not None and _predicts_by_argmax(model) and getattr(proba, "ndim", 0) == 2 \
                and proba.shape[1] == len(classes):
            predicted = np.asarray(classes)[np.argmax(proba, axis=1)]  # what its predict returns
        else:
            predicted = model.predict(X)
        return m.classification(y, predicted, proba, classes, sample_weight)
    if is_regressor(model) and y is not None and hasattr(model, "predict"):
        return m.regression(y, model.predict(X), sample_weight)
    if hasattr(model, "score"):  # clusterers, density models, PCA: their own notion of score
        try:
            score = model.score(X) if y is None else model.score(X, y)
        except TypeError:
            return {}
        return {"training_score": float(score)}
    return {}


# scikit-learn classifiers whose ``predict`` is, by construction, the class of highest
# ``predict_proba`` (up to probabilities equal in floating point): their training metrics need
# one call, not two.
ARGMAX_CLASSIFIERS = frozenset({
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.tree._classes.DecisionTreeClassifier", "sklearn.tree._classes.ExtraTreeClassifier",
    "sklearn.ensemble._forest.RandomForestClassifier", "sklearn.ensemble._forest.ExtraTreesClassifier",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.naive_bayes.GaussianNB", "sklearn.naive_bayes.MultinomialNB", "sklearn.naive_bayes.BernoulliNB",
    "sklearn.naive_bayes.ComplementNB", "sklearn.naive_bayes.CategoricalNB",
    "sklearn.neural_network._multilayer_perceptron.MLPClassifier",
})


def _predicts_by_argmax(model: Any) -> bool:
    final = model
    steps = getattr(model, "steps", None)
    if steps and type(model).__name__ == "Pipeline":  # predict_proba and predict both end in the last step
        final = steps[-1][1]
    return _class_path(final) in ARGMAX_CLASSIFIERS


def _unchanged_check(X: Any, fingerprint: str | None) -> Any:
    """A test, for the exporter thread, that the user has not edited the training data in place since the fit."""
    def unchanged() -> bool:
        try:
            return fingerprint is not None and m.fingerprint(X) == fingerprint
        except Exception:
            return False

    return unchanged


def _metrics_producer(run_id: str, load: Any, X: Any, y: Any, sample_weight: Any, budget_s: float, unchanged: Any) -> Any:
    """Work for the exporter thread: load the model snapshot, score a probe of ``PROBE_ROWS`` rows,
    then as many rows as the budget allows; the rows scored are recorded with the metrics."""
    def produce() -> list[Any]:
        scored = 0
        try:
            if not unchanged():
                return []
            model = load()
            rows = m.n_rows(X) or 0
            step = max(1, math.ceil(rows / PROBE_ROWS))
            started = time.perf_counter()
            values = _evaluate(model, m.rows_every(X, step), m.rows_every(y, step) if y is not None else None,
                               m.rows_every(sample_weight, step) if sample_weight is not None else None)
            scored = math.ceil(rows / step)
            per_row = (time.perf_counter() - started) / max(1, scored)
            affordable = int(budget_s / per_row) if per_row > 0 else rows
            if step > 1 and affordable >= rows:  # the whole sample fits the budget: score it all
                values = _evaluate(model, X, y, sample_weight)
                scored = rows
            elif step > 1 and affordable >= 4 * PROBE_ROWS:  # a second pass only for a clearly better estimate
                finer = max(1, math.ceil(rows / affordable))
                values = _evaluate(model, m.rows_every(X, finer), m.rows_every(y, finer) if y is not None else None,
                                   m.rows_every(sample_weight, finer) if sample_weight is not None else None)
                scored = math.ceil(rows / finer)
        except Exception:  # metrics are a bonus: a model that cannot score its own training data is fine
            return []
        stamp = time.time()
        records: list[Any] = [Metric(run_id, key, value, 0, stamp, None) for key, value in values.items()
                              if math.isfinite(value)]
        if records:
            records.append(Param(run_id, "training_metrics_rows", to_param_text(scored)))
        return records

    return produce


def _model_producer(run_id: str, name: str, snapshot: Snapshot, metadata: dict[str, Any], dataset: str | None) -> Any:
    """Work for the exporter thread: the snapshot's file (joblib.load reads it) becomes the model file."""

    def produce() -> list[Any]:
        snapshot.take()
        path = snapshot.hand_over()
        if path is None:
            return []  # the event saying why comes with the fitted values
        metadata.update(_library_versions())
        if snapshot.serializer == "cloudpickle":
            metadata["serializer"] = "cloudpickle"  # functions or classes of the user's script, by value
        return [ModelRecord(new_id(), run_id, to_key(name), "sklearn", [ModelFile(MODEL_FILE, path, True)], time.time(),
                            to_attrs(metadata), {}, [dataset] if dataset else [])]

    return produce


def _fitted_values_producer(run_id: str, snapshot: Snapshot) -> Any:
    """Work for the exporter thread: take the snapshot; what the estimator learnt (``n_iter_``,
    ``inertia_``...) as it was then; an event if it could not be pickled."""

    def produce() -> list[Any]:
        snapshot.take()
        stamp = time.time()
        records: list[Any] = []
        if snapshot.failure is not None:
            records.append(Event(new_id(), run_id, "model_not_logged", stamp, None, {"reason": snapshot.failure}))
        if snapshot.fitted is not None:
            metrics, params = snapshot.fitted
            records += [Metric(run_id, key, value, 0, stamp, None) for key, value in metrics.items()]
            records += [Param(run_id, key, to_param_text(value)) for key, value in params.items()]
        return records

    return produce


# ---------------------------------------------------------------------- the integration
class SklearnIntegration(Integration):
    name = "sklearn"
    modules = ("sklearn",)
    distribution = "scikit-learn"
    requirement = ">=1.3"

    def setup(self, module: Any) -> None:
        import joblib
        from sklearn.base import BaseEstimator
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.utils import parallel as sk_parallel
        from sklearn.utils._metadata_requests import _MetadataRequester
        from sklearn.utils._set_output import _SetOutputMixin

        for owner in (_MetadataRequester, _SetOutputMixin):
            self.patch_raw(owner, "__init_subclass__", self._on_subclass)
        self.patch_raw(BaseEstimator, "_get_param_names", _cached_param_names)
        for cls in self._existing_estimators(BaseEstimator):
            self._instrument(cls)
        self.patch_raw(ConvergenceWarning, "__init__", _on_convergence_warning)
        _patching.guard_warnings(self.name)  # training metrics call the user's predict on our thread
        self.patch(sk_parallel.Parallel, "__call__", _parallel_hook)
        self.patch(sk_parallel._FuncWrapper, "__call__", _worker_hook)
        self.patch(joblib, "dump", self._dump_hook)
        self.patch(joblib, "load", self._load_hook)
        _callers.configure(self.option("library_packages", ()))
        _patching.when_imported(self.name, "sklearn.model_selection", self._setup_model_selection)

    def _setup_model_selection(self, module: Any) -> None:
        """The cross-validation helpers, where users import them from and where sklearn calls them."""
        from sklearn.model_selection import _validation

        for owner in (_validation, module):
            for helper in CV_HELPERS:
                if hasattr(owner, helper):
                    _patching.patch_call(self.name, owner, helper, self._cv_hook, group=FIT_GROUP,
                                         site=f"sklearn:{helper}")

    def teardown(self) -> None:
        _staging.cleanup()
        _param_names.clear()

    # ------------------------------------------------------------------ finding estimators
    @staticmethod
    def _existing_estimators(root: type) -> list[type]:
        found: list[type] = []
        seen: set[type] = set()
        stack = [root]
        while stack:
            for sub in stack.pop().__subclasses__():
                if sub not in seen:
                    seen.add(sub)
                    found.append(sub)
                    stack.append(sub)
        return found

    def _on_subclass(self, wrapped: Any, cls: Any, args: tuple, kwargs: dict) -> Any:
        """Raw wrapper of ``__init_subclass__``: instrument the class once the outermost hook returns."""
        token = _subclass_depth.set(_subclass_depth.get() + 1)
        try:
            result = wrapped(*args, **kwargs)
        finally:
            _subclass_depth.reset(token)
        if _subclass_depth.get() == 0 and isinstance(cls, type):
            _patching.safe("sklearn:instrument", self._instrument, cls)
        return result

    def _instrument(self, cls: type) -> None:
        from sklearn.base import BaseEstimator

        if not issubclass(cls, BaseEstimator) or _from_own_integration(cls):
            return
        for method in FIT_METHODS:
            owner = next((k for k in cls.__mro__ if method in k.__dict__), None)
            if owner is None or owner is object or _from_own_integration(owner):
                continue
            hook = self._partial_fit_hook if method == "partial_fit" else self._fit_hook
            _patching.patch_call(self.name, owner, method, hook, group=FIT_GROUP, site=f"sklearn:{owner.__name__}.{method}")

    # ------------------------------------------------------------------ fit
    def _fit_hook(self, call: _patching.Call) -> Iterator[Any]:
        estimator = call.instance
        if estimator is None or _from_own_integration(type(estimator)) or _callers.called_by_library():
            return  # a library's helper fit (a LabelEncoder inside a metric function...) is never a run
        _take_pending(estimator)
        partial = _partial_runs.pop(estimator)
        if partial is not None:
            partial.end("finished")  # a fit from scratch closes the estimator's partial_fit run
        X, y, sample_weight = _fit_data(call)
        # Read before a run exists: an estimator the framework will reject (a class given as a
        # step, a broken get_params) fails here, and the user gets the framework's own error.
        raw_params, params = _params_of(estimator)
        with autorun("sklearn", name=type(estimator).__name__, tags={"estimator_class": _class_path(estimator)}) as run:
            if isinstance(run, NullRun):
                yield None
                return
            raw_params, dataset, fingerprint = self._log_inputs(run, estimator, X, y, (raw_params, params))
            seen: list[str] = []
            warnings_token = _warnings_seen.set(seen)
            started, t0 = time.time(), time.perf_counter()
            try:
                yield None
            except BaseException as exc:
                run.log_event("fit", duration_s=time.perf_counter() - t0, timestamp=started, method=call.wrapped.__name__,
                              estimator=type(estimator).__name__, error=f"{type(exc).__name__}: {exc}")
                raise
            finally:
                _warnings_seen.reset(warnings_token)
            duration = time.perf_counter() - t0
            run.log_event("fit", duration_s=duration, timestamp=started, method=call.wrapped.__name__,
                          estimator=type(estimator).__name__, rows=_rows(X))
            snapshot = self._log_model_and_metrics(run, estimator, raw_params, dataset, fingerprint, X, y, sample_weight,
                                                   duration)
            self._log_outcome(run, estimator, seen, fitted_values=snapshot is None)
            _remember_tree(estimator, run, snapshot)

    def _log_inputs(self, run: Run, estimator: Any, X: Any, y: Any,
                    read: tuple[dict[str, Any], dict[str, Any]]) -> tuple[dict[str, Any], str | None, str | None]:
        """Params, and the training data as a dataset input; returns the raw params, the dataset ref and its fingerprint."""
        raw, params = read
        run._log_params_later(params)
        loaded = _loaded_from.pop(estimator)
        if loaded is not None:
            _log_model_input(run, *loaded)
        return (raw, *self._log_dataset(run, X, y))

    @staticmethod
    def _log_dataset(run: Run, X: Any, y: Any, role: str = "train") -> tuple[str | None, str | None]:
        """The data as a dataset input (shape, dtype, a fingerprint of 16 rows); its ref and fingerprint."""
        if X is None:
            return None, None
        info: dict[str, Any] = {"shape": m.shape_of(X), "type": type(X).__name__}
        try:
            digest = m.fingerprint(X)
        except Exception:  # an exotic container we cannot sample: describe it by shape and type only
            digest = hashlib.blake2b(repr(info).encode(), digest_size=10).hexdigest()
        info["fingerprint"] = digest
        if getattr(X, "dtype", None) is not None:
            info["dtype"] = str(X.dtype)
        if y is not None:
            info["target_shape"] = m.shape_of(y)
        run._log_params_later({"dataset": info})
        ref = f"sklearn-data:{digest}"
        run.log_input(ref, kind="dataset", role=role, **info)
        return ref, digest

    def _log_outcome(self, run: Run, estimator: Any, warnings_seen: list[str], fitted_values: bool = True) -> None:
        if fitted_values:  # else read from the snapshot, on the exporter thread
            metrics, params = _fitted_values(estimator)
            if metrics:
                run.log_metrics(metrics)
            if params:
                run.log_params(params)
        for message in warnings_seen:
            run.log_event("convergence_warning", message=message[:2000])
        if warnings_seen:
            run.set_tags({"converged": "false"})
        if isinstance(getattr(estimator, "cv_results_", None), dict):
            self._log_search(run, estimator)

    # ------------------------------------------------------------------ searches
    def _log_search(self, run: Run, search: Any) -> None:
        import numpy as np

        results = search.cv_results_
        if hasattr(search, "best_params_"):
            run.log_params({"best_params": search.best_params_, "best_index": int(search.best_index_)})
        best_score = getattr(search, "best_score_", None)
        if best_score is not None:
            run.log_metric("best_cv_score", float(best_score))
        folder = _staging.folder()
        path = os.path.join(folder, "cv_results.csv")
        columns = [c for c in results if hasattr(results[c], "__len__") and not isinstance(results[c], (str, bytes))]
        rows = min((len(results[c]) for c in columns), default=0)  # RFECV's cv_results_ has no "params"
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for i in range(rows):
                writer.writerow([_cell(results[c][i]) for c in columns])
        run.log_artifact(path, name="cv_results.csv", kind="table", _staged=True)

        cap = int(self.option("max_tuning_runs", 5) or 0)
        refit = getattr(search, "refit", True)
        rank_key = f"rank_test_{refit}" if isinstance(refit, str) else "rank_test_score"
        if rank_key not in results:
            rank_key = next((k for k in columns if k.startswith("rank_test_")), "")
        if cap <= 0 or not rank_key:
            return
        order = np.argsort(np.asarray(results[rank_key])[:rows], kind="stable")[:cap]
        numeric = [c for c in columns if c.startswith(("mean_", "std_", "split", "rank_"))]
        candidates = results.get("params")
        for index in order:
            child = start_run(name=f"{type(search).__name__}[{int(index)}]", parent=run,
                              tags={"framework": "sklearn", "autolog": "true", "candidate_index": int(index)})
            try:
                if candidates is not None:
                    child.log_params(candidates[index])
                child.log_metrics({c: results[c][index] for c in numeric if _is_number(results[c][index])})
            finally:
                child.end("finished")

    # ------------------------------------------------------------------ cross-validation helpers
    def _cv_hook(self, call: _patching.Call) -> Iterator[Any]:
        """``cross_validate``, ``cross_val_score``, ``cross_val_predict``, ``learning_curve``,
        ``validation_curve``, ``permutation_test_score``: one run for the call (its fits are
        nested, as a search's are), the scores as metrics, and the first folds as child runs."""
        estimator = call.argument("estimator")
        if not _is_estimator(estimator) or _callers.called_by_library():
            return
        helper = call.wrapped.__name__
        X, y = call.argument("X"), call.argument("y")
        raw_params, params = _params_of(estimator)
        tags = {"estimator_class": _class_path(estimator), "cv_helper": helper}
        with autorun("sklearn", name=f"{helper}({type(estimator).__name__})", tags=tags) as run:
            if isinstance(run, NullRun):
                yield None
                return
            run._log_params_later(params)
            run.log_params(_cv_params(call, helper))
            self._log_dataset(run, X, y)
            started, t0 = time.time(), time.perf_counter()
            try:
                result = yield None
            except BaseException as exc:
                run.log_event(helper, duration_s=time.perf_counter() - t0, timestamp=started,
                              error=f"{type(exc).__name__}: {exc}")
                raise
            run.log_event(helper, duration_s=time.perf_counter() - t0, timestamp=started, rows=_rows(X))
            self._log_cv_result(run, helper, result, estimator, call, y)

    def _log_cv_result(self, run: Run, helper: str, result: Any, estimator: Any, call: _patching.Call, y: Any) -> None:
        import numpy as np

        if helper in ("cross_validate", "cross_val_score"):
            folds = result if isinstance(result, dict) else {"test_score": result}
            series = {k: np.asarray(v, dtype=float) for k, v in folds.items()
                      if k.startswith(("test_", "train_", "fit_time", "score_time"))
                      and np.asarray(v).dtype.kind in "iuf" and np.asarray(v).ndim == 1}
            for key, values in series.items():
                _log_summary(run, key, values)
                for fold, value in enumerate(values):
                    run.log_metric(key, value, step=fold)
            self._log_fold_runs(run, helper, series)
        elif helper == "cross_val_predict":
            method = call.argument("method") or "predict"
            if method == "predict" and y is not None:
                self._log_prediction_scores(run, estimator, y, result)
        elif helper == "learning_curve" and isinstance(result, tuple) and len(result) >= 3:
            sizes = [int(s) for s in np.asarray(result[0]).ravel()]
            names = ("train_score", "test_score", "fit_time", "score_time")
            for name, values in zip(names, result[1:], strict=False):
                values = np.asarray(values, dtype=float)
                for size, row in zip(sizes, values, strict=False):
                    run.log_metric(f"{name}_mean", float(np.mean(row)), step=size)
                    run.log_metric(f"{name}_std", float(np.std(row)), step=size)
        elif helper == "validation_curve" and isinstance(result, tuple) and len(result) == 2:
            for name, values in zip(("train_score", "test_score"), result, strict=True):
                for index, row in enumerate(np.asarray(values, dtype=float)):
                    run.log_metric(f"{name}_mean", float(np.mean(row)), step=index)
                    run.log_metric(f"{name}_std", float(np.std(row)), step=index)
        elif helper == "permutation_test_score" and isinstance(result, tuple) and len(result) == 3:
            score, permutation_scores, pvalue = result
            run.log_metrics({"score": score, "pvalue": pvalue})
            _log_summary(run, "permutation_score", np.asarray(permutation_scores, dtype=float))

    def _log_fold_runs(self, run: Run, helper: str, series: dict[str, Any]) -> None:
        """The first ``max_tuning_runs`` folds as child runs (the parent has every fold's values)."""
        cap = int(self.option("max_tuning_runs", 5) or 0)
        folds = min((len(v) for v in series.values()), default=0)
        for fold in range(min(cap, folds)):
            child = start_run(name=f"{helper}[fold {fold}]", parent=run,
                              tags={"framework": "sklearn", "autolog": "true", "fold": fold})
            try:
                child.log_metrics({key: values[fold] for key, values in series.items()})
            finally:
                child.end("finished")

    @staticmethod
    def _log_prediction_scores(run: Run, estimator: Any, y: Any, predicted: Any) -> None:
        """Out-of-fold scores of ``cross_val_predict``'s predictions, computed on the exporter thread."""
        from sklearn.base import is_classifier, is_regressor

        classifier, regressor = is_classifier(estimator), is_regressor(estimator)
        run_id = run.id

        def produce() -> list[Any]:
            with _patching.own_code():
                try:
                    if classifier:
                        values = m.classification(y, predicted)
                    elif regressor:
                        values = m.regression(y, predicted)
                    else:
                        return []
                except Exception:  # scores are a bonus: targets of an unusual shape
                    return []
            stamp = time.time()
            return [Metric(run_id, key.replace("training_", "cv_", 1), value, 0, stamp, None)
                    for key, value in values.items() if math.isfinite(value)]

        run._submit(Deferred(produce, background=True))

    # ------------------------------------------------------------------ models and metrics
    def _log_model_and_metrics(self, run: Run, estimator: Any, params: dict[str, Any], dataset: str | None,
                               fingerprint: str | None, X: Any, y: Any, sample_weight: Any,
                               fit_s: float) -> Snapshot | None:
        """Hand the fitted estimator to the exporter thread, which snapshots it once no fit is
        running (see _sklearn_snapshot) and from that snapshot writes the model file, reads what
        the estimator learnt (``n_iter_``...) and computes the training metrics, on a view of the
        training rows (no copy), skipped if the data changed since. None when nothing needs a snapshot."""
        log_models = self.config.log_models
        want_metrics = (bool(self.option("log_training_metrics", True)) and m.rereadable(X)
                        and (y is None or m.rereadable(y))
                        and (hasattr(estimator, "predict") or hasattr(estimator, "score")))
        want_plots = m.rereadable(X) and m.rereadable(y) and _sklearn_plots.wanted(self.config, estimator, X, y)
        if not (log_models or want_metrics or want_plots):
            return None  # no snapshot of a model nobody asked for: it may be large
        snapshot = Snapshot(estimator, params, _is_estimator, _fitted_values, _staging.file, model_limit_bytes())
        producers = [_fitted_values_producer(run.id, snapshot)]
        if want_metrics:
            rows = m.n_rows(X) or 0
            step = max(1, math.ceil(rows / max(1, int(self.option("max_metric_rows", 10_000)))))
            sample = [m.rows_every(v, step) if v is not None else None for v in (X, y, sample_weight)]
            # Scoring costs at most a share of the fit itself (a 12 ms fit is scored on the probe
            # only), and never more than metric_time_budget_s.
            budget = min(float(self.option("metric_time_budget_s", 1.0)), METRIC_SHARE * fit_s)
            producers.append(_metrics_producer(run.id, snapshot.load, *sample, budget,
                                               unchanged=_unchanged_check(X, fingerprint)))
        if want_plots:  # the diagnostic plots (confusion matrix, ROC, PR, residuals) on a row sample
            step = max(1, math.ceil((m.n_rows(X) or 0) / _sklearn_plots.MAX_PLOT_ROWS))
            producers.append(_sklearn_plots.plots_producer(run.id, snapshot.load, snapshot.pickled, m.rows_every(X, step),
                                                           m.rows_every(y, step), _unchanged_check(X, fingerprint)))
        if log_models:  # last: the producers before it read the snapshot that becomes the model file
            metadata = {"estimator_class": _class_path(estimator), "saved_by": "autolog"}
            producers.append(_model_producer(run.id, type(estimator).__name__, snapshot, metadata, dataset))
        def produce_all() -> list[Any]:
            try:
                with _patching.own_code():  # fits inside predict are not runs; its warnings are not the user's
                    return [record for produce in producers for record in produce()]
            finally:
                snapshot.release()

        run._submit(Deferred(produce_all, background=HOLD_SNAPSHOTS))
        return snapshot

    # ------------------------------------------------------------------ partial_fit
    def _partial_fit_hook(self, call: _patching.Call) -> Iterator[Any]:
        estimator = call.instance
        if estimator is None or _from_own_integration(type(estimator)) or _callers.called_by_library():
            return
        _take_pending(estimator)
        run = active_run()
        own = run is None
        if own:
            run = _partial_runs.get(estimator)
            if run is None or run.status != "running":
                run = self._open_partial_run(estimator)
        if isinstance(run, NullRun):
            yield None
            return
        X, _y, _w = _fit_data(call)
        t0 = time.perf_counter()
        try:
            yield None
        except BaseException:
            if own:
                _partial_runs.pop(estimator)
                run.end("failed")
            raise
        run.log_metric("partial_fit_duration_s", time.perf_counter() - t0)
        rows = _rows(X)
        if rows is not None:
            run.log_metric("partial_fit_rows", rows)
        metrics, _params = _fitted_values(estimator)
        if metrics:
            run.log_metrics(metrics)
        _fitted_by.set(estimator, run)

    def _open_partial_run(self, estimator: Any) -> Run:
        """A run that outlives the call: not made current, ended with the estimator or at exit."""
        from .._run import _current_run

        run = start_run(name=type(estimator).__name__, _auto=True,
                        tags={"framework": "sklearn", "autolog": "true", "estimator_class": _class_path(estimator),
                              "method": "partial_fit"})
        if run._token is not None:
            _current_run.reset(run._token)  # later fits in this thread are not its children
            run._token = None
        if run._console is not None:  # a run that outlives the call must not hold a tee on stdout
            with contextlib.suppress(Exception):
                leftover = run._console.stop()
                if leftover:
                    os.remove(leftover)
            run._console = None
        run.log_params(_params_of(estimator)[1])
        _partial_runs.set(estimator, run)
        weakref.finalize(estimator, run.end, "finished")
        return run

    # ------------------------------------------------------------------ joblib
    def _dump_hook(self, call: _patching.Call) -> Iterator[Any]:
        value = call.argument("value")
        if not _is_estimator(value):
            return
        target = call.argument("filename")
        written = yield None
        paths = [p for p in (written or []) if isinstance(p, str)]
        path = paths[0] if paths else getattr(target, "name", None)
        if not isinstance(path, str) or not os.path.isfile(path):
            return
        path = os.path.abspath(path)
        run = _fitted_by.get(value) or active_run()
        if run is None:
            with autorun("sklearn", name=type(value).__name__, tags={"estimator_class": _class_path(value)}) as run:
                self._log_saved(run, value, path)
        else:
            self._log_saved(run, value, path)

    def _log_saved(self, run: Run, value: Any, path: str) -> None:
        loaded = _loaded_from.pop(value)
        if loaded is not None:
            _log_model_input(run, *loaded)
        staged = os.path.join(_staging.folder(), os.path.basename(path))
        try:
            os.link(path, staged)  # the user may delete or move the file before the exporter copies it
        except OSError:
            staged = ""
        metadata = {"estimator_class": _class_path(value), "saved_by": "joblib.dump", "path": path, **_library_versions()}
        log_model_within_limit(run, staged or path, name=type(value).__name__, framework="sklearn", metadata=metadata,
                      _staged=bool(staged))
        run.log_event("model_saved", path=path, estimator=type(value).__name__)

    def _load_hook(self, call: _patching.Call) -> Iterator[Any]:
        source = call.argument("filename")
        value = yield None
        path = source if isinstance(source, (str, os.PathLike)) else getattr(source, "name", None)
        if not _is_estimator(value) or not isinstance(path, (str, os.PathLike)):
            return
        path = os.path.abspath(os.fspath(path))
        attrs = {"estimator_class": _class_path(value), "loaded_by": "joblib.load"}
        run = active_run()
        if run is not None:
            _log_model_input(run, path, attrs)
        else:
            _loaded_from.set(value, (path, attrs))

    # ------------------------------------------------------------------ reading back
    @classmethod
    def load_model(cls, files_dir: str, model: Any) -> Any:
        import joblib

        names = [f.name for f in getattr(model, "files", [])] or sorted(os.listdir(files_dir))
        candidates = [n for n in names if n.endswith((".joblib", ".pkl", ".pickle"))] or names
        if not candidates:
            raise FileNotFoundError(f"model {getattr(model, 'id', '')} has no files in {files_dir}")
        return joblib.load(os.path.join(files_dir, candidates[0]))


# ---------------------------------------------------------------------- module-level hooks
_layouts: weakref.WeakKeyDictionary[Any, tuple[str, ...]] = weakref.WeakKeyDictionary()
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _positional_names(call: _patching.Call) -> tuple[str, ...] | None:
    """The fit method's positional parameter names (without self), cached per function."""
    function = getattr(call.wrapped, "__func__", call.wrapped)
    layout = _layouts.get(function)
    if layout is None:
        try:
            parameters = inspect.signature(call.wrapped).parameters.values()
        except (TypeError, ValueError):
            return None
        layout = tuple(p.name for p in parameters if p.kind in _POSITIONAL)
        with contextlib.suppress(TypeError):
            _layouts[function] = layout
    return layout


def _fit_data(call: _patching.Call) -> tuple[Any, Any, Any]:
    """The training data, by position (``X`` is named differently by text vectorizers and some meta estimators)."""
    args, kwargs = call.args, call.kwargs
    names = _positional_names(call)
    if names is None:
        return (args[0] if args else None), None, None

    def argument(name: str) -> Any:
        if name in names:
            index = names.index(name)
            if index < len(args):
                return args[index]
        return kwargs.get(name)  # also when it travels in the method's **kwargs

    X = args[0] if args else (kwargs.get(names[0]) if names else None)
    return X, argument("y"), argument("sample_weight")


CV_HELPERS = ("cross_validate", "cross_val_score", "cross_val_predict", "learning_curve", "validation_curve",
              "permutation_test_score")


def _cv_params(call: _patching.Call, helper: str) -> dict[str, Any]:
    """How the cross-validation was set up: folds, scoring and the helper's own knobs."""
    cv = call.argument("cv")
    folds: Any = cv
    if cv is None:
        folds = 5  # scikit-learn's default
    elif not isinstance(cv, int):
        splits = getattr(cv, "get_n_splits", None)
        try:
            folds = int(splits()) if callable(splits) else repr(cv)[:200]
        except Exception:  # a splitter that needs the data to count its splits
            folds = type(cv).__name__
    scoring = call.argument("scoring")
    params: dict[str, Any] = {"cv_helper": helper, "cv": folds,
                              "cv_splitter": type(cv).__name__ if cv is not None and not isinstance(cv, int) else None,
                              "scoring": scoring if scoring is None or isinstance(scoring, (str, list, tuple))
                              else getattr(scoring, "__name__", type(scoring).__name__)}
    for name in ("method", "n_permutations", "param_name", "return_train_score"):
        value = call.argument(name)
        if value is not None:
            params[name] = value
    param_range = call.argument("param_range")
    if param_range is not None:
        params["param_range"] = [_param_value(v) for v in list(param_range)[:100]]
    return {k: v for k, v in params.items() if v is not None}


def _log_summary(run: Run, key: str, values: Any) -> None:
    import numpy as np

    finite = values[np.isfinite(values)] if len(values) else values
    if len(finite):
        run.log_metrics({f"{key}_mean": float(np.mean(finite)), f"{key}_std": float(np.std(finite))})


def _rows(data: Any) -> int | None:
    return m.n_rows(data) if data is not None else None


def _is_number(value: Any) -> bool:
    try:
        return math.isfinite(float(value)) and not isinstance(value, (str, bytes))
    except (TypeError, ValueError):
        return False


def _cell(value: Any) -> Any:
    if value is None or getattr(value, "mask", False) is True:
        return ""
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", None) == 0:
        value = item()
    return value


def _on_convergence_warning(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    """``ConvergenceWarning.__init__``: runs for every warning issued, whatever the filters say."""
    seen = _warnings_seen.get()
    if seen is not None and len(seen) < 100:
        seen.append(str(args[0]) if args else "")
    return wrapped(*args, **kwargs)


def _parallel_hook(call: _patching.Call) -> Iterator[Any]:
    """``sklearn.utils.parallel.Parallel.__call__`` inside a fit: mark the tasks as nested."""
    if not _patching.in_group(FIT_GROUP):
        return
    iterable = call.argument("iterable")
    yield call.replace(iterable=_marked(iterable))


def _marked(iterable: Any) -> Iterator[Any]:
    for task in iterable:
        function = task[0] if isinstance(task, tuple) and task else None
        if function is not None and type(function).__name__ == "_FuncWrapper":
            function._modelbox_nested = True  # sklearn's own wrapper object, created for this call
        yield task


def _worker_hook(call: _patching.Call) -> Iterator[Any]:
    """A task of a fit run by a joblib worker thread: its fits are nested, not runs of their own."""
    if not getattr(call.instance, "_modelbox_nested", False) or _patching.in_group(FIT_GROUP):
        return
    with _patching.entered(FIT_GROUP):
        yield None

