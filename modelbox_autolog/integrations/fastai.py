"""fastai autologging: a Callback injected into ``Learner.fit`` (which ``fit_one_cycle``,
``fit_flat_cos``, ``fit_sgdr`` and ``fine_tune`` all call) records hyperparameters, the
Recorder's per-epoch metrics and epoch timings; ``learn.save`` / ``learn.load`` are checkpoint
events and files, ``learn.export`` a Model. The ``torch.save`` inside them is not logged again.
The model of a fit is an export of the trained Learner, so ``client.load_model`` gives a live
``Learner`` back (its state dict, with the reason, when the Learner cannot be pickled).

``fine_tune`` runs two fits: both go to one run, epochs numbered continuously. ``lr_find``
(a fit with an ``LRFinder``) is not logged as training.
"""

from __future__ import annotations

import os
import tempfile
import time
import weakref
from collections.abc import Generator
from time import perf_counter
from typing import Any

from .. import _patching
from .._patching import Call, in_group, safe_method
from .._run import Run, active_run, autorun
from ._checkpoint_files import file_bytes, log_model_within_limit, snapshot
from ._torch_common import (
    FASTAI_IO,
    FASTAI_LR_FIND,
    load_torch_file,
    scalar,
    single_file,
)
from .base import Integration

FASTAI_FIT = "fastai-fit"
FASTAI_OUTER = "fastai-outer"
_OUTER_METHODS = ("fit_one_cycle", "fit_flat_cos", "fit_sgdr", "fine_tune")


def _number(value: Any) -> float | None:
    value = scalar(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _as_list(cbs: Any) -> list[Any]:
    if cbs is None:
        return []
    if isinstance(cbs, (list, tuple)) or type(cbs).__name__ == "L":
        return list(cbs)
    return [cbs]


_callback_classes: list[type] = []


def __getattr__(name: str) -> Any:
    """``ModelboxFastaiCallback`` is a module attribute (built on first use), so a Learner holding
    it pickles by reference."""
    if name == "ModelboxFastaiCallback":
        if not _callback_classes:
            import fastai.learner as learner

            _make_callback_class(learner.Callback, learner.Recorder.order)
        return _callback_classes[0]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _make_callback_class(base: type, recorder_order: int) -> type:
    if _callback_classes:
        return _callback_classes[0]

    class ModelboxFastaiCallback(base):  # type: ignore[misc, valid-type]
        order = recorder_order + 1  # after the Recorder has stored the epoch's values
        run_valid = True

        def __init__(self, run: Run, epoch_offset: int, log_params: bool, every_n_steps: int | None) -> None:
            super().__init__()
            self.mbx_run = run
            self.mbx_epoch_offset = epoch_offset
            self.mbx_log_params = log_params
            self.mbx_every = every_n_steps
            self.mbx_epochs = 0
            self.mbx_t0 = 0.0
            self.mbx_started = 0.0

        @safe_method("fastai:before_fit")
        def before_fit(self) -> None:
            if not self.mbx_log_params:
                return
            learn = self.learn
            hypers = dict(learn.opt.hypers[-1]) if getattr(learn, "opt", None) is not None else {}
            model = learn.model
            dls = learn.dls
            params: dict[str, Any] = {
                "n_epoch": learn.n_epoch,
                "optimizer": {"name": getattr(learn.opt_func, "__name__", repr(learn.opt_func)),
                              **{k: _number(v) if _number(v) is not None else v for k, v in hypers.items()}},
                "loss_func": type(learn.loss_func).__name__,
                "metrics": [getattr(m, "name", repr(m)) for m in learn.metrics],
                "model": {"class": type(model).__name__, "parameters": sum(p.numel() for p in model.parameters())},
                "batch_size": getattr(dls, "bs", None),
                "train_size": _safe_len(getattr(dls, "train_ds", None)),
                "valid_size": _safe_len(getattr(dls, "valid_ds", None)),
                "wd": learn.wd,
            }
            self.mbx_run.log_params(params)

        @safe_method("fastai:before_epoch")
        def before_epoch(self) -> None:
            self.mbx_t0 = perf_counter()
            self.mbx_started = time.time()

        @safe_method("fastai:after_batch")
        def after_batch(self) -> None:
            every = self.mbx_every
            if not every or not self.learn.training:
                return
            step = getattr(self.learn, "train_iter", 0)
            if step % every == 0:
                loss = _number(getattr(self.learn, "smooth_loss", None))
                if loss is not None:
                    self.mbx_run.log_metric("train_loss_step", loss, step=step, epoch=self._epoch())

        @safe_method("fastai:after_epoch")
        def after_epoch(self) -> None:
            epoch = self._epoch()
            duration = perf_counter() - self.mbx_t0
            run = self.mbx_run
            run.log_event("epoch", duration_s=duration, timestamp=self.mbx_started, epoch=epoch)
            run.log_metric("epoch_time_s", duration, step=epoch, epoch=epoch)
            recorder = getattr(self.learn, "recorder", None)
            if recorder is not None and recorder.values:
                names = [n for n in list(recorder.metric_names)[1:] if n != "time"]
                values = {n: _number(v) for n, v in zip(names, recorder.values[-1], strict=False)}
                run.log_metrics({n: v for n, v in values.items() if v is not None}, step=epoch, epoch=epoch)
            self.mbx_epochs += 1
            n_epoch = getattr(self.learn, "n_epoch", 0)
            if n_epoch:
                run.set_progress((self.learn.epoch + 1) / n_epoch)

        def _epoch(self) -> int:
            return self.mbx_epoch_offset + int(getattr(self.learn, "epoch", 0))

    ModelboxFastaiCallback.__qualname__ = "ModelboxFastaiCallback"
    _callback_classes.append(ModelboxFastaiCallback)
    return ModelboxFastaiCallback


def _safe_len(value: Any) -> int | None:
    try:
        return len(value)
    except Exception:
        return None


class FastaiIntegration(Integration):
    name = "fastai"
    modules = ("fastai",)
    distribution = "fastai"
    requirement = ">=2.0"

    def __init__(self) -> None:
        super().__init__()
        self._callback_cls: type | None = None
        self._epochs: weakref.WeakKeyDictionary[Run, int] = weakref.WeakKeyDictionary()
        self._learner_runs: weakref.WeakKeyDictionary[Any, Run] = weakref.WeakKeyDictionary()

    # ------------------------------------------------------------------ setup
    def setup(self, module: Any) -> None:
        # Learner lives in fastai.learner and the fit_* helpers in fastai.callback.schedule;
        # importing ``fastai`` alone imports neither.
        _patching.when_imported(self.name, "fastai.learner", self._setup_learner)
        _patching.when_imported(self.name, "fastai.callback.schedule", self._setup_schedule)

    def _setup_learner(self, module: Any) -> None:
        learner = module.Learner
        self._callback_cls = _make_callback_class(module.Callback, module.Recorder.order)
        self.patch(learner, "fit", self._fit_hook, group=FASTAI_FIT)
        self.patch(learner, "save", self._save_hook, group=FASTAI_IO)
        self.patch(learner, "load", self._load_hook, group=FASTAI_IO)
        self.patch(learner, "export", self._export_hook, group=FASTAI_IO)

    def _setup_schedule(self, module: Any) -> None:
        learner = module.Learner
        for method in _OUTER_METHODS:
            if hasattr(learner, method):
                self.patch(learner, method, self._outer_hook, group=FASTAI_OUTER)
        if hasattr(learner, "lr_find"):
            self.patch(learner, "lr_find", _quiet_hook, group=FASTAI_LR_FIND)

    # ------------------------------------------------------------------ fits
    def _outer_hook(self, call: Call) -> Generator[Any, Any, None]:
        """fit_one_cycle / fine_tune / ...: one run around the fit(s) they make."""
        learn = call.instance
        method = getattr(call.wrapped, "__name__", "fit")
        with autorun("fastai", name=type(learn.model).__name__) as run:
            self._learner_runs[learn] = run
            args = {k: v for k, v in call.bound.arguments.items() if k not in ("self", "cbs", "kwargs")}
            args.update(call.bound.arguments.get("kwargs", {}) or {})
            if run not in self._epochs:
                run.log_params({"fit_method": method, method: {k: _param(v) for k, v in args.items()}})
            yield None
            self._log_final_model(run, learn)

    def _fit_hook(self, call: Call) -> Generator[Any, Any, None]:
        learn = call.instance
        cbs = _as_list(call.argument("cbs"))
        if any(type(cb).__name__ == "LRFinder" for cb in cbs) or self._callback_cls is None:
            return  # lr_find explores, it does not train
        with autorun("fastai", name=type(learn.model).__name__) as run:
            self._learner_runs[learn] = run
            first = run not in self._epochs
            offset = self._epochs.get(run, 0)
            ours = self._callback_cls(run, offset, first, self.config.log_every_n_steps)
            self._epochs[run] = offset
            try:
                yield call.replace(cbs=[*cbs, ours])  # a new list; fit removes it again when done
            finally:
                self._epochs[run] = offset + ours.mbx_epochs
            if not in_group(FASTAI_OUTER):
                self._log_final_model(run, learn)

    def _log_final_model(self, run: Run, learn: Any) -> None:
        """The trained Learner as a Model: a ``learn.export`` (``client.load_model`` gives a live
        Learner back), else, when the Learner cannot be exported (pickled), its weights as a state
        dict, with the reason as a ``learner_export_failed`` event."""
        if not self.config.log_models:
            return
        import torch

        folder = tempfile.mkdtemp(prefix="modelbox-fastai-")
        epochs = self._epochs.get(run, 0)
        reason = self._export_copy(learn, os.path.join(folder, "export.pkl"))
        if reason is None:
            log_model_within_limit(run, os.path.join(folder, "export.pkl"), name=type(learn.model).__name__,
                                   framework="fastai",
                                   metadata={"kind": "fastai_export", "epochs": epochs, "saved_by": "autolog"},
                                   _staged=True)
            return
        run.log_event("learner_export_failed", reason=reason)
        path = os.path.join(folder, "model.pth")
        torch.serialization.save(learn.model.state_dict(), path)  # unpatched: our own file
        log_model_within_limit(run, path, name=type(learn.model).__name__, framework="fastai",
                               metadata={"kind": "state_dict", "epochs": epochs, "export_failed": reason}, _staged=True)

    @staticmethod
    def _export_copy(learn: Any, path: str) -> str | None:
        """``learn.export`` into ``path``; None, or why it could not be made. The Learner is left as it was:
        ``export`` swaps its data loaders and optimizer while it pickles (and leaves them swapped when
        pickling fails), so both are put back, the same objects, whatever happens."""
        dls, opt = learn.dls, learn.opt
        try:
            with _patching.entered(FASTAI_IO):  # our own export is neither the user's export nor a torch.save
                learn.export(path)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"[:500]
        finally:
            learn.dls, learn.opt = dls, opt
        return None if os.path.isfile(path) else "Learner.export wrote no file"

    # ------------------------------------------------------------------ save / load / export
    def _run_for(self, learn: Any) -> Run | None:
        if in_group(FASTAI_LR_FIND):
            return None  # lr_find's own temporary save/load
        run = active_run() or self._learner_runs.get(learn)
        if run is not None:
            return run
        from .._autolog import _enabled  # no fit yet: the plain-PyTorch process run

        torch_integration = _enabled.get("pytorch")
        target = getattr(torch_integration, "_target_run", None)
        return target() if target is not None else None

    def _save_hook(self, call: Call) -> Generator[Any, Any, None]:
        if not (self.config.log_checkpoints or self.config.log_models):
            return
        started, t0 = time.time(), perf_counter()
        path = yield None
        self._record_file(call.instance, os.fspath(path), "checkpoint_saved", "Learner.save",
                          perf_counter() - t0, started, with_opt=bool(call.argument("with_opt", True)))

    def _export_hook(self, call: Call) -> Generator[Any, Any, None]:
        if not (self.config.log_checkpoints or self.config.log_models):
            return
        learn = call.instance
        started, t0 = time.time(), perf_counter()
        yield None
        path = os.path.join(os.fspath(learn.path), os.fspath(call.argument("fname", "export.pkl")))
        self._record_file(learn, path, "checkpoint_saved", "Learner.export", perf_counter() - t0, started)

    def _load_hook(self, call: Call) -> Generator[Any, Any, None]:
        if not self.config.log_checkpoints:
            return
        learn = call.instance
        started, t0 = time.time(), perf_counter()
        yield None
        name = os.fspath(call.argument("file"))
        path = name if os.path.isabs(name) else os.path.join(os.fspath(learn.path), os.fspath(learn.model_dir), name)
        path = path if path.endswith(".pth") else f"{path}.pth"
        run = self._run_for(learn)
        if run is None:
            return
        size = file_bytes(path)
        run.log_event("checkpoint_loaded", duration_s=perf_counter() - t0, timestamp=started, path=path,
                      bytes=size, kind="fastai_checkpoint", api="Learner.load")
        run.log_input(path, kind="model", object_kind="fastai_checkpoint", bytes=size)

    def _record_file(self, learn: Any, path: str, event: str, api: str, duration: float, started: float, **attrs: Any) -> None:
        if not os.path.isfile(path):
            return  # e.g. export on a non-zero rank writes nothing
        run = self._run_for(learn)
        if run is None:
            return
        size = file_bytes(path)
        exported = api == "Learner.export"
        kind = "fastai_export" if exported else "fastai_checkpoint"
        config = self.config
        if config.log_checkpoints:
            run.log_event(event, duration_s=duration, timestamp=started, path=os.path.abspath(path), bytes=size,
                          kind=kind, api=api, epoch=getattr(learn, "epoch", None), **attrs)
        if exported and config.log_models:
            file, staged = snapshot(path, size)
            log_model_within_limit(run, file, name=os.path.splitext(os.path.basename(path))[0], framework="fastai",
                          metadata={"kind": kind, "source_path": os.path.abspath(path), "bytes": size}, _staged=staged)
        elif not exported and config.log_checkpoints:
            file, staged = snapshot(path, size)
            run.log_artifact(file, name=os.path.basename(path), kind="checkpoint", _staged=staged)

    # ------------------------------------------------------------------ loading back
    @classmethod
    def load_model(cls, files_dir: str, model: Any) -> Any:
        """``learn.export`` files -> a Learner (``load_learner``); weights -> a state dict."""
        path = single_file(files_dir)
        kind = (getattr(model, "metadata", None) or {}).get("kind")
        if kind == "fastai_export":
            from fastai.learner import load_learner

            with _patching.entered(FASTAI_IO):  # our own load is not a checkpoint load to record
                return load_learner(path)
        return load_torch_file(path, kind)


def _quiet_hook(call: Call) -> Generator[Any, Any, None]:
    """Only marks the call (its guard group) so that nothing inside it is logged."""
    yield None


def _param(value: Any) -> Any:
    value = scalar(value)
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, slice):
        return f"slice({_number(value.start)}, {_number(value.stop)})"
    return value
