"""Hugging Face Transformers autologging: a ``TrainerCallback`` injected into ``Trainer.train``
(so ``Seq2SeqTrainer`` and other subclasses too) records

- params: the ``TrainingArguments`` (tokens redacted by Transformers' own ``to_dict``), the
  model's config under ``model_config.``, its class and parameter counts;
- every ``Trainer.log`` (loss, learning_rate, grad_norm, eval_* metrics, the final train_runtime...)
  as metrics with ``step=global_step`` (``epoch`` is a metric too, and each point's epoch);
- each checkpoint the Trainer writes as a ``checkpoint_saved`` event (path, bytes, duration,
  global_step, best checkpoint); the files stay where the Trainer put them;
- the final model (``save_pretrained``, safetensors) with its tokenizer or processor when the
  Trainer has one, as a Model; ``client.load_model`` returns the model, in eval mode, loaded
  with the class that trained it (else the class its config names).

Only the world's process zero logs. The Trainer's own ``torch.save`` calls (optimizer,
scheduler, RNG state) are not logged again as plain PyTorch checkpoints. A ``report_to``
TensorBoard logger writes what this integration records: its scalars are not recorded twice
(see the tensorboard integration); other ``report_to`` integrations write elsewhere.
Under DeepSpeed or FSDP the final model is not saved by us (saving needs every rank); the
reason is a ``model_not_logged`` event.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Generator
from time import perf_counter
from typing import Any

from .._patching import Call, entered, safe_method
from .._run import Run, autorun
from ._checkpoint_files import file_bytes
from ._torch_common import TRANSFORMERS_IO
from .base import Integration

TRANSFORMERS_TRAIN = "transformers-train"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _class_path(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


def _make_callback_class(base: type) -> type:
    class ModelboxTrainerCallback(base):  # type: ignore[misc, valid-type]
        def __init__(self, run: Run, integration: TransformersIntegration, trainer: Any) -> None:
            super().__init__()
            self.run = run
            self.integration = integration
            self.trainer = trainer

        @safe_method("transformers:on_train_begin")
        def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            params: dict[str, Any] = dict(args.to_dict())
            if model is not None:
                config = getattr(model, "config", None)
                if config is not None and hasattr(config, "to_dict"):
                    params["model_config"] = config.to_dict()
                parameters = list(model.parameters()) if hasattr(model, "parameters") else []
                params["model"] = {
                    "class": type(model).__name__,
                    "parameters": sum(p.numel() for p in parameters),
                    "trainable_parameters": sum(p.numel() for p in parameters if p.requires_grad),
                }
            processing_class = kwargs.get("processing_class") or kwargs.get("tokenizer")  # its name before 4.46
            if processing_class is not None:
                params["processing_class"] = type(processing_class).__name__
            params["trainer"] = {"class": type(self.trainer).__name__, "max_steps": state.max_steps,
                                 "num_train_epochs": state.num_train_epochs, "world_size": args.world_size}
            self.run._log_params_later(params)

        @safe_method("transformers:on_log")
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            if not logs:
                return
            metrics = {str(k): v for k, v in ((k, _number(v)) for k, v in logs.items()) if v is not None}
            epoch = int(state.epoch) if state.epoch is not None else None
            self.run.log_metrics(metrics, step=state.global_step, epoch=epoch)
            self.run._mbx_step_hint = state.global_step
            if state.max_steps:
                self.run.set_progress(state.global_step / state.max_steps)

        @safe_method("transformers:on_train_end")
        def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            processing_class = kwargs.get("processing_class") or kwargs.get("tokenizer")
            self.integration.log_final_model(self.run, self.trainer, model, processing_class, state)

    return ModelboxTrainerCallback


class TransformersIntegration(Integration):
    name = "transformers"
    modules = ("transformers.trainer",)
    distribution = "transformers"
    requirement = ">=4.36"

    def __init__(self) -> None:
        super().__init__()
        self._callback_cls: type | None = None

    def setup(self, module: Any) -> None:
        from transformers.trainer_callback import TrainerCallback

        self._callback_cls = _make_callback_class(TrainerCallback)
        trainer_cls = module.Trainer
        self.patch(trainer_cls, "train", self._train_hook, group=TRANSFORMERS_TRAIN)
        self.patch(trainer_cls, "_save_checkpoint", self._checkpoint_hook, group=TRANSFORMERS_IO)
        self.patch(trainer_cls, "save_model", _quiet, group=TRANSFORMERS_IO)

    def _logs_here(self, trainer: Any) -> bool:
        if self.config.log_all_ranks:
            return True
        try:
            return bool(trainer.is_world_process_zero())
        except Exception:
            return True

    # ------------------------------------------------------------------ train
    def _train_hook(self, call: Call) -> Generator[Any, Any, None]:
        trainer = call.instance
        if self._callback_cls is None or not self._logs_here(trainer):
            return
        model = getattr(trainer, "model", None)
        with autorun("transformers", name=type(model).__name__ if model is not None else type(trainer).__name__) as run:
            callback = self._callback_cls(run, self, trainer)
            trainer.add_callback(callback)  # the Trainer's own handler list, not a list of the user's
            try:
                yield None
            finally:
                trainer.remove_callback(callback)

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint_hook(self, call: Call) -> Generator[Any, Any, None]:
        trainer = call.instance
        started, t0 = time.time(), perf_counter()
        yield None
        duration = perf_counter() - t0
        run = _active_train_run()
        if run is None or not self.config.log_checkpoints or not self._logs_here(trainer):
            return
        state = trainer.state
        try:
            run_dir = trainer._get_output_dir(trial=call.argument("trial"))
        except Exception:
            run_dir = trainer.args.output_dir
        path = os.path.abspath(os.path.join(run_dir, f"checkpoint-{state.global_step}"))
        run.log_event("checkpoint_saved", duration_s=duration, timestamp=started, path=path, bytes=file_bytes(path),
                      kind="transformers_checkpoint", api="Trainer._save_checkpoint", global_step=state.global_step,
                      epoch=state.epoch, best_model_checkpoint=state.best_model_checkpoint,
                      best_metric=_number(state.best_metric))

    # ------------------------------------------------------------------ final model
    def log_final_model(self, run: Run, trainer: Any, model: Any, processing_class: Any, state: Any) -> None:
        if not self.config.log_models or model is None:
            return
        if getattr(trainer, "is_deepspeed_enabled", False) or getattr(trainer, "is_fsdp_enabled", False):
            run.log_event("model_not_logged", reason="DeepSpeed/FSDP: saving the full model needs every rank; "
                          "use trainer.save_model() and log the folder with run.log_model")
            return
        if not hasattr(model, "save_pretrained"):
            run.log_event("model_not_logged", reason=f"{type(model).__name__} has no save_pretrained")
            return
        folder = tempfile.mkdtemp(prefix="modelbox-transformers-")
        try:
            with entered(TRANSFORMERS_IO):
                model.save_pretrained(folder)
                if processing_class is not None and hasattr(processing_class, "save_pretrained"):
                    processing_class.save_pretrained(folder)
        except Exception:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        import transformers

        config = getattr(model, "config", None)
        metadata = {
            "kind": "save_pretrained",
            "class": _class_path(model),
            "architectures": list(getattr(config, "architectures", None) or []),
            "model_type": getattr(config, "model_type", None),
            "processing_class": _class_path(processing_class) if processing_class is not None else None,
            "global_step": state.global_step,
            "epoch": state.epoch,
            "best_model_checkpoint": state.best_model_checkpoint,
            "transformers_version": transformers.__version__,
        }
        run.log_model(folder, name=type(model).__name__, framework="transformers",
                      metadata={k: v for k, v in metadata.items() if v is not None}, _staged=True)

    # ------------------------------------------------------------------ loading back
    @classmethod
    def load_model(cls, files_dir: str, model: Any) -> Any:
        """The model, with the class that trained it if importable, else the one its config names."""
        import importlib

        metadata = getattr(model, "metadata", None) or {}
        model_cls = None
        module_name, _, qualname = str(metadata.get("class", "")).partition(":")
        if module_name and module_name != "__main__":
            try:
                model_cls = importlib.import_module(module_name)
                for part in qualname.split("."):
                    model_cls = getattr(model_cls, part)
            except Exception:
                model_cls = None
        if model_cls is None:
            import transformers

            for name in metadata.get("architectures") or []:
                model_cls = getattr(transformers, name, None)
                if model_cls is not None:
                    break
            else:
                model_cls = transformers.AutoModel
        loaded = model_cls.from_pretrained(files_dir)
        loaded.eval()
        return loaded


def _active_train_run() -> Run | None:
    from .._run import active_run

    return active_run()


def _quiet(call: Call) -> Generator[Any, Any, None]:
    """The Trainer's own saves: its torch.save calls are not plain PyTorch checkpoints of the user's."""
    yield None
