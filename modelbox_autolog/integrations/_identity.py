"""Remembering things about live objects by identity, without keeping them alive.

Estimators and boosters may define ``__eq__`` (CatBoost models are even unhashable), so a
``WeakKeyDictionary`` cannot be used: entries are keyed by ``id`` and checked with a weak
reference, and dropped when the object is collected.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any


class WeakIdentityMap:
    """object -> value, by identity, without keeping the object alive (estimators may define __eq__)."""

    def __init__(self) -> None:
        self._items: dict[int, tuple[weakref.ref, Any]] = {}
        self._lock = threading.Lock()

    def set(self, obj: Any, value: Any) -> None:
        key = id(obj)

        def forget(_ref: weakref.ref, key: int = key) -> None:
            with self._lock:
                entry = self._items.get(key)
                if entry is not None and entry[0] is _ref:
                    del self._items[key]

        try:
            ref = weakref.ref(obj, forget)
        except TypeError:
            return  # not weak-referenceable: no lineage for it
        with self._lock:
            self._items[key] = (ref, value)

    def get(self, obj: Any) -> Any:
        with self._lock:
            entry = self._items.get(id(obj))
        return entry[1] if entry is not None and entry[0]() is obj else None

    def pop(self, obj: Any) -> Any:
        with self._lock:
            entry = self._items.get(id(obj))
            if entry is None or entry[0]() is not obj:
                return None
            del self._items[id(obj)]
        return entry[1]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
