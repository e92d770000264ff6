"""``memory://[NAME]``: an in-process store for tests; every opener of a name shares it."""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading

from .sqlite import SQLiteStore

_stores: dict[str, MemoryStore] = {}
_lock = threading.Lock()


class MemoryStore(SQLiteStore):
    scheme = "memory"

    def __init__(self, uri: str) -> None:
        self._tmp = tempfile.mkdtemp(prefix="modelbox-memory-")
        super().__init__(uri, database=":memory:", artifacts_dir=self._tmp)
        self.uri = uri
        atexit.register(shutil.rmtree, self._tmp, True)

    def close(self) -> None:  # shared by name: stays open until reset()
        pass


def open_memory(uri: str) -> MemoryStore:
    name = uri[len("memory://"):].strip("/") or "default"
    with _lock:
        store = _stores.get(name)
        if store is None:
            store = _stores[name] = MemoryStore(f"memory://{name}")
        return store


def reset(name: str | None = None) -> None:
    """Forget one named store (or all); the next opener starts empty."""
    with _lock:
        names = [name] if name else list(_stores)
        for n in names:
            store = _stores.pop(n, None)
            if store is not None:
                SQLiteStore.close(store)
