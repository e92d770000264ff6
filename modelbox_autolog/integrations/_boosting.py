"""What the XGBoost, LightGBM and CatBoost integrations share: metric naming, feature-importance
tables, final-model files, and which run trained (or which file produced) a live model."""

from __future__ import annotations

import contextlib
import csv
import importlib
import inspect
import os
import shutil
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from .. import _config
from .._exporter import Deferred
from .._patching import Call, entered, in_group, own_code
from .._records import Event, ModelFile, ModelRecord, new_id
from .._run import LoggedModel, NullRun, Run, active_run, autorun, start_run
from .._values import to_attrs, to_key
from ._callers import called_by_library
from ._checkpoint_files import model_limit_bytes
from ._identity import WeakIdentityMap

# ---------------------------------------------------------------------- arguments and params


def argument(call: Call, name: str) -> Any:
    """An argument of the intercepted call, falling back to the signature's default."""
    missing = object()
    value = call.argument(name, missing)
    if value is not missing:
        return value
    try:
        parameter = inspect.signature(call.wrapped).parameters.get(name)
    except (TypeError, ValueError):
        return None
    if parameter is None or parameter.default is inspect.Parameter.empty:
        return None
    return parameter.default


def params_dict(params: Any) -> dict[str, Any]:
    """Booster params as a dict; XGBoost also takes a list of pairs (repeated keys become lists)."""
    if params is None:
        return {}
    if isinstance(params, Mapping):
        return {str(k): v for k, v in params.items()}
    merged: dict[str, Any] = {}
    for key, value in params:
        if key in merged:
            previous = merged[key]
            merged[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            merged[key] = value
    return merged


def estimator_params(estimator: Any) -> dict[str, Any]:
    """A scikit-learn style wrapper's ``get_params()``, without the unset (None) ones."""
    params = {k: v for k, v in estimator.get_params(deep=False).items() if v is not None}
    params["estimator_class"] = class_path(estimator)
    return params


def class_path(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def import_class(path: str, allowed_prefix: str) -> type:
    """The class a model was logged as; only from the framework's own package."""
    module_name, _, class_name = path.rpartition(".")
    if module_name.split(".")[0] != allowed_prefix:
        raise ValueError(f"refusing to load a model class from outside {allowed_prefix}: {path}")
    return getattr(importlib.import_module(module_name), class_name)


def _sklearn_fit_group() -> str | None:
    return getattr(sys.modules.get("modelbox_autolog.integrations.sklearn"), "FIT_GROUP", None)


def sklearn_internals_quiet() -> Any:
    """A context in which scikit-learn fits are not logged: the wrappers use sklearn helpers
    (``LabelEncoder``, ...) inside their ``fit``, which are implementation details, not runs."""
    group = _sklearn_fit_group()
    return entered(group) if group else contextlib.nullcontext()


# ---------------------------------------------------------------------- where a training logs

TOP = "top"  # its own run (or the user's active run); logs the final model
INNER = "inner"  # ``train`` inside our own wrapper's ``fit``: into that fit's run
CHILD = "child"  # inside a scikit-learn meta-estimator's fit (Pipeline, GridSearchCV): a child run
SKIP = "skip"  # inside one on a worker thread that has no run: not logged at all


_children: weakref.WeakKeyDictionary[Run, int] = weakref.WeakKeyDictionary()  # child trainings per run


def placement(own_fit_group: str, framework: str | None = None) -> str:
    """Where a training starting now logs. Nested in a scikit-learn fit it gets a child run and
    no Model (the outer fit logs the whole estimator), never an unrelated run of its own; a
    search or cross-validation gets at most ``max_tuning_runs`` such child runs. A training a
    library's code starts on its own (not the user's call) is not logged."""
    if in_group(own_fit_group):
        return INNER if active_run() is not None else SKIP
    group = _sklearn_fit_group()
    if group is not None and in_group(group):
        parent = active_run()
        if parent is None:
            return SKIP
        made = _children.get(parent, 0)
        if made >= int(_config.current().option("sklearn", "max_tuning_runs", 5) or 0):
            return SKIP
        _children[parent] = made + 1
        return CHILD
    if called_by_library(framework):
        return SKIP
    return TOP


@contextlib.contextmanager
def training_run(framework: str, name: str, where: str) -> Iterator[Run]:
    if where == CHILD:
        with start_run(name=name, tags={"framework": framework, "autolog": "true"}, _auto=True) as run:
            yield run
    else:
        with autorun(framework, name=name) as run:
            yield run


# ---------------------------------------------------------------------- metrics


def metric_key(dataset: str, metric: str) -> str:
    """``<set>-<metric>``, as XGBoost and LightGBM print them (``validation_0-logloss``)."""
    return f"{dataset}-{metric}"


def log_history(run: Run, history: Mapping[str, Mapping[str, Sequence[float]]], period: int = 1,
                last_step: int | None = None) -> None:
    """Per-iteration metrics recorded by the framework itself (``{set: {metric: [values]}}``).

    ``period``: values were computed every ``period`` iterations (the last one always), so
    value ``i`` belongs to iteration ``i * period``, the last clamped to ``last_step``.
    """
    for dataset, metrics in history.items():
        for metric, values in metrics.items():
            key = metric_key(dataset, metric)
            count = len(values)
            for index, value in enumerate(values):
                step = index * period
                if last_step is not None and index == count - 1:
                    step = min(step, last_step)
                run.log_metric(key, value, step=step)


def training_done(run: Run) -> None:
    """A run opened for this training is complete (early stopping ends short of the planned rounds)."""
    if run.auto:
        run.set_progress(1.0)


def log_best(run: Run, best_iteration: Any, best_scores: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """Early-stopping outcome: ``best_iteration`` and ``best_score.<set>-<metric>``."""
    if best_iteration is not None:
        run.log_metric("best_iteration", int(best_iteration))
    for dataset, metrics in (best_scores or {}).items():
        for metric, value in metrics.items():
            run.log_metric(f"best_score.{metric_key(dataset, metric)}", value)


# ---------------------------------------------------------------------- files

_staging_root: str | None = None
_staging_lock = threading.Lock()


def stage_dir() -> str:
    """A fresh folder for files we hand to the exporter with ``_staged=True`` (it deletes them)."""
    global _staging_root
    with _staging_lock:
        if _staging_root is None or not os.path.isdir(_staging_root):
            _staging_root = tempfile.mkdtemp(prefix="modelbox-boosting-")
    return tempfile.mkdtemp(dir=_staging_root)


def log_importance_table(run: Run, features: Iterable[str], columns: Mapping[str, Mapping[str, float]],
                         name: str = "feature_importance.csv") -> str | None:
    """One CSV row per feature, one column per importance type, sorted by the first column."""
    features = list(features)
    known = set(features)
    for values in columns.values():  # features the model uses but did not name up front
        for feature in values:
            if feature not in known:
                known.add(feature)
                features.append(feature)
    first = next(iter(columns.values()), {})
    features.sort(key=lambda f: -float(first.get(f, 0.0)))
    path = os.path.join(stage_dir(), name)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["feature", *columns])
        for feature in features:
            writer.writerow([feature, *(float(values.get(feature, 0.0)) for values in columns.values())])
    return run.log_artifact(path, name=name, kind="table", _staged=True)


class DeferredModel:
    """What ``log_final_model`` returns at once: the Model's id and url, known before it is saved."""

    __slots__ = ("id", "url")

    def __init__(self, model_id: str, url: str) -> None:
        self.id, self.url = model_id, url


class _PendingSave:
    """A trained model to be saved by the exporter thread once no training runs, or by the
    training thread just before something we see would change it (``take_pending``)."""

    __slots__ = ("_lock", "_writers", "_folder", "failure")

    def __init__(self, writers: dict[str, Callable[[str], Any]]) -> None:
        self._lock = threading.Lock()
        self._writers = writers  # they hold the model until saved: the user may drop it right after training
        self._folder: str | None = None
        self.failure: str | None = None

    def take(self) -> str | None:
        """Save now unless done already; the staged folder with the files, or None (``failure`` says why)."""
        with self._lock:
            if self._writers:
                folder = stage_dir()
                try:
                    with own_code():
                        for file_name, write in self._writers.items():
                            write(os.path.join(folder, file_name))
                    self._folder = folder
                except Exception as exc:  # a model the framework cannot save: recorded, not raised
                    self.failure = f"{type(exc).__name__}: {exc}"[:500]
                    shutil.rmtree(folder, ignore_errors=True)
                self._writers = {}
            return self._folder


_pending_saves = WeakIdentityMap()  # a trained model (booster or wrapper) -> its save not made yet


def take_pending_hook(call: Call) -> Iterator[Any]:
    """Call hook of a method that changes a trained model: its pending save is made first."""
    take_pending(call.instance)
    return
    yield  # a generator that never wraps the call


def take_pending(*models: Any) -> None:
    """Something is about to change these models (a new fit, ``update``, ``set_params``...):
    the saves logged for them are made first, so each run keeps the model it trained."""
    for model in models:
        if model is not None:
            pending = _pending_saves.pop(model)
            if pending is not None:
                pending.take()


def log_final_model(run: Run, save: Callable[[str], Any], filename: str, *, name: str, framework: str,
                    metadata: Mapping[str, Any] | None = None, extra: Mapping[str, Callable[[str], Any]] | None = None,
                    sources: Sequence[Any] = ()) -> DeferredModel | None:
    """Log the trained model as a Model entity, saved off the training thread.

    ``save(path)`` writes the main file; ``extra`` maps more file names to their writers. The
    files are written by the exporter thread (as background work: once no training runs), or by
    the training thread just before one of ``sources`` (the objects the writers read) is changed
    through a method we instrument; above ``max_model_mb`` the model is an event, not a copy.
    """
    if isinstance(run, NullRun):
        return None
    pending = _PendingSave({filename: save, **(extra or {})})
    for source in sources:
        _pending_saves.set(source, pending)
    model_id, run_id, stamp = new_id(), run.id, time.time()
    clean_metadata, single = to_attrs(metadata or {}), not extra

    def produce() -> list[Any]:
        folder = pending.take()
        if folder is None:
            return [Event(new_id(), run_id, "model_not_logged", time.time(), None,
                          to_attrs({"reason": pending.failure or "not saved", "model": name}))]
        files = sorted(os.listdir(folder))
        sizes = {f: os.path.getsize(os.path.join(folder, f)) for f in files}
        limit = model_limit_bytes()
        if sum(sizes.values()) > limit:
            shutil.rmtree(folder, ignore_errors=True)
            return [Event(new_id(), run_id, "model_not_logged", time.time(), None, to_attrs({
                "reason": f"{sum(sizes.values()) / 2**20:.4g} MB is above max_model_mb ({limit / 2**20:.4g} MB)",
                "bytes": sum(sizes.values()), "model": name, "framework": framework}))]
        chosen = [filename] if single else files
        return [ModelRecord(model_id, run_id, to_key(name), framework,
                            [ModelFile(f, os.path.join(folder, f), True) for f in chosen], stamp, clean_metadata,
                            {}, [])]

    run._submit(Deferred(produce, background=True))
    return DeferredModel(model_id, f"{run._exporter.uri}#model={model_id}")


# ---------------------------------------------------------------------- lineage of live models


class _Lineage:
    """Which run trained a live model and which file or model it came from."""

    def __init__(self) -> None:
        self._map = WeakIdentityMap()

    def remember(self, obj: Any, run: Run | None = None, source: str | None = None) -> None:
        previous = self._map.get(obj)
        if previous is not None:
            run = run or previous[0]
            source = source or previous[1]
        self._map.set(obj, (run, source))

    def recall(self, obj: Any) -> tuple[Run | None, str | None]:
        return self._map.get(obj) or (None, None)


lineage = _Lineage()


def fitted_run(model: Any) -> Run | None:
    """The run that trained ``model`` (a booster or a wrapper), if it was trained under autolog."""
    return lineage.recall(model)[0]


def remember_trained(run: Run, logged: LoggedModel | None, *models: Any) -> None:
    """Note the run (and logged Model) behind freshly trained models, here and, for the
    scikit-learn wrappers, in the sklearn integration (so ``joblib.dump`` lands in this run)."""
    source = logged.url if logged is not None else None
    sklearn_integration = sys.modules.get("modelbox_autolog.integrations.sklearn")
    remember_fitted = getattr(sklearn_integration, "remember_fitted", None)
    for model in models:
        if model is None:
            continue
        lineage.remember(model, run=run, source=source)
        if remember_fitted is not None and callable(getattr(model, "get_params", None)):
            remember_fitted(model, run)


def log_model_input(run: Run, model: Any, framework: str) -> None:
    """Training continued from ``model`` (a live object): record where it came from."""
    if model is None or isinstance(model, (str, os.PathLike, bytes, bytearray)):
        return  # paths are recorded by the load hooks
    _, source = lineage.recall(model)
    if source is not None:
        run.log_input(source, kind="model", framework=framework)


# ---------------------------------------------------------------------- save / load capture


def _as_path(target: Any) -> str | None:
    if isinstance(target, (str, os.PathLike)):
        return os.path.abspath(os.path.expanduser(os.fspath(target)))
    return None


def record_save(model: Any, target: Any, framework: str, **attrs: Any) -> None:
    """A user's ``save_model``: an event and the file, in the run that trained the model
    (else the active run); nothing when neither exists or checkpoints are not logged."""
    path = _as_path(target)
    if path is None or not os.path.isfile(path) or not _config.current().log_checkpoints:
        return
    run = fitted_run(model) or active_run()
    if run is None:
        return
    run.log_event("model_saved", path=path, bytes=os.path.getsize(path), framework=framework, **attrs)
    run.log_artifact(path, kind="model")
    lineage.remember(model, source=path)


def record_load(model: Any, target: Any, framework: str) -> None:
    """A user's ``load_model``: the file is remembered as the model's source (for later
    training continuations) and recorded as an input of the active run, if any."""
    path = _as_path(target)
    if path is None:
        return
    lineage.remember(model, source=path)
    run = active_run()
    if run is not None and _config.current().log_checkpoints:
        run.log_input(path, kind="model", framework=framework)


def wrapper_fit(call: Call, framework: str, group: str, log_models: bool,
                log_wrapper: Any, booster_of: Any) -> Any:
    """The call hook of a scikit-learn wrapper's ``fit``: one run (or a child run inside a
    meta-estimator), the estimator's params, and the fitted wrapper as the Model."""
    take_pending(call.instance)  # a refit: the previous fit's model is saved first
    where = placement(group, framework)
    if where == SKIP:
        return
    estimator = call.instance
    with training_run(framework, type(estimator).__name__, where) as run:
        run.log_params(estimator_params(estimator))
        with sklearn_internals_quiet():
            yield None
        logged = log_wrapper(run, estimator) if where == TOP and log_models else None
        remember_trained(run, logged, estimator, booster_of(estimator))
