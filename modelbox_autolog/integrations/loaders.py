"""Model loaders by framework name: what ``Client.load_model`` uses to turn stored files back
into a live object. A registry of import targets beside the ``SPECS`` table, so the read side
finds a loader without importing ``autolog`` (the write side); a loader's module is imported
only when a model of its framework is loaded. Third-party integrations are found through the
same entry-point group as for autolog (``modelbox_autolog.integrations``: their class's
``load_model``), or can register a loader directly with ``register_loader``."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from . import SPECS

Loader = Callable[[str, Any], Any]  # (folder with the model's files, ModelInfo) -> live object

_registered: dict[str, Loader | str] = {name: f"{spec.target}.load_model" for name, spec in SPECS.items()}


def register_loader(framework: str, loader: Loader | str) -> None:
    """Use ``loader`` (a callable, or a ``"module:attr.path"`` target) for models of ``framework``."""
    _registered[framework] = loader


def _resolve(target: str) -> Loader | None:
    module_name, _, attr_path = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None  # we ship no integration for it (yet)
        raise
    for attr in attr_path.split("."):
        obj = getattr(obj, attr, None)
        if obj is None:
            return None
    return obj


def _third_party(framework: str) -> Loader | None:
    from importlib.metadata import entry_points

    for entry in entry_points(group="modelbox_autolog.integrations"):
        if entry.name == framework:
            return getattr(entry.load(), "load_model", None)
    return None


def model_loader(framework: str) -> Loader | None:
    """The loader for ``framework``, or None when nothing can load it."""
    known = _registered.get(framework)
    if callable(known):
        return known
    try:
        if isinstance(known, str):
            loader = _resolve(known)
            if loader is not None:
                return loader
        return _third_party(framework)
    except Exception:  # a broken plugin: the caller falls back to a generic load
        return None
