"""Helpers shared by the PyTorch, Lightning and fastai integrations: what a saved object is,
where a save went, and stable snapshots of files that the training loop may overwrite.

Nothing here imports torch at module level: objects are classified through ``sys.modules``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

# Guard groups of framework-level save/load calls: a torch.save nested in one of them is the
# framework's own checkpoint, recorded once by that framework's integration.
LIGHTNING_IO = "lightning-io"
FASTAI_IO = "fastai-io"
TRANSFORMERS_IO = "transformers-io"
FRAMEWORK_IO_GROUPS = (LIGHTNING_IO, FASTAI_IO, TRANSFORMERS_IO)
# Framework calls that explore rather than train (fastai's lr_find): nothing inside them is logged.
FASTAI_LR_FIND = "fastai-lr-find"
QUIET_GROUPS = (FASTAI_LR_FIND,)

# Object kinds whose saved file is a model (a Model entity), not just a checkpoint artifact.
MODEL_KINDS = frozenset({"module", "script_module", "state_dict", "checkpoint"})

# Files up to this size are copied at once (cheap next to the save itself) so that a loop
# overwriting the same path every epoch cannot race the exporter's copy; bigger files are
# logged by path and copied by the exporter shortly after.

_CHECKPOINT_KEYS = ("epoch", "step", "global_step", "iteration", "best_score", "loss")
_MODEL_STATE_KEYS = ("state_dict", "model_state_dict", "model", "model_state", "net", "weights")


def _torch() -> Any:
    return sys.modules.get("torch")


def is_tensor(value: Any) -> bool:
    torch = _torch()
    return torch is not None and isinstance(value, torch.Tensor)


def _is_state_dict(value: Any) -> bool:
    if not isinstance(value, Mapping) or not value:
        return False
    torch = _torch()
    if torch is None:
        return False
    tensor = torch.Tensor
    return all(isinstance(v, tensor) for v in value.values())


def scalar(value: Any) -> Any:
    """A plain Python number for a 0-d tensor / numpy scalar; other values unchanged."""
    if is_tensor(value) and value.numel() == 1:
        return value.item()
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) == ():
        try:
            return item()
        except Exception:
            return value
    return value


def describe(obj: Any) -> tuple[str, dict[str, Any]]:
    """(kind, attributes) of an object given to torch.save or returned by torch.load.

    Kinds: script_module, module, optimizer, tensor, state_dict, optimizer_state,
    checkpoint (a dict holding model weights, e.g. with epoch), dict, or the type name.
    """
    torch = _torch()
    attrs: dict[str, Any] = {"type": type(obj).__name__}
    if torch is not None:
        if isinstance(obj, torch.jit.ScriptModule):
            return "script_module", attrs
        if isinstance(obj, torch.nn.Module):
            attrs["parameters"] = sum(p.numel() for p in obj.parameters())
            return "module", attrs
        if isinstance(obj, torch.optim.Optimizer):
            return "optimizer", attrs
        if isinstance(obj, torch.Tensor):
            attrs["shape"] = list(obj.shape)
            return "tensor", attrs
    if isinstance(obj, Mapping):
        if _is_state_dict(obj):
            attrs["tensors"] = len(obj)
            return "state_dict", attrs
        keys = [str(k) for k in list(obj.keys())[:50]]
        attrs["keys"] = keys[:20]
        if "state" in obj and "param_groups" in obj:
            return "optimizer_state", attrs
        for key in _CHECKPOINT_KEYS:
            value = scalar(obj.get(key)) if key in obj else None
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                attrs[key] = value
        if _holds_model(obj):
            return "checkpoint", attrs
        return "dict", attrs
    return type(obj).__name__, attrs


def _holds_model(obj: Mapping[Any, Any]) -> bool:
    torch = _torch()
    for key in _MODEL_STATE_KEYS:
        value = obj.get(key) if key in obj else None
        if _is_state_dict(value) or (torch is not None and isinstance(value, torch.nn.Module)):
            return True
    return any(_is_state_dict(v) for k, v in obj.items() if str(k).endswith(("state_dict", "model")))


def target_of(f: Any) -> tuple[str | None, bool]:
    """(path or file name, is_a_path) of torch.save/torch.load's ``f``: paths get sizes, buffers don't."""
    if isinstance(f, (str, os.PathLike)):
        try:
            return os.path.abspath(os.fspath(f)), True
        except TypeError:
            return None, False
    name = getattr(f, "name", None)
    return (name if isinstance(name, str) else None), False


def model_name(path: str) -> str:
    """A model's name from its file: ``runs/mlp_epoch3.pt`` -> ``mlp_epoch3``."""
    base = os.path.basename(path.rstrip("/\\")) or "model"
    stem, _ext = os.path.splitext(base)
    return stem or base


def in_dataloader_worker() -> bool:
    """True inside a DataLoader worker process, which must never log."""
    data = sys.modules.get("torch.utils.data")
    if data is None:
        return False
    try:
        return data.get_worker_info() is not None
    except Exception:
        return False


def load_torch_file(path: str, kind: str | None) -> Any:
    """Load a file torch wrote, bypassing our own torch.load patch (loading is not training)."""
    import torch
    from torch.jit import _serialization as jit_serialization

    if kind == "script_module":
        return jit_serialization.load(path, map_location="cpu")
    if kind in ("state_dict", "optimizer_state", "tensor"):
        try:
            return torch.serialization.load(path, map_location="cpu", weights_only=True)
        except Exception:
            pass  # older files or custom types: fall back to full unpickling of our own file
    try:
        return torch.serialization.load(path, map_location="cpu", weights_only=False)
    except RuntimeError:
        # a TorchScript archive saved under another kind
        return jit_serialization.load(path, map_location="cpu")


def single_file(files_dir: str) -> str:
    """The model's main file in a downloaded model folder."""
    if os.path.isfile(files_dir):
        return files_dir
    names = []
    for folder, _dirs, files in os.walk(files_dir):
        names.extend(os.path.join(folder, n) for n in files)
    if not names:
        raise FileNotFoundError(f"no model file in {files_dir}")
    return sorted(names, key=lambda p: (-os.path.getsize(p), p))[0]
