"""Third-party integrations declared as entry points, found cheaply and once per ``sys.path``.

``importlib.metadata.entry_points()`` parses every installed distribution's metadata: 5-35 ms
of Python holding the GIL, which a training loop started right after ``autolog()`` would feel.
Almost no environment declares our group, so a first pass only reads ``entry_points.txt``
files (plain file reads, which release the GIL) looking for the group's name; the full
parse runs only when one declares it, or when ``sys.path`` holds an archive we cannot list.
The answer is kept per ``sys.path``: a plugin installed into a running process is found once
``sys.path`` changes, or by the next process. "Nothing declares it" is also noted on disk (in
the journal folder, for the last 16 ``sys.path`` layouts: each script's folder starts its own)
with the modification times of the ``sys.path`` folders, which change when a
distribution is installed, upgraded or removed: the next process then skips even the first pass,
which, run beside a fit that starts right after ``autolog()``, would slow that fit down.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # importlib.metadata costs ~50 ms to import: only when entry points are read
    from importlib.metadata import EntryPoint

GROUP = "modelbox_autolog.integrations"

_lock = threading.Lock()
_cache: dict[tuple[str, ...], list[EntryPoint]] = {}


NOTE_NAME = "entry-points.json"


def integration_entry_points(note_dir: str | None = None) -> list[EntryPoint]:
    """Entry points of the ``modelbox_autolog.integrations`` group, in ``importlib.metadata`` order.

    ``note_dir``: where to leave the on-disk note that nothing declares the group.
    """
    key = tuple(sys.path)
    with _lock:
        found = _cache.get(key)
        if found is None:
            stamp = _stamp(key)  # taken before reading: an install meanwhile changes it
            found = _cache[key] = _read() if _may_declare(key) else []
            if not found and stamp is not None and note_dir:
                _write_note(note_dir, stamp)
        return list(found)


def known_to_be_none(note_dir: str | None) -> bool:
    """True when no distribution on ``sys.path`` declares the group, known without reading any
    (this process already looked, or an earlier one did and the folders have not changed)."""
    key = tuple(sys.path)
    with _lock:
        found = _cache.get(key)
    if found is not None:
        return not found
    stamp = _stamp(key)
    if stamp is None or not note_dir or stamp not in _read_note(note_dir):
        return False
    with _lock:
        _cache[key] = []
    return True


def _stamp(paths: tuple[str, ...]) -> list[list[Any]] | None:
    """Each ``sys.path`` folder with its modification time; None if one is an archive."""
    stamp: list[list[Any]] = []
    for entry in paths:
        folder = os.path.abspath(entry or os.curdir)
        try:
            info = os.stat(folder)
        except OSError:
            stamp.append([folder, -1])
            continue
        if not stat.S_ISDIR(info.st_mode):
            return None
        stamp.append([folder, info.st_mtime_ns])
    return stamp


NOTE_STAMPS = 16  # sys.path layouts remembered (each script's folder starts its own sys.path)


def _read_note(note_dir: str) -> list[list[list[Any]]]:
    """The stamps noted on disk; anything not shaped like one (another version's note, a
    damaged file) is ignored, and replaced at the next write."""
    try:
        with open(os.path.join(note_dir, NOTE_NAME), encoding="utf-8") as handle:
            stamps = json.load(handle).get("none_declared_for")
    except (OSError, ValueError, AttributeError):
        return []
    return [old for old in stamps if _is_stamp(old)] if isinstance(stamps, list) else []


def _is_stamp(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str) and isinstance(entry[1], int)
        for entry in value)


def _write_note(note_dir: str, stamp: list[list[Any]]) -> None:
    """Remember this layout first, with the most recent others whose folders are laid out differently."""
    folders = [entry[0] for entry in stamp]
    kept = [old for old in _read_note(note_dir) if [entry[0] for entry in old] != folders]
    try:
        os.makedirs(note_dir, exist_ok=True)
        path = os.path.join(note_dir, NOTE_NAME)
        temporary = f"{path}.{os.getpid()}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump({"group": GROUP, "none_declared_for": [stamp, *kept][:NOTE_STAMPS]}, handle)
        os.replace(temporary, path)
    except OSError:
        pass  # only a shortcut for the next process


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
