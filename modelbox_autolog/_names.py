"""Names users give to stored files: normalised into relative paths that can never escape
their folder. A low floor shared by the stores, the spool and the wire format (no imports)."""

from __future__ import annotations

import posixpath


class UnsafeName(ValueError):
    """An artifact or file name that would land outside its folder."""


def safe_relpath(name: str) -> str:
    """Normalise a user-supplied artifact name into a relative POSIX path, or raise UnsafeName."""
    if not isinstance(name, str) or not name.strip():
        raise UnsafeName(f"artifact name {name!r} is empty")
    if "\x00" in name:
        raise UnsafeName(f"artifact name {name!r} contains a NUL byte")
    text = name.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise UnsafeName(f"artifact name {name!r} is absolute; give a relative name")
    norm = posixpath.normpath(text)
    if norm in (".", "") or norm == ".." or norm.startswith("../"):
        raise UnsafeName(f"artifact name {name!r} escapes its folder")
    return norm
