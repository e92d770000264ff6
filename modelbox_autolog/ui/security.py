"""Who may use the UI, and what a browser may do with it.

- **Tokens.** The gRPC service's: the shared ``--token`` (acting as admin) and the per-user
  tokens of the store (reader, writer, admin), checked by ``server.access``. When any is
  required, every page and API call needs one: as ``Authorization: Bearer TOKEN`` (scripts, other
  languages), or through the login form, which keeps a random session id in an HttpOnly,
  SameSite=Strict cookie, bound to the token's user and role. A revoked token ends its sessions
  at their next request. The browser never gets the token back; nothing logs it.
- **Roles.** Each request's ``Principal`` (``scope["principal"]``) is checked by the same policy
  as the gRPC service, route by route (``server.policy.HTTP_RULES``), in ``ui.api``.
- **Cross-site writes.** A request that changes something (POST, PATCH, PUT, DELETE) must carry
  ``X-CSRF-Token`` equal to the ``mbx_csrf`` cookie (double submit: another site can neither read
  the cookie nor send the header without a CORS preflight, which is never granted), or a Bearer
  token; an ``Origin`` header, when sent, must be this server's.
- **DNS rebinding.** Bound to a loopback address, only loopback ``Host`` names are answered.
- **Headers.** A strict Content-Security-Policy (no inline script, nothing from elsewhere),
  ``nosniff``, no framing, no referrer.
"""

from __future__ import annotations

import hmac
import secrets
import time
from urllib.parse import urlsplit

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..server.access import Authenticator, AuthError, Principal, bearer

SESSION_COOKIE = "mbx_session"
CSRF_COOKIE = "mbx_csrf"
CSRF_HEADER = "x-csrf-token"
SESSION_TTL_S = 7 * 24 * 3600
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
PUBLIC_PATHS = ("/login", "/static/app.css", "/favicon.ico")

PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
            "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
# Stored files: never scripts, never in the UI's origin (an opaque, sandboxed one), never framed.
FILE_CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox; frame-ancestors 'none'"


class Guard:
    """The token checks (``server.access``) and the login sessions of one app."""

    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator
        self._sessions: dict[str, tuple[Principal, float]] = {}  # session id -> (who, expiry)

    @property
    def required(self) -> bool:
        return self.authenticator.required()

    def log_in(self, token: str) -> Principal | None:
        """The principal of a token typed into the login form (None: refused)."""
        try:
            return self.authenticator.authenticate(token or None) if token else None
        except AuthError:
            return None

    def new_session(self, principal: Principal) -> str:
        now = time.time()
        self._sessions = {k: v for k, v in self._sessions.items() if v[1] > now}
        session = secrets.token_urlsafe(32)
        self._sessions[session] = (principal, now + SESSION_TTL_S)
        return session

    def end_session(self, session: str | None) -> None:
        if session:
            self._sessions.pop(session, None)

    def principal(self, request: Request) -> tuple[Principal | None, bool, str | None]:
        """(who, by bearer token?, why refused) for a request; who is None when it must log in.
        Runs on a worker thread: it may look a token up in the store."""
        token = bearer(request.headers.get("authorization"))
        if token is not None:
            try:
                return self.authenticator.authenticate(token), True, None
            except AuthError as exc:
                return None, True, str(exc)
        session = request.cookies.get(SESSION_COOKIE)
        found = self._sessions.get(session) if session else None
        if found is not None and found[1] > time.time():
            if self.authenticator.still_valid(found[0]):
                return found[0], False, None
            self.end_session(session)  # its token was revoked
        if not self.required:
            return self.authenticator.authenticate(None), False, None
        return None, False, None


def same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    parts = urlsplit(origin)
    return parts.netloc == request.headers.get("host", "")


class SecurityMiddleware:
    """Host check, authentication, CSRF on writes and security headers, around the whole app."""

    def __init__(self, app: ASGIApp, guard: Guard, allowed_hosts: tuple[str, ...] | None) -> None:
        self.app = app
        self.guard = guard
        self.allowed_hosts = allowed_hosts  # None: any

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        response = await anyio.to_thread.run_sync(self.refuse, request)
        if response is not None:
            await response(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                names = {name.lower() for name, _ in headers}
                extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                         (b"x-frame-options", b"DENY")]
                if b"content-security-policy" not in names:
                    extra.append((b"content-security-policy", PAGE_CSP.encode()))
                if CSRF_COOKIE not in request.cookies and not scope["path"].startswith("/api/"):
                    token = secrets.token_urlsafe(24)
                    extra.append((b"set-cookie", f"{CSRF_COOKIE}={token}; Path=/; SameSite=Strict".encode()))
                headers.extend(h for h in extra if h[0] not in names)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def refuse(self, request: Request) -> Response | None:
        if self.allowed_hosts is not None:
            host = request.url.hostname or ""
            if host not in self.allowed_hosts:
                return JSONResponse({"error": "bad host", "message": f"this server does not answer for host {host!r}"}, 421)
        path = request.url.path
        try:
            who, by_token, refusal = self.guard.principal(request)
        except Exception as exc:  # the store holding the tokens cannot answer
            return JSONResponse({"error": "store unreachable", "message": f"cannot check the token now: {exc}"}, 503)
        if who is None and path not in PUBLIC_PATHS:
            if path.startswith("/api/") or refusal is not None:
                message = refusal or "log in, or send Authorization: Bearer TOKEN"
                return JSONResponse({"error": "unauthorized", "message": message}, 401, headers={"www-authenticate": "Bearer"})
            return RedirectResponse("/login", 303)
        request.scope["principal"] = who
        if request.method in WRITE_METHODS and path not in ("/login", "/logout"):  # logging out is harmless
            if not same_origin(request):
                return JSONResponse({"error": "forbidden", "message": "cross-site request refused"}, 403)
            if not by_token:
                cookie = request.cookies.get(CSRF_COOKIE, "")
                header = request.headers.get(CSRF_HEADER, "")
                if not cookie or not hmac.compare_digest(cookie.encode(), header.encode()):
                    return JSONResponse({"error": "forbidden", "message": "missing or wrong X-CSRF-Token header "
                                         "(send the mbx_csrf cookie's value, or Authorization: Bearer TOKEN)"}, 403)
        return None


def allowed_hosts_for(bind_host: str) -> tuple[str, ...] | None:
    """Loopback servers answer only loopback names (DNS rebinding); others any name."""
    if bind_host in LOOPBACK or bind_host.startswith("127."):
        return (*LOOPBACK, bind_host)
    return None
