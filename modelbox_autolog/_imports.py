"""Post-import hooks: run a callback when a module is imported (at once if it already is).

A ``sys.meta_path`` finder wraps the loader of watched modules only, so ``exec_module``
runs as usual and our callback runs right after it. ``builtins.__import__`` is never
touched, and importing this module costs nothing (no wrapt, no asyncio), which keeps
``autolog()`` fast in a process that has imported no framework yet.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

_callbacks: dict[str, list[Callable[[Any], None]]] = {}
_lock = threading.RLock()
_searching = threading.local()


class _HookedLoader:
    """Delegates to the real loader, then fires the module's callbacks."""

    def __init__(self, loader: Any, name: str) -> None:
        self._loader = loader
        self._name = name

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        fire(self._name, module)

    def __getattr__(self, name: str) -> Any:  # is_package, get_resource_reader, get_code...
        return getattr(self._loader, name)


class _Finder:
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in _callbacks or getattr(_searching, "name", None) == fullname:
            return None
        _searching.name = fullname
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
        finally:
            _searching.name = None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _HookedLoader(spec.loader, fullname)
        return spec


_finder = _Finder()


def fire(name: str, module: Any) -> None:
    with _lock:
        callbacks = list(_callbacks.get(name, ()))
    for callback in callbacks:
        callback(module)  # callbacks guard themselves: an import must never fail because of us


def register(name: str, callback: Callable[[Any], None]) -> None:
    """Call ``callback(module)`` after every import of ``name``; now if it is imported already."""
    with _lock:
        _callbacks.setdefault(name, []).append(callback)
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)
    module = sys.modules.get(name)
    if module is not None:
        callback(module)
