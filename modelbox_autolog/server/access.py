"""Who is calling: per-user tokens (made, hashed, checked) and the one shared token, for the gRPC
service and the HTTP API alike. What each caller may do is ``policy``'s job.

A token reads ``mbx_<id>_<secret>``: a 12-hex-character public id (shown by ``token list``,
accepted by ``token revoke``) and 32 random bytes. The store keeps only the sha256 of the whole
token: a slow password hash buys nothing for 256 random bits, and sha256 keeps the check to
one indexed lookup and one constant-time comparison per call. A token is shown once, when it is
made, and never logged: error messages name the token's id, never its text.

Who a call is, in order:
1. the shared ``--token`` (one-token mode): user ``token``, role admin;
2. a per-user token in force: its user and role; a revoked one is refused, saying so;
3. no credentials: ``anonymous`` admin while the server has neither a shared token nor any
   per-user token (open, as a local server has always been), refused otherwise. Once a
   per-user token was made the server stays closed, even when every token is revoked.
Revocation is seen by the next call: tokens are looked up per call, never cached.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._actor import ANONYMOUS, LIVENESS_ACTOR, ONE_TOKEN_ACTOR
from ..entities import AccessToken

ROLES = ("reader", "writer", "admin")
RANK = {role: rank for rank, role in enumerate(ROLES)}
TOKEN_PATTERN = re.compile(r"mbx_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
USER_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")
RESERVED_USERS = frozenset({ONE_TOKEN_ACTOR, ANONYMOUS, LIVENESS_ACTOR})
OPEN_RECHECK_S = 1.0  # an open server notices the first per-user token within this time


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: the name recorded as the actor of its changes, and its role."""

    name: str
    role: str  # reader | writer | admin
    token_id: str | None = None  # the per-user token it came with

    def has(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]


class AuthError(Exception):
    """The caller is not authenticated; the message says why (never the token) and what to do."""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_user(user: str) -> str:
    if not USER_PATTERN.fullmatch(user or ""):
        raise ValueError(f"user name {user[:80]!r}: use 1-64 letters, digits and . _ @ + - (starting with a letter or digit)")
    if user in RESERVED_USERS:
        raise ValueError(f"user name {user!r} is reserved: it names the actor of "
                         f"{ {ONE_TOKEN_ACTOR: 'one-token mode', ANONYMOUS: 'open servers'}.get(user, 'liveness checks')}")
    return user


def check_role(role: str) -> str:
    if role not in RANK:
        raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")
    return role


def create_token(store: Any, user: str, role: str, actor: str | None = None) -> tuple[str, AccessToken]:
    """Make a token for ``user`` with ``role``, keep its sha256 in ``store``; (the token, as listed).
    The token itself exists only in the return value."""
    check_user(user)
    check_role(role)
    token_id = secrets.token_hex(6)
    text = f"mbx_{token_id}_{secrets.token_urlsafe(32)}"
    record = AccessToken(token_id, user, role, time.time(), None)
    store.add_token(record, digest(text), actor=actor)
    return text, record


def revoke(store: Any, token_id_or_user: str, actor: str | None = None) -> list[AccessToken]:
    """Revoke a token by its id (or a whole token, whose id is read from it), or every token of a user."""
    match = TOKEN_PATTERN.fullmatch(token_id_or_user)
    if match:
        return store.revoke_tokens(token_id=match.group(1), actor=actor)
    if re.fullmatch(r"[0-9a-f]{12}", token_id_or_user) and store.token_digest(token_id_or_user) is not None:
        return store.revoke_tokens(token_id=token_id_or_user, actor=actor)
    return store.revoke_tokens(user=token_id_or_user, actor=actor)


def bearer(value: str | bytes | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` value (None when absent or another scheme)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    scheme, _, token = value.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class Authenticator:
    """Turns the token a call carries into a Principal, against the shared token and the store's
    per-user tokens. ``open_store`` gives the store when it is opened lazily (the UI's); a store
    without token tables (a gRPC one) means per-user tokens are off."""

    def __init__(self, store: Any = None, shared_token: str | None = None, *,
                 open_store: Callable[[], Any] | None = None) -> None:
        self._store = store
        self._open_store = open_store
        self._shared = hashlib.sha256(shared_token.encode()).digest() if shared_token else None
        self._open_checked = 0.0

    @property
    def store(self) -> Any:
        store = self._store
        if store is None and self._open_store is not None:
            try:
                store = self._open_store()
            except Exception:  # unreachable for now: no per-user tokens can be checked this call
                return None
        return store if store is not None and hasattr(store, "token_digest") else None

    @property
    def shared(self) -> bool:
        return self._shared is not None

    def required(self) -> bool:
        """Whether calls must carry a token (a shared one is set, or a per-user one is in force)."""
        if self._shared is not None:
            return True
        now = time.monotonic()
        if now - self._open_checked < OPEN_RECHECK_S:
            return False
        store = self.store
        if store is not None and store.has_tokens():
            return True
        self._open_checked = now
        return False

    def authenticate(self, token: str | None) -> Principal:
        """The caller presenting ``token`` (None: no credentials), or AuthError saying why not."""
        if token is None:
            if self.required():
                raise AuthError("this server requires a token: send 'authorization: Bearer <token>' (MODELBOX_TOKEN for the "
                                "Python client); an admin makes one with: modelbox server token create USER --role ROLE")
            return Principal(ANONYMOUS, "admin")
        if self._shared is not None and hmac.compare_digest(hashlib.sha256(token.encode()).digest(), self._shared):
            return Principal(ONE_TOKEN_ACTOR, "admin")
        match = TOKEN_PATTERN.fullmatch(token)
        store = self.store if match else None
        found = store.token_digest(match.group(1)) if store is not None else None
        if found is None or not hmac.compare_digest(digest(token), found[1]):
            if self._shared is None and not self.required():
                return Principal(ANONYMOUS, "admin")  # an open server ignores what it cannot check, as before
            raise AuthError("wrong token; send 'authorization: Bearer <token>' with a token this server knows (MODELBOX_TOKEN "
                            "for the Python client): its --token, or one made with modelbox server token create USER --role ROLE")
        record = found[0]
        if record.revoked_at is not None:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.revoked_at))
            raise AuthError(f"token {record.id} of {record.user!r} was revoked at {when}"
                            f"{f' by {record.revoked_by}' if record.revoked_by else ''}; ask an admin for a new one "
                            "(modelbox server token create USER --role ROLE)")
        return Principal(record.user, record.role, record.id)

    def still_valid(self, principal: Principal) -> bool:
        """Whether a principal authenticated earlier (a UI session) may still act: its token is in force."""
        if principal.token_id is None:
            return principal.name != ANONYMOUS or not self.required()
        store = self.store
        found = store.token_digest(principal.token_id) if store is not None else None
        return found is not None and found[0].revoked_at is None

