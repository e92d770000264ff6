"""Lightning autologging (``lightning`` and ``pytorch_lightning``): a Callback injected into
``Trainer.fit`` records hyperparameters, every ``self.log`` metric, epoch timings and the
checkpoints ``ModelCheckpoint`` writes (with best-k info); the best checkpoint becomes a Model.

Metrics: epoch-level values (``trainer.logged_metrics`` once Lightning has reduced the epoch)
are logged with ``step=epoch``; with ``log_every_n_steps=N`` the step values are also logged
every N optimizer steps with ``step=global_step``, under ``<key>_step`` (without step logging,
a ``<key>_step`` value is the epoch's last step value). Only global rank 0 logs.
Lightning writes checkpoints through ``torch.save``: those are recorded here, once, not again
as plain PyTorch saves.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import weakref
from collections.abc import Generator, Mapping
from time import perf_counter
from typing import Any

from .._patching import Call, in_group, safe_method
from .._run import NullRun, Run, _current_run, active_run, autorun
from ._checkpoint_files import file_bytes, log_model_within_limit
from ._torch_common import LIGHTNING_IO, scalar, single_file
from .base import Integration

LIGHTNING_FIT = "lightning-fit"
log = logging.getLogger("modelbox_autolog")


def _number(value: Any) -> float | None:
    value = scalar(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _metrics(raw: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in raw.items():
        number = _number(value)
        if number is not None:
            out[str(key)] = number
    return out


def _checkpoint_info(trainer: Any, path: str | None = None) -> dict[str, Any]:
    """Best-k state of the trainer's main ModelCheckpoint (and this file's score, if ranked)."""
    callback = getattr(trainer, "checkpoint_callback", None)
    if callback is None or not hasattr(callback, "best_k_models"):
        return {}
    info: dict[str, Any] = {
        "monitor": getattr(callback, "monitor", None),
        "save_top_k": getattr(callback, "save_top_k", None),
        "best_model_path": getattr(callback, "best_model_path", None) or None,
        "best_model_score": _number(getattr(callback, "best_model_score", None)),
    }
    if path is not None and path in callback.best_k_models:
        info["score"] = _number(callback.best_k_models[path])
    return {k: v for k, v in info.items() if v is not None}


# Our Callback subclasses the Callback of the package in use. It is a module attribute (built on
# first use, through the module's ``__getattr__``), so it pickles by reference: spawn-launched
# strategies (``ddp_spawn``...) pickle the trainer, callbacks included, into their workers.
CALLBACK_CLASSES = {"lightning.pytorch": "ModelboxLightningCallback", "pytorch_lightning": "ModelboxPytorchLightningCallback"}
_built: dict[str, type] = {}


def __getattr__(name: str) -> Any:
    for package, class_name in CALLBACK_CLASSES.items():
        if name == class_name:
            return callback_class(package)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def callback_class(package: str) -> type:
    """Our Callback class for ``lightning.pytorch`` or ``pytorch_lightning`` (importing it only then)."""
    cls = _built.get(package)
    if cls is None:
        import importlib

        base = importlib.import_module(package).Callback
        name = CALLBACK_CLASSES[package]
        cls = type(name, (_CallbackMethods, base), {"__module__": __name__, "__qualname__": name})
        _built[package] = cls
    return cls


class _CallbackMethods:
    """The body of our Lightning Callback (mixed into a subclass of the package's ``Callback``).

    In a spawned worker (``ddp_spawn``), the run arrives as a reference and logs into the same
    run; only global rank 0 logs; the worker's records are stored before it exits."""

    def __init__(self, run: Run, every_n_steps: int | None, all_ranks: bool = False) -> None:
        super().__init__()
        self.run = run
        self.every_n_steps = every_n_steps
        self.all_ranks = all_ranks
        self._pid = os.getpid()
        self._token: Any = None
        self._epoch_t0 = 0.0
        self._epoch_started = 0.0
        self._pending_epoch: int | None = None

    def _here(self, trainer: Any) -> bool:
        return self.all_ranks or getattr(trainer, "global_rank", 0) == 0

    @safe_method("lightning:setup")
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if os.getpid() == self._pid:
            return  # the process whose fit opened the run: it is already the active one
        # A worker process: the fit's run (or nothing, on other ranks) is the active run here, so
        # what other integrations record in the worker (optimizers, data loading) goes into it.
        if not self._here(trainer):
            self.run = NullRun()
        self._token = _current_run.set(self.run)

    @safe_method("lightning:teardown")
    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if getattr(self, "_token", None) is None:
            return
        # What Lightning does in the worker after the fit (sending results to the main process) is
        # not the user's: nothing more is recorded in this process.
        self._token = None
        _current_run.set(NullRun())
        if not isinstance(self.run, NullRun):  # store the worker's records before it exits
            self.run._exporter.flush(timeout=self.run.config.shutdown_timeout_s)

    @safe_method("lightning:on_fit_start")
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        params: dict[str, Any] = {}
        hparams = getattr(pl_module, "hparams", None)
        if hparams:
            params.update(dict(hparams))
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is not None and getattr(datamodule, "hparams", None):
            params["datamodule"] = dict(datamodule.hparams)
        params["model"] = {
            "class": type(pl_module).__name__,
            "parameters": sum(p.numel() for p in pl_module.parameters()),
            "trainable_parameters": sum(p.numel() for p in pl_module.parameters() if p.requires_grad),
        }
        params["trainer"] = {
            "max_epochs": trainer.max_epochs,
            "max_steps": trainer.max_steps,
            "precision": getattr(trainer, "precision", None),
            "accumulate_grad_batches": trainer.accumulate_grad_batches,
            "gradient_clip_val": trainer.gradient_clip_val,
            "check_val_every_n_epoch": trainer.check_val_every_n_epoch,
            "log_every_n_steps": trainer.log_every_n_steps,
            "world_size": trainer.world_size,
            "num_devices": trainer.num_devices,
            "strategy": type(trainer.strategy).__name__,
            "accelerator": type(trainer.accelerator).__name__,
        }
        info = _checkpoint_info(trainer)
        if info.get("monitor"):
            params["checkpoint"] = {"monitor": info["monitor"], "save_top_k": info.get("save_top_k")}
        self.run.log_params(params)

    @safe_method("lightning:on_train_epoch_start")
    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._flush_epoch(trainer)
        self._epoch_t0 = perf_counter()
        self._epoch_started = time.time()

    @safe_method("lightning:on_train_batch_end")
    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        every = self.every_n_steps
        if not every or trainer.global_step % every:
            return
        try:  # the step values alone (logged_metrics also holds older epoch values)
            raw = trainer._logger_connector.metrics["log"]
        except Exception:
            raw = trainer.logged_metrics
        step_metrics = {k if k.endswith("_step") else f"{k}_step": v for k, v in _metrics(raw).items()}
        self.run.log_metrics(step_metrics, step=trainer.global_step, epoch=trainer.current_epoch)

    @safe_method("lightning:on_train_epoch_end")
    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        epoch = trainer.current_epoch
        duration = perf_counter() - self._epoch_t0
        self.run.log_event("epoch", duration_s=duration, timestamp=self._epoch_started,
                           epoch=epoch, global_step=trainer.global_step)
        self.run.log_metric("epoch_time_s", duration, step=epoch, epoch=epoch)
        # Lightning reduces epoch metrics after this hook: read them at the next epoch/train end
        self._pending_epoch = epoch
        if trainer.max_epochs:
            self.run.set_progress((epoch + 1) / trainer.max_epochs)

    @safe_method("lightning:on_train_end")
    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._flush_epoch(trainer)

    def _flush_epoch(self, trainer: Any) -> None:
        epoch, self._pending_epoch = self._pending_epoch, None
        if epoch is None:
            return
        metrics = _metrics(trainer.logged_metrics)
        if self.every_n_steps:  # "<key>_step" series belong to the step-level logging
            metrics = {k: v for k, v in metrics.items() if not k.endswith("_step")}
        self.run.log_metrics(metrics, step=epoch, epoch=epoch)


def _fitting(trainer: Any) -> bool:
    state = getattr(trainer, "state", None)
    return getattr(state, "fn", None) == "fit" and getattr(state, "status", None) == "running"


def _framework_io_hook(call: Call) -> Generator[Any, Any, None]:
    """Only marks the call (its guard group): the saves and loads inside are Lightning's own."""
    yield None


class LightningIntegration(Integration):
    name = "lightning"
    modules = ("lightning", "pytorch_lightning")
    distribution = "lightning"
    requirement = ">=2.0"

    def __init__(self) -> None:
        super().__init__()
        self._callback_classes: dict[type, type] = {}
        self._fit_runs: weakref.WeakKeyDictionary[Any, Run] = weakref.WeakKeyDictionary()

    def setup(self, module: Any) -> None:
        package = getattr(module, "pytorch", module)  # lightning.pytorch, or pytorch_lightning itself
        trainer_cls = package.Trainer
        self._callback_classes[trainer_cls] = callback_class(package.__name__)
        self.patch(trainer_cls, "fit", self._fit_hook, group=LIGHTNING_FIT)
        self.patch(trainer_cls, "save_checkpoint", self._save_checkpoint_hook, group=LIGHTNING_IO)
        launchers = getattr(getattr(package, "strategies", None), "launchers", None)
        launcher = getattr(getattr(launchers, "multiprocessing", None), "_MultiProcessingLauncher", None)
        if launcher is not None:  # the weights a spawned worker hands back: Lightning's plumbing, not a user's load
            self.patch(launcher, "_recover_results_in_main_process", _framework_io_hook, group=LIGHTNING_IO)

    def _logs_here(self, trainer: Any) -> bool:
        return self.config.log_all_ranks or getattr(trainer, "global_rank", 0) == 0

    def _callback_for(self, trainer: Any, run: Run) -> Any:
        for trainer_cls, callback_cls in self._callback_classes.items():
            if isinstance(trainer, trainer_cls):
                return callback_cls(run, self.config.log_every_n_steps, self.config.log_all_ranks)
        raise TypeError(f"no Lightning Callback class known for {type(trainer).__name__}")

    # ------------------------------------------------------------------ fit
    def _fit_hook(self, call: Call) -> Generator[Any, Any, None]:
        trainer = call.instance
        if not self._logs_here(trainer):
            return
        model = call.argument("model")
        with autorun("lightning", name=type(model).__name__) as run:
            self._fit_runs[trainer] = run
            ckpt_path = call.argument("ckpt_path")
            if ckpt_path:
                run.log_params({"resumed_from": os.fspath(ckpt_path)})
            callback = self._callback_for(trainer, run)
            # a new list: the trainer's list may be the user's own object
            trainer.callbacks = [*trainer.callbacks, callback]
            try:
                yield None
            finally:
                trainer.callbacks = [c for c in trainer.callbacks if c is not callback]
            self._after_fit(run, trainer, model)

    def _after_fit(self, run: Run, trainer: Any, model: Any) -> None:
        if not (trainer.is_global_zero or self.config.log_all_ranks):
            return
        config = self.config
        best_path: str | None = None
        kept: set[str] = set()
        for callback in getattr(trainer, "checkpoint_callbacks", []):
            best_path = best_path or (getattr(callback, "best_model_path", "") or None)
            kept.update(str(p) for p in getattr(callback, "best_k_models", {}))
            if getattr(callback, "last_model_path", ""):
                kept.add(callback.last_model_path)
        info = _checkpoint_info(trainer)
        if info:
            run.log_params({"checkpoint": info})
        if config.log_checkpoints:
            for path in sorted(p for p in kept if p != best_path and os.path.isfile(p)):
                run.log_artifact(path, name=os.path.basename(path), kind="checkpoint")
        if not config.log_models:
            return
        metadata = {"kind": "lightning_checkpoint", "epoch": trainer.current_epoch,
                    "global_step": trainer.global_step, "module_class": _class_path(model), **info}
        if best_path and os.path.isfile(best_path):
            log_model_within_limit(run, best_path, name=type(model).__name__, framework="lightning", metadata=metadata)
        else:
            self._log_final_weights(run, trainer, model, metadata)

    def _log_final_weights(self, run: Run, trainer: Any, model: Any, metadata: dict[str, Any]) -> None:
        """No checkpoint was written (checkpointing disabled): keep the final weights ourselves."""
        import torch

        folder = tempfile.mkdtemp(prefix="modelbox-lightning-")
        path = os.path.join(folder, "final.ckpt")
        hparams = dict(getattr(model, "hparams", None) or {})
        state = {"state_dict": model.state_dict(), "hyper_parameters": hparams,
                 "epoch": trainer.current_epoch, "global_step": trainer.global_step,
                 "pytorch-lightning_version": _lightning_version(model)}  # what load_from_checkpoint reads
        torch.serialization.save(state, path)  # the unpatched save: this is our file, not the user's
        log_model_within_limit(run, path, name=type(model).__name__, framework="lightning",
                      metadata={**metadata, "kind": "lightning_checkpoint", "final_weights": True}, _staged=True)

    # ------------------------------------------------------------------ checkpoints
    def _save_checkpoint_hook(self, call: Call) -> Generator[Any, Any, None]:
        trainer = call.instance
        if not (self.config.log_checkpoints or self.config.log_models) or not self._logs_here(trainer):
            return
        inside_fit = in_group(LIGHTNING_FIT) or _fitting(trainer)  # the latter: in a spawned worker
        filepath = call.argument("filepath")
        started, t0 = time.time(), perf_counter()
        yield None
        duration = perf_counter() - t0
        if not (trainer.is_global_zero or self.config.log_all_ranks):
            return
        run = active_run() if inside_fit else (active_run() or self._fit_runs.get(trainer))
        if run is None:
            return
        path = os.path.abspath(os.fspath(filepath)) if isinstance(filepath, (str, os.PathLike)) else str(filepath)
        size = file_bytes(path)
        info = _checkpoint_info(trainer, path)
        weights_only = bool(call.argument("weights_only"))
        if self.config.log_checkpoints:
            run.log_event("checkpoint_saved", duration_s=duration, timestamp=started, path=path, bytes=size,
                          kind="lightning_checkpoint", api="Trainer.save_checkpoint", epoch=trainer.current_epoch,
                          global_step=trainer.global_step, weights_only=weights_only, **info)
        if not inside_fit and self.config.log_models and size is not None:
            # an explicit save after fit: the user's final model, recorded with the fit's run
            module = getattr(trainer, "lightning_module", None)
            log_model_within_limit(run, path, name=os.path.splitext(os.path.basename(path))[0], framework="lightning",
                          metadata={"kind": "lightning_checkpoint", "epoch": trainer.current_epoch,
                                    "global_step": trainer.global_step, **info,
                                    **({"module_class": _class_path(module)} if module is not None else {})})

    # ------------------------------------------------------------------ loading back
    @classmethod
    def load_model(cls, files_dir: str, model: Any) -> Any:
        """A live LightningModule (``load_from_checkpoint`` of the class that trained it, in eval mode).

        The class is found by the import path recorded with the model; one defined in the training
        script itself (``__main__``) is found when the loading script defines it under the same name.
        When the class cannot be found or rebuilt from the checkpoint's hyperparameters, the
        checkpoint dict is returned instead, with a warning that says why.
        """
        import torch

        path = single_file(files_dir)
        metadata = getattr(model, "metadata", None) or {}
        module_cls, reason = _find_class(str(metadata.get("module_class") or ""))
        if module_cls is not None:
            try:
                live = module_cls.load_from_checkpoint(path, map_location="cpu")
                live.eval()
                return live
            except Exception as exc:
                reason = f"{module_cls.__qualname__}.load_from_checkpoint failed: {type(exc).__name__}: {exc}"
        log.warning("modelbox-autolog: model %s loads as its checkpoint dict, not a LightningModule: %s",
                    getattr(model, "id", "?"), reason)
        return torch.serialization.load(path, map_location="cpu", weights_only=False)


def _class_path(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


def _lightning_version(model: Any) -> str:
    import sys

    for name in ("lightning", "pytorch_lightning"):
        package = sys.modules.get(name)
        if package is not None and any(c.__module__.startswith(name) for c in type(model).__mro__):
            return str(getattr(package, "__version__", "0"))
    return "0"


def _find_class(path: str) -> tuple[type | None, str]:
    """The LightningModule class named ``module:qualname``, or (None, why not)."""
    import importlib
    import sys

    if not path:
        return None, "no LightningModule class was recorded with this model (logged by an older version)"
    module_name, _, qualname = path.partition(":")
    if "<locals>" in qualname:
        return None, f"{qualname} is defined inside a function, so no other code can import it"
    try:
        target: Any = sys.modules["__main__"] if module_name == "__main__" else importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except Exception as exc:
        if module_name == "__main__":
            return None, (f"{qualname} was defined in the training script (__main__), which is not imported when loading; "
                          f"define or import {qualname} in the loading script, or move it into a module")
        return None, f"cannot import {path}: {type(exc).__name__}: {exc}"
    if not isinstance(target, type):
        return None, f"{path} is not a class"
    return target, ""
