"""Transports chosen by URI scheme; third parties add schemes via the
``modelbox_autolog.backends`` entry-point group (name = scheme, value = Backend class)."""

from __future__ import annotations

from .base import (
    AuthRefused,
    Backend,
    BackendError,
    BackendUnavailable,
    ImmutableModel,
    NotFound,
    RecordRefused,
    Refused,
    Store,
    StoreUnwritable,
)

_BUILTIN = {
    "sqlite": "modelbox_autolog.backends.sqlite:SQLiteStore",
    "file": "modelbox_autolog.backends.spool:SpoolBackend",
    "memory": "modelbox_autolog.backends.memory:open_memory",
    "grpc": "modelbox_autolog.backends.grpc:GrpcBackend",
    "grpcs": "modelbox_autolog.backends.grpc:GrpcBackend",
    "postgresql": "modelbox_autolog.backends.postgres:PostgresStore",
    "postgres": "modelbox_autolog.backends.postgres:PostgresStore",
}
_EXTRA = {"grpc": "grpc", "grpcs": "grpc", "postgresql": "postgres", "postgres": "postgres"}


def _load(target: str):
    import importlib

    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _factory(scheme: str):
    if scheme in _BUILTIN:
        return _load(_BUILTIN[scheme])
    from importlib.metadata import entry_points

    for entry in entry_points(group="modelbox_autolog.backends"):
        if entry.name == scheme:
            return entry.load()
    known = ", ".join(f"{s}://" for s in _BUILTIN)
    raise BackendError(f"unknown backend scheme {scheme + '://'!r}; known: {known} (or a registered entry point)")


def scheme_of(uri: str) -> str:
    if not isinstance(uri, str) or "://" not in uri:
        raise BackendError(f"{uri!r} is not a backend URI; use sqlite:///PATH, postgresql://USER@HOST:PORT/DB, file:///DIR, grpc://HOST:PORT or memory://")
    return uri.split("://", 1)[0].lower()


def open_backend(uri: str) -> Backend:
    """The write side for ``uri``; raises BackendError with a precise message when it cannot."""
    scheme = scheme_of(uri)
    factory = _factory(scheme)
    try:
        return factory(uri)
    except ImportError as exc:
        raise BackendError(f"the {scheme}:// backend needs an extra: pip install 'modelbox-autolog[{_EXTRA.get(scheme, scheme)}]' ({exc})") from exc


def open_store(uri: str) -> Store:
    """The read side for ``uri``."""
    return open_backend(uri).store()


__all__ = [
    "AuthRefused", "Backend", "BackendError", "BackendUnavailable", "ImmutableModel", "NotFound", "RecordRefused", "Refused", "Store",
    "StoreUnwritable", "open_backend", "open_store", "scheme_of",
]


_canonical: dict[str, str] = {}  # URIs whose spelling does not depend on the working directory


def canonical_uri(uri: str) -> str:
    """One spelling per location: relative sqlite/file paths made absolute (every run asks: cached)."""
    known = _canonical.get(uri)
    if known is not None:
        return known
    import os

    scheme = scheme_of(uri)
    path = None
    if scheme == "sqlite":
        from .uris import sqlite_path

        path = sqlite_path(uri)
        query = uri.split("#", 1)[0].partition("?")[2]  # ?artifacts=... stays part of the location
        result = "sqlite:///" + os.path.abspath(path) + (f"?{query}" if query else "")
    elif scheme == "file":
        from .uris import spool_dir

        path = spool_dir(uri)
        result = "file://" + os.path.abspath(path)
    else:
        result = uri
    if (path is None or os.path.isabs(path)) and len(_canonical) < 256:
        _canonical[uri] = result
    return result


def check_uri(uri: str) -> None:
    """Cheap, early validation (no connection): the scheme is known; local paths are writable."""
    import os

    scheme = scheme_of(uri)
    if scheme in ("sqlite", "file"):
        from .uris import spool_dir, sqlite_path

        if scheme == "sqlite":
            folder = os.path.dirname(os.path.abspath(sqlite_path(uri)))
        else:
            folder = os.path.abspath(spool_dir(uri))
        probe = folder
        while not os.path.exists(probe):
            parent = os.path.dirname(probe)
            if parent == probe:
                break
            probe = parent
        if not os.path.isdir(probe) or not os.access(probe, os.W_OK | os.X_OK):
            raise BackendError(f"backend {uri!r}: cannot write under {probe} (needed for {folder})")
    elif scheme not in _BUILTIN:
        _factory(scheme)  # raises a precise error for unknown schemes
