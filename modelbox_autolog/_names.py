"""The one definition of a valid name, id and file name, checked the same way everywhere.

The run API checks names once, when the user logs them; the stores and the gRPC service
check them again on what they receive (a journal written by an older version, another
client), with the same rules, so every backend accepts and refuses exactly the same things.
Nothing here imports anything else of the package.
"""

from __future__ import annotations

import posixpath
import re

MAX_NAME_CHARS = 4096  # metric/param/tag keys, event/experiment/run/model names
MAX_ID_CHARS = 128
MAX_TEXT_CHARS = 16 << 20  # one JSON field (a param value, env, attrs, metadata)
MAX_COMPONENT_BYTES = 255  # one folder or file name of an artifact path (NAME_MAX on Linux/macOS)
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")


class InvalidName(ValueError):
    """A name that no store accepts (empty, too long, a NUL character, not UTF-8 encodable)."""


class UnsafeName(InvalidName):
    """An artifact or file name that would land outside its folder, or that no filesystem takes."""


def name_problem(value: object) -> str | None:
    """Why ``value`` cannot be a name, or None when it can."""
    if value.__class__ is not str and not isinstance(value, str):
        return f"is a {type(value).__name__}, not a string"
    if not value:
        return "is empty"
    if len(value) > MAX_NAME_CHARS:
        return f"is {len(value):,} characters long (at most {MAX_NAME_CHARS:,})"
    if "\x00" in value:
        return "contains a NUL character"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "is not valid Unicode (a lone surrogate)"
    return None


def check_name(value: object, what: str) -> str:
    problem = name_problem(value)
    if problem is not None:
        raise InvalidName(f"{what} {_show(value)} {problem}")
    return value  # type: ignore[return-value]


def id_problem(value: object) -> str | None:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_CHARS or not ID.fullmatch(value):
        return f"is not a valid id (1-{MAX_ID_CHARS} of A-Z a-z 0-9 . _ : -)"
    return None


def safe_relpath(name: str) -> str:
    """Normalise a user-supplied artifact name into a relative POSIX path, or raise UnsafeName."""
    if not isinstance(name, str) or not name.strip():
        raise UnsafeName(f"artifact name {name!r} is empty")
    problem = name_problem(name)
    if problem is not None:
        raise UnsafeName(f"artifact name {_show(name)} {problem}")
    text = name.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise UnsafeName(f"artifact name {name!r} is absolute; give a relative name")
    norm = posixpath.normpath(text)
    if norm in (".", "") or norm == ".." or norm.startswith("../"):
        raise UnsafeName(f"artifact name {name!r} escapes its folder")
    for part in norm.split("/"):
        size = len(part.encode("utf-8"))
        if size > MAX_COMPONENT_BYTES:
            raise UnsafeName(
                f"artifact name {_show(name)} has a part of {size} bytes; a file or folder name is at most "
                f"{MAX_COMPONENT_BYTES} bytes"
            )
    return norm


def relpath_problem(name: object) -> str | None:
    try:
        safe_relpath(name)  # type: ignore[arg-type]
    except UnsafeName as exc:
        return str(exc)
    return None


def _show(value: object) -> str:
    """A short, printable rendering of a (possibly huge or odd) name for messages."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}...{text[-10:]} ({len(value) if isinstance(value, str) else '?'} chars)"
