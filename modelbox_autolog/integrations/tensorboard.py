"""TensorBoard autologging: what a script writes through ``torch.utils.tensorboard.SummaryWriter``,
``tensorboardX.SummaryWriter`` or ``tf.summary`` (including Keras's ``TensorBoard`` callback) is
recorded into the active run (else the process-level run) as it is written, with its step. The
event files are written exactly as before; nothing is read back from them.

- Scalars (``add_scalar``, ``tf.summary.scalar``) are metrics keyed by their tag;
  ``add_scalars(main, {sub: v})`` gives ``main/sub``. A writer whose folder is named after a split
  (``train``, ``validation``, ``val``, ``eval``, ``test``...), as Keras's callback makes, prefixes its
  tags with that name: ``train/epoch_loss``, ``validation/epoch_loss``. ``global_step=None``
  counts up per key, as ``log_metric`` does.
- ``add_hparams``: the hyperparameters as params, its metrics as metrics.
- Histograms (``add_histogram``, ``tf.summary.histogram``): ``<tag>/min``, ``/max``, ``/mean``,
  ``/std`` (for torch and tensorboardX read from the summary TensorBoard already computed).
- Images (``add_image``, ``add_images``, ``add_figure``, ``tf.summary.image``): PNG artifacts of kind
  ``image``, within the run's ``max_figures_per_run``.
- Text (``add_text``, ``tf.summary.text``): ``tensorboard_text`` events (tag, step, text).

**No metric twice.** A framework's own TensorBoard logger writes the same values our integration
for that framework records: Keras's ``TensorBoard`` callback (``epoch_loss`` = our ``loss``),
Lightning's ``TensorBoardLogger`` (every ``self.log`` value) and Transformers'
``TensorBoardCallback`` (every Trainer log). While our integration records that fit, their
*scalars, hparams and text* are not recorded again; their histograms and images (Keras's
``histogram_freq``, ``write_images``), and everything the user writes with a writer of their own
(also ``self.logger.experiment.add_scalar`` inside a LightningModule), are. With that framework's
integration disabled, their writes are recorded like any other.

``tf.summary`` calls inside a ``tf.function`` are written by TensorFlow but not recorded (their
values exist only in the graph); one warning says so.
"""

from __future__ import annotations

import logging
import math
import os
import weakref
from collections.abc import Generator, Mapping
from typing import Any

from .._patching import Call, active_groups, report_error
from .._process_run import target_run
from .._run import Run
from ._images import keep_image
from .base import Integration

TB_CALL = "tensorboard-call"  # add_scalars / add_hparams: their inner writes are recorded by the outer call
FRAMEWORK_TB = "tensorboard-framework-logger"  # a framework's own TensorBoard logger is writing
# our fit integrations that record what their framework's TensorBoard logger writes
RECORDING_FITS = ("keras-fit", "lightning-fit", "transformers-train")

log = logging.getLogger("modelbox_autolog")

SPLIT_DIRS = frozenset({"train", "training", "val", "valid", "validation", "eval", "evaluation", "test", "testing"})
MAX_TEXT_CHARS = 10_000
TEXT_SUFFIX = "/text_summary"  # what add_text appends to the tag


def split_prefix(logdir: Any) -> str:
    """``"train/"`` for a writer whose folder is a split's, else ``""``."""
    try:
        base = os.path.basename(os.path.normpath(os.fspath(logdir))).lower()
    except TypeError:
        return ""
    return base + "/" if base in SPLIT_DIRS else ""


def framework_duplicate() -> bool:
    """True while a framework's own TensorBoard logger writes values our integration records."""
    groups = active_groups()
    return FRAMEWORK_TB in groups and any(g in groups for g in RECORDING_FITS)


def _step(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except Exception:
        try:
            return int(value.numpy())
        except Exception:
            return None


def _remember_step(run: Run, step: int | None) -> None:
    if step is not None:
        run._mbx_step_hint = step  # what a figure saved next is labelled with


def _histogram_stats(tag: str, count: float, total: float, squares: float, low: float, high: float) -> dict[str, float]:
    if not count:
        return {}
    mean = total / count
    variance = max(0.0, squares / count - mean * mean)
    return {f"{tag}/min": low, f"{tag}/max": high, f"{tag}/mean": mean, f"{tag}/std": math.sqrt(variance)}


class TensorBoardIntegration(Integration):
    name = "tensorboard"
    # tensorboard first: the cheap test of `autolog(frameworks=["tensorboard"])` (find_spec of a
    # dotted name imports its parent package)
    modules = (
        "tensorboard", "tensorboardX", "torch.utils.tensorboard", "tensorboard.summary.v2",
        "tensorflow.python.ops.summary_ops_v2", "keras",
        "lightning.fabric.loggers.tensorboard", "lightning.pytorch.loggers.tensorboard",
        "lightning_fabric.loggers.tensorboard", "pytorch_lightning.loggers.tensorboard",
        "transformers.integrations.integration_utils",
    )
    distribution = ""
    requirement = ""

    def __init__(self) -> None:
        super().__init__()
        self._prefixes: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
        self._tf_logdirs: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
        self._warned_graph = False

    # ------------------------------------------------------------------ setup
    def setup(self, module: Any) -> None:
        name = module.__name__
        if name == "torch.utils.tensorboard":
            self._bind_writer(module.writer)
        elif name == "tensorboardX":
            import tensorboardX.writer

            self._bind_writer(tensorboardX.writer)
        elif name == "tensorboard.summary.v2":  # what every tf.summary.scalar/... calls, at call time
            for kind in ("scalar", "histogram", "image", "text"):
                self.patch(module, kind, self._tf_hook(kind))
        elif name == "tensorflow.python.ops.summary_ops_v2":
            self.patch(module._ResourceSummaryWriter, "__init__", self._tf_writer_hook)
        elif name == "keras":
            self._bind_keras_callback()
        elif name.endswith("loggers.tensorboard"):
            for attr in ("log_metrics", "log_hyperparams"):
                if attr in vars(module.TensorBoardLogger):
                    self.patch(module.TensorBoardLogger, attr, _enter_only, group=FRAMEWORK_TB)
        elif name == "transformers.integrations.integration_utils":
            callback = getattr(module, "TensorBoardCallback", None)
            if callback is not None:
                for attr in ("on_train_begin", "on_log", "on_evaluate"):
                    if attr in vars(callback):
                        self.patch(callback, attr, _enter_only, group=FRAMEWORK_TB)

    def _bind_writer(self, writer_module: Any) -> None:
        """torch's or tensorboardX's writer module: every summary passes through FileWriter.add_summary."""
        self.patch_raw(writer_module.FileWriter, "add_summary", self._add_summary_wrapper)
        writer = writer_module.SummaryWriter
        self.patch(writer, "add_scalars", self._add_scalars_hook, group=TB_CALL)
        self.patch(writer, "add_hparams", self._add_hparams_hook, group=TB_CALL)

    # ------------------------------------------------------------------ torch / tensorboardX
    def _add_summary_wrapper(self, wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        result = wrapped(*args, **kwargs)
        if TB_CALL in active_groups():
            return result
        try:
            summary = args[0] if args else kwargs.get("summary")
            step = args[1] if len(args) > 1 else kwargs.get("global_step")
            self._record_summary(instance, summary, step)
        except Exception as exc:
            report_error("tensorboard:add_summary", exc)
        return result

    def _prefix(self, file_writer: Any) -> str:
        try:
            return self._prefixes[file_writer]
        except KeyError:
            pass
        except TypeError:
            return ""
        try:
            prefix = split_prefix(file_writer.get_logdir())
        except Exception:
            prefix = ""
        self._prefixes[file_writer] = prefix
        return prefix

    def _record_summary(self, file_writer: Any, summary: Any, global_step: Any) -> None:
        values = getattr(summary, "value", None)
        if not values:
            return
        run = target_run()
        if run is None:
            return
        duplicate = framework_duplicate()
        step = _step(global_step)
        for value in values:
            tag = self._prefix(file_writer) + value.tag
            if value.HasField("simple_value"):
                if not duplicate:
                    run.log_metric(tag, value.simple_value, step)
                    _remember_step(run, step)
            elif value.HasField("histo"):
                h = value.histo
                run.log_metrics(_histogram_stats(tag, h.num, h.sum, h.sum_squares, h.min, h.max), step)
            elif value.HasField("image"):
                keep_image(run, tag, png=bytes(value.image.encoded_image_string), step=step,
                           source="tensorboard", kind="image", prefix="tensorboard/")
            elif value.HasField("tensor") and not duplicate:
                self._record_tensor(run, tag, value, step)

    @staticmethod
    def _record_tensor(run: Run, tag: str, value: Any, step: int | None) -> None:
        """A summary stored as a tensor: ``add_scalar(new_style=True)``, or ``add_text``."""
        plugin = value.metadata.plugin_data.plugin_name
        tensor = value.tensor
        if plugin == "scalars":
            number = tensor.float_val[0] if tensor.float_val else (tensor.double_val[0] if tensor.double_val else None)
            if number is not None:
                run.log_metric(tag, number, step)
        elif plugin == "text" and tensor.string_val:
            text = tensor.string_val[0].decode("utf-8", "replace")
            tag = tag[: -len(TEXT_SUFFIX)] if tag.endswith(TEXT_SUFFIX) else tag
            run.log_event("tensorboard_text", tag=tag, step=step, text=text[:MAX_TEXT_CHARS])

    def _add_scalars_hook(self, call: Call) -> Generator[Any, Any, None]:
        yield None
        if framework_duplicate():
            return
        main_tag, values = call.argument("main_tag"), call.argument("tag_scalar_dict")
        step = _step(call.argument("global_step"))
        run = target_run()
        if run is None or not isinstance(values, Mapping):
            return
        prefix = ""
        writer = getattr(call.instance, "file_writer", None)
        if writer is not None:
            prefix = self._prefix(writer)
        for tag, value in values.items():
            run.log_metric(f"{prefix}{main_tag}/{tag}", value, step)
        _remember_step(run, step)

    def _add_hparams_hook(self, call: Call) -> Generator[Any, Any, None]:
        yield None
        if framework_duplicate():
            return
        hparams, metrics = call.argument("hparam_dict"), call.argument("metric_dict")
        run = target_run()
        if run is None:
            return
        if isinstance(hparams, Mapping):
            run.log_params(dict(hparams))
        if isinstance(metrics, Mapping):
            run.log_metrics(dict(metrics), step=_step(call.argument("global_step")))

    # ------------------------------------------------------------------ tf.summary
    def _tf_writer_hook(self, call: Call) -> Generator[Any, Any, None]:
        """Remember each tf.summary writer's folder (the logdir is a keyword of its init function)."""
        yield None
        init = call.argument("init_op_fn")
        logdir = getattr(init, "keywords", {}).get("logdir")
        if hasattr(logdir, "numpy"):  # an eager string tensor
            logdir = logdir.numpy()
        if isinstance(logdir, bytes):
            logdir = logdir.decode("utf-8", "replace")
        if isinstance(logdir, (str, os.PathLike)):
            self._tf_logdirs[call.instance] = split_prefix(logdir)

    def _tf_prefix(self) -> str:
        try:
            from tensorflow.python.ops import summary_ops_v2

            writer = summary_ops_v2._summary_state.writer
        except Exception:
            return ""
        if writer is None:
            return ""
        try:
            return self._tf_logdirs.get(writer, "")
        except TypeError:
            return ""

    def _tf_hook(self, kind: str) -> Any:
        def hook(call: Call) -> Generator[Any, Any, None]:
            written = yield None
            self._record_tf(kind, call, written)

        return hook

    def _record_tf(self, kind: str, call: Call, written: Any) -> None:
        import tensorflow as tf

        if not tf.executing_eagerly():
            if not self._warned_graph:
                self._warned_graph = True
                if not self.config.silent:
                    log.warning("modelbox-autolog: tf.summary calls inside a tf.function are written to the event files "
                                "but not recorded (their values exist only in the graph)")
            return
        try:
            if not bool(written):
                return  # no default writer, or recording is off: TensorFlow wrote nothing either
        except Exception:
            return
        if kind in ("scalar", "text") and framework_duplicate():
            return
        step = call.argument("step")
        if step is None:
            step = tf.summary.experimental.get_step()
        step = _step(step)
        name = self._tf_prefix() + str(call.argument("name"))
        data = call.argument("data")
        run = target_run()
        if run is None:
            return
        if kind == "scalar":
            run.log_metric(name, float(data), step)
            _remember_step(run, step)
        elif kind == "histogram":
            import numpy as np

            values = np.asarray(data, dtype=np.float64).ravel()
            if values.size:
                run.log_metrics(_histogram_stats(name, values.size, float(values.sum()), float(np.square(values).sum()),
                                                 float(values.min()), float(values.max())), step)
        elif kind == "text":
            import numpy as np

            text = np.asarray(data).ravel()
            if text.size:
                first = text[0]
                first = first.decode("utf-8", "replace") if isinstance(first, bytes) else str(first)
                run.log_event("tensorboard_text", tag=name, step=step, text=first[:MAX_TEXT_CHARS])
        elif kind == "image":
            self._record_tf_images(run, name, data, step, call.argument("max_outputs", 3))

    def _record_tf_images(self, run: Run, name: str, data: Any, step: int | None, max_outputs: Any) -> None:
        import numpy as np

        pixels = np.asarray(data)
        if pixels.ndim != 4 or pixels.shape[-1] not in (1, 3, 4):
            return
        limit = max_outputs if isinstance(max_outputs, int) and max_outputs > 0 else 3
        for index in range(min(limit, pixels.shape[0])):
            image = pixels[index]
            if image.dtype != np.uint8:  # tf.summary.image: floats are in [0, 1]
                image = (np.clip(image.astype(np.float64), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
            label = name if index == 0 else f"{name}/{index}"
            keep_image(run, label, pixels=np.ascontiguousarray(image), step=step, source="tf.summary",
                       kind="image", prefix="tensorboard/")

    # ------------------------------------------------------------------ Keras's TensorBoard callback
    def _bind_keras_callback(self) -> None:
        import keras

        callback = getattr(keras.callbacks, "TensorBoard", None)
        if callback is None:
            return
        for attr in ("on_epoch_end", "on_train_batch_end", "on_test_end", "on_train_begin"):
            if attr in vars(callback):
                self.patch(callback, attr, _enter_only, group=FRAMEWORK_TB)


def _enter_only(call: Call) -> Generator[Any, Any, None]:
    """A hook that only marks the call's extent with its group (see ``framework_duplicate``)."""
    yield None
