"""``modelbox server token create|list|revoke``: per-user tokens, managed on the store itself.

Whoever can open the store (its file, its database password) manages its tokens; no RPC does.
A token is printed once, alone on stdout (``TOKEN=$(modelbox server token create ...)``), and
only its sha256 is stored. Servers see a new or revoked token at the next call.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from typing import Any

from .access import ROLES, TOKEN_PATTERN


def add_arguments(parser: argparse.ArgumentParser, default_store: str) -> None:
    """``token`` and its sub-commands under ``parser`` (the ``modelbox server`` parser)."""
    sub = parser.add_subparsers(dest="server_command", metavar="token")
    token = sub.add_parser("token", help="manage per-user tokens (reader, writer, admin) kept hashed in the store",
                           description="Manage per-user tokens (reader, writer, admin), kept hashed in the store.")
    actions = token.add_subparsers(dest="token_action", required=True)
    store_help = f"the store the server serves: sqlite:///PATH or postgresql://... (default: as the server, {default_store})"

    create = actions.add_parser("create", help="make a token for a user and print it (once)",
                                description="Make a token for USER with a role; print it once, on stdout.")
    create.add_argument("user", help="user name, recorded as the actor of everything done with the token")
    create.add_argument("--role", required=True, choices=ROLES,
                        help="reader: read everything; writer: create runs and models, change only its own; admin: everything")
    create.add_argument("--store", help=store_help)

    listing = actions.add_parser("list", help="list tokens (ids, users, roles; never the tokens)",
                                 description="List tokens: ids, users, roles, when made and revoked (never the tokens).")
    listing.add_argument("--store", help=store_help)
    listing.add_argument("--json", action="store_true")

    revoke = actions.add_parser("revoke", help="revoke a token by id, or every token of a user",
                                description="Revoke a token by its id (or the token itself), or every token of a user.")
    revoke.add_argument("which", metavar="TOKEN_ID|USER")
    revoke.add_argument("--store", help=store_help)


def run(args: argparse.Namespace, store_uri: str) -> int:
    from ..backends.base import BackendError

    try:
        store = open_token_store(store_uri)
    except BackendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return {"create": _create, "list": _list, "revoke": _revoke}[args.token_action](args, store)
    except (BackendError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()


def open_token_store(uri: str) -> Any:
    """The metadata store alone (no artifact location needed to manage tokens)."""
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme == "sqlite":
        from ..backends.sqlite import SQLiteStore

        return SQLiteStore(uri)
    if scheme in ("postgresql", "postgres"):
        from ..backends.postgres import PostgresStore

        return PostgresStore(uri, pool_size=1)
    raise ValueError(f"--store {uri!r}: tokens live in a sqlite:///PATH or postgresql://... store")


def _when(ts: float | None) -> str:
    return "" if ts is None else _dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _create(args: argparse.Namespace, store: Any) -> int:
    from .access import create_token

    text, record = create_token(store, args.user, args.role)
    print(f"token {record.id} for {record.user!r} ({record.role}) in {store.uri}; it is shown only now, keep it "
          "(clients: MODELBOX_TOKEN=...):", file=sys.stderr)
    print(text, flush=True)
    return 0


def _list(args: argparse.Namespace, store: Any) -> int:
    tokens = store.tokens()
    if args.json:
        print(json.dumps([t._asdict() for t in tokens], indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"tokens of {store.uri} ({sum(t.revoked_at is None for t in tokens)} in force)")
    for column in ("id", "user", "role", "created", "by", "revoked"):
        table.add_column(column)
    for t in tokens:
        revoked = f"{_when(t.revoked_at)} by {t.revoked_by}" if t.revoked_at is not None else ""
        table.add_row(t.id, t.user, t.role, _when(t.created_at), t.created_by or "", revoked)
    Console().print(table)
    return 0


def _revoke(args: argparse.Namespace, store: Any) -> int:
    from .access import revoke

    revoked = revoke(store, args.which)
    if not revoked:
        which = "that token" if TOKEN_PATTERN.fullmatch(args.which) else f"id or user {args.which[:64]!r}"
        print(f"error: no token in force with {which} (modelbox server token list shows them)", file=sys.stderr)
        return 2
    for t in revoked:
        print(f"revoked token {t.id} of {t.user!r} ({t.role})")
    return 0
