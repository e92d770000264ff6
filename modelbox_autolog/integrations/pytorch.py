"""Plain PyTorch autologging: checkpoints (torch.save/load, torch.jit.save/load), optimizer
hyperparameters at optimizer creation, and DataLoader wait-versus-compute time per pass.

A plain training loop has no ``fit`` call to scope a run, so records go to the active run if
there is one (a Lightning or fastai fit, a ``start_run`` block) and otherwise to the
process-level run (``_process_run``), opened lazily by the first thing worth recording and
ended at process exit by ``shutdown`` (or by ``autolog(disable=True)``); it carries torch's
version and the distributed rank and world size.
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Generator
from time import perf_counter
from typing import Any

from .. import _process_run, _run
from .._context import global_rank, world_size
from .._patching import Call, in_group, report_error
from ._checkpoint_files import file_bytes, log_model_within_limit, snapshot
from ._torch_common import (
    FRAMEWORK_IO_GROUPS,
    MODEL_KINDS,
    QUIET_GROUPS,
    describe,
    in_dataloader_worker,
    load_torch_file,
    model_name,
    scalar,
    single_file,
    target_of,
)
from .base import Integration

TORCH_IO = "torch-io"
TORCH_OPTIM = "torch-optim"


class _PassTiming:
    """Accumulated over one pass of a DataLoader iterator; two adds per batch, no records."""

    __slots__ = ("wait", "between", "batches", "expected", "done", "last_end", "started_wall", "started")

    def __init__(self, now: float, expected: int) -> None:
        self.expected = expected  # batches in a full pass (-1: unsized); loops that stop at len() never raise StopIteration
        self.done = False
        self.wait = 0.0
        self.between = 0.0
        self.batches = 0
        self.last_end = 0.0
        self.started = now
        self.started_wall = time.time()


def _expected_batches(iterator: Any) -> int:
    try:
        return len(iterator)
    except Exception:  # an IterableDataset without __len__: the pass ends at StopIteration
        return -1


class PyTorchIntegration(Integration):
    name = "pytorch"
    modules = ("torch",)
    distribution = "torch"
    requirement = ">=2.0"

    def __init__(self) -> None:
        super().__init__()
        self._optimizers: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        self._passes: dict[Any, int] = {}

    # ------------------------------------------------------------------ setup
    def setup(self, module: Any) -> None:
        torch = module
        self.patch(torch, "save", self._save_hook, group=TORCH_IO)
        self.patch(torch, "load", self._load_hook, group=TORCH_IO)
        self.patch(torch.jit, "save", self._jit_save_hook, group=TORCH_IO)
        self.patch(torch.jit, "load", self._jit_load_hook, group=TORCH_IO)
        self.patch(torch.optim.Optimizer, "__init__", self._optimizer_hook, group=TORCH_OPTIM)
        from torch.utils.data import dataloader

        self.patch_raw(dataloader._BaseDataLoaderIter, "__next__", self._next_wrapper)
        _process_run.on_open(self._describe_process_run)

    def teardown(self) -> None:
        pass  # the process-level run is shared (_process_run); autolog(disable=True) ends it

    # ------------------------------------------------------------------ where records go
    def _target_run(self) -> _run.Run | None:
        """The active run, else the process-level run (opened now if needed); None in workers."""
        if in_dataloader_worker() or any(in_group(group) for group in QUIET_GROUPS):
            return None
        return _process_run.target_run()

    @staticmethod
    def _describe_process_run(run: _run.Run) -> None:
        """What every process-level run of a torch process says about torch."""
        import sys

        torch = sys.modules.get("torch")
        if torch is None:
            return
        run.set_tags({"framework": "pytorch"})
        run.log_params({
            "torch.version": torch.__version__,
            "torch.cuda_available": torch.cuda.is_available(),
            "distributed.world_size": world_size(),
            "distributed.rank": global_rank(),
        })

    def _io_wanted(self) -> bool:
        config = self.config
        if not (config.log_checkpoints or config.log_models):
            return False
        if any(in_group(group) for group in FRAMEWORK_IO_GROUPS):
            return False  # Lightning's / fastai's own checkpoint: logged once, by that integration
        return not in_dataloader_worker()

    # ------------------------------------------------------------------ torch.save / torch.load
    def _save_hook(self, call: Call) -> Generator[Any, Any, None]:
        if not self._io_wanted():
            return
        obj, f = call.argument("obj"), call.argument("f")
        yield from self._timed_save(obj, f, "torch.save")

    def _jit_save_hook(self, call: Call) -> Generator[Any, Any, None]:
        if not self._io_wanted():
            return
        obj, f = call.argument("m"), call.argument("f")
        yield from self._timed_save(obj, f, "torch.jit.save")

    def _timed_save(self, obj: Any, f: Any, api: str) -> Generator[Any, Any, None]:
        started, t0 = time.time(), perf_counter()
        try:
            yield None
        except BaseException as exc:
            self._record_failure("checkpoint_save_failed", f, api, started, perf_counter() - t0, exc)
            raise
        self.record_save(obj, f, perf_counter() - t0, started, api)

    def _load_hook(self, call: Call) -> Generator[Any, Any, None]:
        if not self._io_wanted():
            return
        yield from self._timed_load(call.argument("f"), "torch.load")

    def _jit_load_hook(self, call: Call) -> Generator[Any, Any, None]:
        if not self._io_wanted():
            return
        yield from self._timed_load(call.argument("f"), "torch.jit.load")

    def _timed_load(self, f: Any, api: str) -> Generator[Any, Any, None]:
        started, t0 = time.time(), perf_counter()
        try:
            result = yield None
        except BaseException as exc:
            self._record_failure("checkpoint_load_failed", f, api, started, perf_counter() - t0, exc)
            raise
        self.record_load(result, f, perf_counter() - t0, started, api)

    @staticmethod
    def _io_facts(obj: Any, f: Any) -> tuple[str, dict[str, Any], str | None, bool, int | None]:
        """(object kind, its attributes, path, whether ``f`` was a path, file size) of a save or load."""
        kind, attrs = describe(obj)
        path, is_path = target_of(f)
        return kind, attrs, path, is_path, file_bytes(path) if is_path else None

    def record_save(self, obj: Any, f: Any, duration: float, started: float, api: str) -> None:
        """One save: an event, and the file as a model (weights) or a checkpoint artifact."""
        run = self._target_run()
        if run is None:
            return
        kind, attrs, path, is_path, size = self._io_facts(obj, f)
        config = self.config
        if config.log_checkpoints:
            run.log_event("checkpoint_saved", duration_s=duration, timestamp=started,
                          path=path, bytes=size, kind=kind, api=api, **attrs)
        if not is_path or size is None or path is None:
            return  # a buffer or file object: nothing we can copy later
        if kind in MODEL_KINDS and config.log_models:
            file, staged = snapshot(path, size)
            log_model_within_limit(run, file, name=model_name(path), framework="pytorch",
                          metadata={"kind": kind, "source_path": path, "bytes": size, "api": api, **attrs},
                          _staged=staged)
        elif config.log_checkpoints:
            file, staged = snapshot(path, size)
            run.log_artifact(file, name=os.path.basename(path), kind="checkpoint", _staged=staged)

    def record_load(self, result: Any, f: Any, duration: float, started: float, api: str) -> None:
        run = self._target_run()
        if run is None:
            return
        kind, attrs, path, _is_path, size = self._io_facts(result, f)
        if self.config.log_checkpoints:
            run.log_event("checkpoint_loaded", duration_s=duration, timestamp=started,
                          path=path, bytes=size, kind=kind, api=api, **attrs)
        if path:
            run.log_input(path, kind="model" if kind in MODEL_KINDS else "checkpoint", object_kind=kind, bytes=size)

    def _record_failure(self, name: str, f: Any, api: str, started: float, duration: float, exc: BaseException) -> None:
        try:
            run = self._target_run()
            if run is not None and self.config.log_checkpoints:
                path, _ = target_of(f)
                run.log_event(name, duration_s=duration, timestamp=started, path=path, api=api,
                              error=f"{type(exc).__name__}: {exc}"[:500])
        except Exception as ours:
            report_error(f"pytorch:{name}", ours)

    # ------------------------------------------------------------------ optimizers
    def _optimizer_hook(self, call: Call) -> Generator[Any, Any, None]:
        yield None
        optimizer = call.instance
        run = self._target_run()
        if run is None or optimizer is None:
            return
        count = self._optimizers.get(run, 0) + 1
        self._optimizers[run] = count
        prefix = "optimizer" if count == 1 else f"optimizer_{count}"
        params: dict[str, Any] = {"name": type(optimizer).__name__}
        for key, value in (getattr(optimizer, "defaults", None) or {}).items():
            value = scalar(value)
            if value is not None:
                params[key] = value
        groups = getattr(optimizer, "param_groups", [])
        params["param_groups"] = len(groups)
        params["parameters"] = sum(p.numel() for g in groups for p in g.get("params", ()) if hasattr(p, "numel"))
        run.log_params({prefix: params})

    # ------------------------------------------------------------------ DataLoader timing
    def _next_wrapper(self, wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        # Per batch: two perf_counter calls and a few adds; one event per completed pass.
        t0 = perf_counter()
        timing = instance.__dict__.get("_modelbox_timing")
        if timing is None or getattr(instance, "_num_yielded", 1) == 0:
            timing = _PassTiming(t0, _expected_batches(instance))
            instance._modelbox_timing = timing
        try:
            batch = wrapped(*args, **kwargs)
        except StopIteration:
            if not timing.done:
                timing.wait += perf_counter() - t0
                timing.done = True
                self._end_pass(instance, timing)
            raise
        t1 = perf_counter()
        timing.wait += t1 - t0
        if timing.batches:
            timing.between += t0 - timing.last_end
        timing.last_end = t1
        timing.batches += 1
        if timing.batches == timing.expected:
            timing.done = True
            self._end_pass(instance, timing)
        return batch

    def _end_pass(self, iterator: Any, timing: _PassTiming) -> None:
        try:
            if timing.batches == 0:
                return
            run = self._target_run()
            if run is None:
                return
            dataset = getattr(iterator, "_dataset", None)
            key = (run.id, id(dataset))
            epoch = self._passes.get(key, 0)
            self._passes[key] = epoch + 1
            total = timing.wait + timing.between
            run.log_event(
                "data_loading", duration_s=timing.wait, timestamp=timing.started_wall,
                epoch=epoch, batches=timing.batches, wait_s=round(timing.wait, 6),
                compute_s=round(timing.between, 6), total_s=round(total, 6),
                wait_fraction=round(timing.wait / total, 4) if total > 0 else None,
                num_workers=getattr(iterator, "_num_workers", 0), dataset=type(dataset).__name__,
            )
        except Exception as exc:
            report_error("pytorch:data_loading", exc)  # swallowed, except under testing mode

    # ------------------------------------------------------------------ loading back
    @classmethod
    def load_model(cls, files_dir: str, model: Any) -> Any:
        """A state dict -> dict of tensors; a pickled module -> the module; TorchScript -> ScriptModule."""
        kind = (getattr(model, "metadata", None) or {}).get("kind")
        return load_torch_file(single_file(files_dir), kind)
