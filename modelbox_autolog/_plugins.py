"""Third-party integrations declared as entry points, found cheaply and once per ``sys.path``.

``importlib.metadata.entry_points()`` parses every installed distribution's metadata: 5-35 ms
of Python holding the GIL, which a training loop started right after ``autolog()`` would feel.
Almost no environment declares our group, so a first pass only reads ``entry_points.txt``
files (plain file reads, which release the GIL) looking for the group's name; the full
parse runs only when one declares it, or when ``sys.path`` holds an archive we cannot list.
The answer is kept per ``sys.path``: a plugin installed into a running process is found once
``sys.path`` changes, or by the next process.
"""

from __future__ import annotations

import os
import sys
import threading
from importlib.metadata import EntryPoint

GROUP = "modelbox_autolog.integrations"

_lock = threading.Lock()
_cache: dict[tuple[str, ...], list[EntryPoint]] = {}


def integration_entry_points() -> list[EntryPoint]:
    """Entry points of the ``modelbox_autolog.integrations`` group, in ``importlib.metadata`` order."""
    key = tuple(sys.path)
    with _lock:
        found = _cache.get(key)
        if found is None:
            found = _cache[key] = _read() if _may_declare(key) else []
        return list(found)


def _read() -> list[EntryPoint]:
    from importlib.metadata import entry_points

    return list(entry_points(group=GROUP))


def _may_declare(paths: tuple[str, ...]) -> bool:
    """False only when no distribution on ``paths`` can declare the group."""
    for entry in paths:
        folder = entry or os.curdir
        if os.path.isfile(folder):
            return True  # a zip or egg on sys.path: let importlib.metadata look inside
        try:
            listing = os.scandir(folder)
        except OSError:
            continue
        with listing:
            for item in listing:
                if item.name.endswith((".dist-info", ".egg-info")) and _declares(item.path):
                    return True
    return False


def _declares(metadata_dir: str) -> bool:
    try:
        with open(os.path.join(metadata_dir, "entry_points.txt"), encoding="utf-8", errors="replace") as handle:
            return GROUP in handle.read()
    except OSError:
        return False
