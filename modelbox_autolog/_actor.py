"""Who is writing: the name every change event records (the change feed is the audit log).

The rule, in one place:
- a ``modelbox server`` or its HTTP API writes as the caller it authenticated: the user a
  per-user token is bound to, ``token`` for the shared ``--token`` of one-token mode, and
  ``anonymous`` for a server that checks no token at all (open, on 127.0.0.1);
- anything else (autolog into a local store, the CLI, ``modelbox sync``, a Client opened on a
  SQLite or PostgreSQL URI) writes as the operating-system user of the process;
- a run that liveness finds dead is set ``killed`` by ``liveness``, whoever's read noticed it.

A store write takes an explicit ``actor`` argument; without one it asks ``current_actor()``,
which is the caller the server is serving on this thread (``acting_as``), else the OS user.
"""

from __future__ import annotations

import contextlib
import contextvars
import getpass
import os
from collections.abc import Iterator

ONE_TOKEN_ACTOR = "token"
ANONYMOUS = "anonymous"
LIVENESS_ACTOR = "liveness"

_acting: contextvars.ContextVar[str | None] = contextvars.ContextVar("modelbox_actor", default=None)
_local: str | None = None


def local_actor() -> str:
    """The operating-system user of this process (``uid1234`` when it has no name)."""
    global _local
    if _local is None:
        try:
            _local = getpass.getuser() or f"uid{os.getuid()}"
        except (KeyError, OSError, ImportError):  # a container user with no passwd entry
            _local = f"uid{os.getuid()}" if hasattr(os, "getuid") else "local"
    return _local


def current_actor(explicit: str | None = None) -> str:
    """``explicit`` when given, else the caller being served on this thread, else the OS user."""
    if explicit:
        return explicit
    return _acting.get() or local_actor()


@contextlib.contextmanager
def acting_as(actor: str | None) -> Iterator[None]:
    """Writes made inside (on this thread or task) record ``actor``."""
    token = _acting.set(actor)
    try:
        yield
    finally:
        _acting.reset(token)
