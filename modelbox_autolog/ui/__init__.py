"""The web UI and its JSON HTTP API (``/api/v1/``): a room above the Client.

Everything here reads and writes through ``modelbox_autolog.Client`` (never SQL, never a
store module): ``app.create_app`` builds the Starlette application, ``serve`` runs it with
uvicorn for ``modelbox ui`` and beside ``modelbox server --http-port``. Needs the ``ui`` extra.
"""

from __future__ import annotations

__all__ = ["create_app"]


def create_app(*args, **kwargs):  # imported lazily: starlette is an optional dependency
    from .app import create_app as build

    return build(*args, **kwargs)
