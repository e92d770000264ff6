"""Keras 3 autologging (also ``tf.keras``, which is Keras 3 from TensorFlow 2.16 on): a callback
injected into ``Model.fit`` records compile and fit parameters, the model summary, per-epoch
metrics, epoch timings, learning-rate changes and early stopping; saves and loads become
checkpoint events, artifacts and input models; the final model is kept as a ``.keras`` Model.

Metrics: epoch values (train and ``val_`` keys) with ``step=epoch``; with ``log_every_n_steps=N``
also the batch values every N steps under ``<key>_step`` with ``step=global step``. Several fits
in one run continue the step axis instead of overwriting it; ``epoch=`` keeps Keras' own epoch.
``evaluate`` after a fit is logged into that fit's run as ``eval_<key>``.

Data-wait time is not recorded: with the TensorFlow backend the input pipeline (``tf.data``,
also wrapping NumPy arrays and ``PyDataset``) is consumed inside the compiled train function,
so no callback can tell waiting for data from computing; on the JAX/PyTorch backends batch-end
callbacks are dispatched to a thread pool, and timing them on the training thread would mean
forcing synchronous dispatch, which costs more than it measures.

Users who prefer explicit callbacks can pass ``ModelBoxCallback()`` (built when first accessed,
so importing this module never imports Keras); with autolog on, it is used instead of ours.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
import time
import weakref
from collections.abc import Generator, Iterable, Mapping
from contextvars import ContextVar
from time import perf_counter
from typing import Any

from .._patching import Call, entered, in_group, safe, safe_method
from .._run import Run, active_run, autorun, start_run
from ._checkpoint_files import file_bytes, log_model_within_limit, snapshot
from .base import Integration

KERAS_FIT = "keras-fit"
KERAS_EVALUATE = "keras-evaluate"
KERAS_SAVE = "keras-save"
KERAS_LOAD = "keras-load"

# Files up to this size are copied at once (cheap next to the save itself) so that a callback
# overwriting the same path every epoch cannot race the exporter's copy.

_FIT_PARAMS = ("epochs", "batch_size", "validation_split", "shuffle", "initial_epoch", "steps_per_epoch",
               "validation_steps", "validation_batch_size", "validation_freq")
_SAVE_APIS = ("save_model", "save_weights")
_LOAD_APIS = ("load_model", "load_weights")
# Public namespaces that re-export the saving functions (patched where they hold the original).
_SAVING_NAMESPACES = ("keras.src.saving.saving_api", "keras.src.saving", "keras.saving", "keras.models",
                      "keras._tf_keras.keras.saving", "keras._tf_keras.keras.models")

# Which Keras callback is saving/loading right now (set around its own save method).
_save_source: ContextVar[dict[str, Any] | None] = ContextVar("modelbox_keras_save_source", default=None)


class _RunState:
    """Per-run counters so that several fits logged into one run continue its step axes."""

    __slots__ = ("next_epoch_step", "next_global_step", "described", "evaluations")

    def __init__(self) -> None:
        self.next_epoch_step = 0
        self.next_global_step = 0
        self.described: set[int] = set()
        self.evaluations = 0


_run_states: weakref.WeakKeyDictionary[Run, _RunState] = weakref.WeakKeyDictionary()


def _state(run: Run) -> _RunState:
    state = _run_states.get(run)
    if state is None:
        state = _run_states[run] = _RunState()
    return state


# ---------------------------------------------------------------------- small helpers
def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        number = float(value)  # numpy / tensor scalars
    except (TypeError, ValueError):
        return None
    return number


def _numbers(logs: Mapping[str, Any] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in (logs or {}).items():
        number = _number(value)
        if number is not None:
            out[str(key)] = number
    return out


def _describe(value: Any) -> Any:
    """A loss / metric spec as a readable, JSON-able value."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _describe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    name = getattr(value, "name", None) or getattr(value, "__name__", None)
    return name if isinstance(name, str) else type(value).__name__


def _flat_callbacks(callbacks: Any) -> list[Any]:
    """The callbacks a fit will call, whether given as a list (nested or not) or a CallbackList."""
    if callbacks is None:
        return []
    if isinstance(callbacks, (list, tuple)):
        out: list[Any] = []
        for item in callbacks:
            out.extend(_flat_callbacks(item))
        return out
    if isinstance(callbacks, _callback_list_class()):
        return list(callbacks.callbacks)
    return [callbacks]


def _callback_list_class() -> type:
    from keras.callbacks import CallbackList

    return CallbackList


def _path_of(value: Any) -> str | None:
    if isinstance(value, (str, os.PathLike)):
        try:
            return os.path.abspath(os.fspath(value))
        except TypeError:
            return None
    return None


def _model_stem(path: str) -> str:
    base = os.path.basename(path.rstrip("/\\")) or "model"
    for suffix in (".weights.h5", ".keras", ".h5"):
        if base.endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)]
    return os.path.splitext(base)[0] or base


# ---------------------------------------------------------------------- what a model is
def compile_params(model: Any) -> dict[str, Any]:
    """Optimizer (class and config), loss and metrics as given to ``compile``."""
    params: dict[str, Any] = {}
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:
        config: dict[str, Any] = {}
        try:
            config = dict(optimizer.get_config())
        except Exception:
            pass
        params["optimizer"] = {"class": type(optimizer).__name__, **config}
    compile_config = getattr(getattr(model, "_compile_config", None), "config", None)
    if isinstance(compile_config, Mapping):
        for key in ("loss", "loss_weights", "metrics", "weighted_metrics", "run_eagerly",
                    "steps_per_execution", "jit_compile"):
            if compile_config.get(key) is not None:
                params[key] = _describe(compile_config[key])
    elif getattr(model, "loss", None) is not None:
        params["loss"] = _describe(model.loss)
    return params


def model_params(model: Any) -> dict[str, Any]:
    def count(weights: Iterable[Any]) -> int:
        return int(sum(math.prod(int(d) for d in w.shape) for w in weights))

    trainable = count(model.trainable_weights)
    frozen = count(model.non_trainable_weights)
    return {"model": {"class": type(model).__name__, "name": model.name, "layers": len(model.layers),
                      "total_params": trainable + frozen, "trainable_params": trainable,
                      "non_trainable_params": frozen}}


def summary_text(model: Any) -> str:
    lines: list[str] = []
    model.summary(print_fn=lambda text, line_break=True: lines.append(str(text)))
    return "\n".join(lines)


def describe_model(run: Run, model: Any) -> None:
    """Compile params, parameter counts and the summary (once per model and run)."""
    run.log_params(compile_params(model))
    state = _state(run)
    if id(model) in state.described:
        return
    state.described.add(id(model))
    run.log_params(model_params(model))
    folder = tempfile.mkdtemp(prefix="modelbox-keras-")
    path = os.path.join(folder, "model_summary.txt")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(summary_text(model))
    run.log_artifact(path, name=f"{model.name}_summary.txt", kind="text", _staged=True)


def log_final_model(run: Run, model: Any, metadata: Mapping[str, Any] | None = None) -> Any:
    """Save ``model`` in the native ``.keras`` format and log it as a Model entity."""
    import keras

    folder = tempfile.mkdtemp(prefix="modelbox-keras-model-")
    path = os.path.join(folder, "model.keras")
    try:
        with entered(KERAS_SAVE):  # our own file, not a save of the user's
            model.save(path)
    except Exception as exc:  # e.g. a subclassed model that Keras cannot serialise
        shutil.rmtree(folder, ignore_errors=True)
        run._warn_once("keras-model", f"the final Keras model could not be saved ({exc!r}); not logged as a model")
        return None
    info = {"format": "keras", "keras_version": keras.__version__, "backend": keras.backend.backend(),
            **(metadata or {})}
    return log_model_within_limit(run, path, name=model.name, framework="keras", metadata=info, _staged=True)


def early_stopping_info(callbacks: Iterable[Any]) -> list[dict[str, Any]]:
    from keras.callbacks import EarlyStopping

    found = []
    for callback in callbacks:
        if isinstance(callback, EarlyStopping):
            best = _number(getattr(callback, "best", None))
            found.append({
                "monitor": callback.monitor, "patience": callback.patience,
                "min_delta": _number(getattr(callback, "min_delta", None)),
                "restore_best_weights": bool(callback.restore_best_weights),
                "stopped_epoch": int(callback.stopped_epoch), "stopped": callback.stopped_epoch > 0,
                "best_epoch": int(getattr(callback, "best_epoch", 0)),
                "best": best if best is not None and math.isfinite(best) else None,
                "restored": bool(callback.restore_best_weights and callback.best_weights is not None),
            })
    return found


# ---------------------------------------------------------------------- the callback
_callback_class: type | None = None


def callback_class() -> type:
    """``ModelBoxCallback``, built on first use (importing keras only then)."""
    global _callback_class
    if _callback_class is None:
        _callback_class = _build_callback_class()
    return _callback_class


def __getattr__(name: str) -> Any:
    if name == "ModelBoxCallback":
        return callback_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _build_callback_class() -> type:
    import keras

    class ModelBoxCallback(keras.callbacks.Callback):
        """Logs a fit into modelbox: params, summary, epoch metrics, timings, learning rate.

        With ``mbx.autolog()`` on, fits get one automatically and one passed by the user is used
        instead (never doubled). Without autolog, it logs into the active run or opens one for
        the fit (put it last in the list so it sees weights restored by EarlyStopping); an
        exception escaping such a fit leaves that run to be ended at exit.
        """

        # Batch-end work is a counter check; it is safe to run on Keras' dispatch threads.
        async_safe = True

        def __init__(self, log_every_n_steps: int | None = None, log_models: bool | None = None) -> None:
            super().__init__()
            self.log_every_n_steps = log_every_n_steps
            self.log_models = log_models
            self.run: Run | None = None
            self._managed = False  # a patched fit owns the run and logs the final model
            self._owned = False
            self._every: int | None = None

        # -------------------------------------------------------------- wiring
        def _attach(self, run: Run) -> None:
            self.run, self._managed, self._owned = run, True, False

        def _detach(self) -> None:
            self.run, self._managed = None, False

        def _open_run(self) -> Run:
            current = active_run()
            if current is not None:
                self._owned = False
                return current
            self._owned = True
            return start_run(name=self.model.name, tags={"framework": "keras", "autolog": "false"}, _auto=True)

        # -------------------------------------------------------------- Keras hooks
        @safe_method("keras:callback.on_train_begin")
        def on_train_begin(self, logs: Any = None) -> None:
            from .. import _config

            if not self._managed:
                self.run = self._open_run()
            run = self.run
            config = _config.current()
            every = self.log_every_n_steps if self.log_every_n_steps is not None else config.log_every_n_steps
            self._every = int(every) if every else None
            state = _state(run)
            self._epoch_base = state.next_epoch_step  # several fits in one run continue the axis
            self._first_epoch: int | None = None
            self._epoch = 0
            self._global_step = state.next_global_step
            self._last_logged_step = state.next_global_step
            self._last_batch = -1
            self._epochs = int(self.params.get("epochs") or 0)
            self._lr: float | None = None
            self._epoch_t0 = perf_counter()
            self._epoch_started = time.time()
            if not self._managed:
                run.log_params({k: self.params[k] for k in ("epochs", "steps") if self.params.get(k) is not None})
            describe_model(run, self.model)

        @safe_method("keras:callback.on_epoch_begin")
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            if self._first_epoch is None:
                self._first_epoch = epoch  # initial_epoch > 0 resumes where the axis stands
            self._epoch = epoch
            self._last_batch = -1
            self._epoch_started = time.time()
            self._epoch_t0 = perf_counter()

        @safe_method("keras:callback.on_train_batch_end")
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            # ``batch`` is the last step of this call: steps_per_execution may run several
            self._global_step += batch - self._last_batch
            self._last_batch = batch
            every = self._every
            if every is None or self._global_step // every <= self._last_logged_step // every:
                return
            self._last_logged_step = self._global_step
            values = _numbers(logs)  # only now: reading logs is what costs
            if values:
                self.run.log_metrics({f"{k}_step": v for k, v in values.items()}, step=self._global_step,
                                     epoch=self._epoch)

        @safe_method("keras:callback.on_epoch_end")
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            run = self.run
            duration = perf_counter() - self._epoch_t0
            step = self._epoch_base + epoch - (self._first_epoch or 0)
            run.log_metrics(_numbers(logs), step=step, epoch=epoch)
            run.log_metric("epoch_time_s", duration, step=step, epoch=epoch)
            run.log_event("epoch", duration_s=duration, timestamp=self._epoch_started, epoch=epoch, step=step)
            self._log_learning_rate(run, epoch, step)
            state = _state(run)
            state.next_epoch_step = max(state.next_epoch_step, step + 1)
            state.next_global_step = max(state.next_global_step, self._global_step)
            if self._epochs:
                run.set_progress((epoch + 1) / self._epochs)

        def _log_learning_rate(self, run: Run, epoch: int, step: int) -> None:
            optimizer = getattr(self.model, "optimizer", None)
            if optimizer is None or not hasattr(optimizer, "learning_rate"):
                return
            lr = _number(optimizer.learning_rate)
            if lr is None:
                return
            previous, self._lr = self._lr, lr
            if previous is not None and math.isclose(previous, lr, rel_tol=1e-9, abs_tol=0.0):
                return
            run.log_metric("lr", lr, step=step, epoch=epoch)
            if previous is not None:
                run.log_event("lr_changed", epoch=epoch, step=step, old=previous, new=lr)

        @safe_method("keras:callback.on_train_end")
        def on_train_end(self, logs: Any = None) -> None:
            if self._managed or self.run is None:
                return  # the patched fit logs the model and ends its run
            from .. import _config

            run = self.run
            log_models = self.log_models if self.log_models is not None else _config.current().log_models
            if log_models:
                log_final_model(run, self.model, {"epochs_trained": self._epochs})
            if self._owned:
                run.end("finished")
            self.run, self._owned = None, False

    ModelBoxCallback.__module__ = __name__
    ModelBoxCallback.__qualname__ = "ModelBoxCallback"  # pickles by reference (the module's __getattr__)
    return ModelBoxCallback


# ---------------------------------------------------------------------- the integration
class KerasIntegration(Integration):
    name = "keras"
    modules = ("keras",)
    distribution = "keras"
    requirement = ">=3.0"

    def __init__(self) -> None:
        super().__init__()
        self._active = True  # wrappers kept by modules imported while patched check this
        self._model_runs: weakref.WeakKeyDictionary[Any, Run] = weakref.WeakKeyDictionary()
        self._pending_inputs: weakref.WeakKeyDictionary[Any, list[dict[str, Any]]] = weakref.WeakKeyDictionary()

    def setup(self, module: Any) -> None:
        import keras

        model_cls = keras.Model
        self.patch(model_cls, "fit", self._fit_hook, group=KERAS_FIT)
        self.patch(model_cls, "evaluate", self._evaluate_hook, group=KERAS_EVALUATE)
        self.patch(model_cls, "save", self._save_hook("Model.save", weights=False), group=KERAS_SAVE)
        self.patch(model_cls, "save_weights", self._save_hook("Model.save_weights", weights=True), group=KERAS_SAVE)
        self.patch(model_cls, "load_weights", self._load_hook("Model.load_weights"), group=KERAS_LOAD)
        self.patch(keras.callbacks.ModelCheckpoint, "_save_model", self._source_hook("ModelCheckpoint"))
        self.patch(keras.callbacks.BackupAndRestore, "_save_model", self._source_hook("BackupAndRestore"))
        self.patch(keras.callbacks.BackupAndRestore, "on_train_begin", self._source_hook("BackupAndRestore"))
        self._patch_saving_functions()

    def teardown(self) -> None:
        self._active = False

    def _patch_saving_functions(self) -> None:
        from keras.src.saving import saving_api

        originals = {name: getattr(saving_api, name) for name in (*_SAVE_APIS, *_LOAD_APIS)}
        hooks = {
            "save_model": (self._save_hook("keras.saving.save_model", weights=False), KERAS_SAVE),
            "save_weights": (self._save_hook("keras.saving.save_weights", weights=True), KERAS_SAVE),
            "load_model": (self._load_hook("keras.saving.load_model"), KERAS_LOAD),
            "load_weights": (self._load_hook("keras.saving.load_weights"), KERAS_LOAD),
        }
        for namespace_name in _SAVING_NAMESPACES:
            namespace = sys.modules.get(namespace_name)
            if namespace is None:
                continue
            for name, original in originals.items():
                if getattr(namespace, name, None) is original:
                    hook, group = hooks[name]
                    self.patch(namespace, name, hook, group=group)

    # ------------------------------------------------------------------ runs of models
    def _run_for(self, model: Any) -> Run | None:
        """Where records about ``model`` go: the active run, else the run of its last fit."""
        current = active_run()
        if current is not None:
            return current
        return self._model_runs.get(model) if model is not None else None

    def _flush_pending_inputs(self, model: Any, run: Run) -> None:
        for item in self._pending_inputs.pop(model, []):
            self._log_input(run, item)

    @staticmethod
    def _log_input(run: Run, item: Mapping[str, Any]) -> None:
        run.log_input(item["path"], kind="model", api=item["api"], bytes=item["bytes"])
        run.log_event("checkpoint_loaded", duration_s=item["duration_s"], timestamp=item["started"],
                      path=item["path"], bytes=item["bytes"], api=item["api"])

    # ------------------------------------------------------------------ fit
    def _fit_hook(self, call: Call) -> Generator[Any, Any, None]:
        if not self._active:
            return
        model = call.instance
        callbacks = call.argument("callbacks")
        flat = _flat_callbacks(callbacks)
        callback_cls = callback_class()
        mine = next((c for c in flat if isinstance(c, callback_cls)), None)
        with autorun("keras", name=getattr(model, "name", None)) as run:
            self._model_runs[model] = run
            self._flush_pending_inputs(model, run)
            run.log_params(self._fit_params(call))
            if mine is not None:
                mine._attach(run)  # the user's own: used as is, not doubled
                replacement = None
            else:
                ours = callback_cls()
                ours._attach(run)
                replacement = call.replace(callbacks=self._with_callback(callbacks, ours, model))
            try:
                history = yield replacement
            finally:
                if mine is not None:
                    mine._detach()
            self._after_fit(run, model, flat, history)

    @staticmethod
    def _with_callback(callbacks: Any, ours: Any, model: Any) -> Any:
        """The user's callbacks plus ours, in a new container; the user's is never touched."""
        if isinstance(callbacks, _callback_list_class()):
            import copy

            combined = copy.copy(callbacks)
            combined.callbacks = [*callbacks.callbacks, ours]
            combined._futures = []
            ours.set_model(model)
            ours.set_params(callbacks.params)
            return combined
        if callbacks is None:
            return [ours]
        if isinstance(callbacks, (list, tuple)):
            return [*callbacks, ours]
        return [callbacks, ours]

    @staticmethod
    def _fit_params(call: Call) -> dict[str, Any]:
        import inspect

        try:
            signature = inspect.signature(call.wrapped).parameters
        except (TypeError, ValueError):
            signature = {}
        params: dict[str, Any] = {}
        for name in _FIT_PARAMS:
            default = signature[name].default if name in signature else None
            value = call.argument(name, default)
            if value is not None and value is not inspect.Parameter.empty:
                params[name] = value if isinstance(value, (int, float, bool, str)) else _describe(value)
        x = call.argument("x")
        shape = getattr(x, "shape", None)
        if shape is not None:
            try:
                params["train_samples"] = int(shape[0])
                params["input_shape"] = [int(d) if d is not None else None for d in shape[1:]]
            except (TypeError, ValueError, IndexError):
                pass
        params["validation_data"] = call.argument("validation_data") is not None
        if call.argument("class_weight") is not None:
            params["class_weight"] = _describe(call.argument("class_weight"))
        return params

    def _after_fit(self, run: Run, model: Any, callbacks: list[Any], history: Any) -> None:
        for info in early_stopping_info(callbacks):
            run.log_params({"early_stopping": info})
            if info["stopped"]:
                run.log_event("early_stopping", stopped_epoch=info["stopped_epoch"], best_epoch=info["best_epoch"],
                              monitor=info["monitor"], best=info["best"], restored_best_weights=info["restored"])
        if not self.config.log_models:
            return
        epochs = list(getattr(history, "epoch", None) or [])
        final = {k: v[-1] for k, v in (getattr(history, "history", None) or {}).items() if v}
        log_final_model(run, model, {"epochs_trained": len(epochs), "final_metrics": _numbers(final)})

    # ------------------------------------------------------------------ evaluate
    def _evaluate_hook(self, call: Call) -> Generator[Any, Any, None]:
        if not self._active or in_group(KERAS_FIT) or call.kwargs.get("_use_cached_eval_dataset"):
            return  # fit's own validation: already logged as val_ metrics
        model = call.instance
        run = self._run_for(model)
        if run is None:
            return
        result = yield None
        values = _numbers(result if isinstance(result, Mapping) else model.get_metrics_result())
        state = _state(run)
        step, state.evaluations = state.evaluations, state.evaluations + 1
        run.log_metrics({f"eval_{k}": v for k, v in values.items()}, step=step)

    # ------------------------------------------------------------------ saves
    def _source_hook(self, source: str) -> Any:
        def hook(call: Call) -> Generator[Any, Any, None]:
            info: dict[str, Any] = {"source": source}
            epoch = call.argument("epoch") if source == "ModelCheckpoint" else None
            if isinstance(epoch, int):
                info["epoch"] = epoch
            token = _save_source.set(info)
            try:
                yield None
            finally:
                _save_source.reset(token)

        return hook

    def _save_hook(self, api: str, weights: bool) -> Any:
        def hook(call: Call) -> Generator[Any, Any, None]:
            config = self.config
            if not self._active or not (config.log_checkpoints or config.log_models):
                return
            model = call.instance if call.instance is not None else call.argument("model")
            path = _path_of(call.argument("filepath"))
            source = _save_source.get()
            is_checkpoint = weights or source is not None or in_group(KERAS_FIT)
            if path is None or (is_checkpoint and not config.log_checkpoints):
                return
            run = self._run_for(model)
            if run is None:
                return
            started, t0 = time.time(), perf_counter()
            yield None
            duration = perf_counter() - t0
            safe(f"keras:{api}", self._record_save, run, model, path, api, weights, source, is_checkpoint,
                 started, duration)

        return hook

    def _record_save(self, run: Run, model: Any, path: str, api: str, weights: bool, source: dict[str, Any] | None,
                     is_checkpoint: bool, started: float, duration: float) -> None:
        config = self.config
        size = file_bytes(path)
        attrs = {"path": path, "bytes": size, "api": api, "weights_only": weights,
                 "source": (source or {}).get("source", "user"), **{k: v for k, v in (source or {}).items() if k != "source"}}
        run.log_event("checkpoint_saved", duration_s=duration, timestamp=started, **attrs)
        if not os.path.isfile(path):
            return  # a directory format: the event says where it is
        if not is_checkpoint and config.log_models:
            file, staged = snapshot(path, size)
            log_model_within_limit(run, file, name=_model_stem(path), framework="keras", _staged=staged,
                          metadata={"format": "keras" if path.endswith(".keras") else "h5", "saved_by": api,
                                    "path": path})
        elif config.log_checkpoints:
            file, staged = snapshot(path, size)
            run.log_artifact(file, name=os.path.basename(path), kind="checkpoint", _staged=staged)

    # ------------------------------------------------------------------ loads
    def _load_hook(self, api: str) -> Any:
        def hook(call: Call) -> Generator[Any, Any, None]:
            if not self._active or not self.config.log_checkpoints:
                return
            path = _path_of(call.argument("filepath"))
            if path is None:
                return
            started, t0 = time.time(), perf_counter()
            result = yield None
            duration = perf_counter() - t0
            model = call.instance if call.instance is not None else call.argument("model")
            if model is None:
                model = result  # load_model returns the model
            item = {"path": path, "bytes": file_bytes(path), "api": api, "started": started, "duration_s": duration}
            source = _save_source.get()
            if source is not None:
                item["api"] = f"{source['source']}:{api}"
            run = active_run()
            if run is not None:
                self._log_input(run, item)
            elif model is not None:  # no run yet: the next fit of this model consumes it
                self._pending_inputs.setdefault(model, []).append(item)

        return hook

    # ------------------------------------------------------------------ loading logged models
    @classmethod
    def load_model(cls, files_dir: str, model: Any) -> Any:
        import keras

        candidates = []
        for folder, _dirs, names in os.walk(files_dir):
            for name in sorted(names):
                if name.endswith((".keras", ".h5")) and not name.endswith(".weights.h5"):
                    candidates.append(os.path.join(folder, name))
        if not candidates:
            raise FileNotFoundError(f"no .keras or .h5 model file in {files_dir}")
        candidates.sort(key=lambda p: (not p.endswith(".keras"), p))
        with entered(KERAS_LOAD):  # reading back a logged model is not an input of a run
            return keras.saving.load_model(candidates[0])
