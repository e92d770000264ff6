"""The Starlette application: API routes, the single-page UI and its static files, the login
form, and the security layer around all of it."""

from __future__ import annotations

import html
import os
from collections.abc import Callable
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..server.access import Authenticator
from ..server.policy import Policy
from .api import Api, json_response
from .security import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_TTL_S,
    Guard,
    SecurityMiddleware,
    allowed_hosts_for,
    same_origin,
)

STATIC = os.path.join(os.path.dirname(__file__), "static")


def create_app(uri: str | None = None, *, token: str | None = None, host: str = "127.0.0.1",
               open_client: Callable[[], Any] | None = None, authenticator: Authenticator | None = None,
               policy: Policy | None = None) -> Starlette:
    """The UI and API over the store at ``uri`` (the Client's default when None). A server passes
    its own ``authenticator`` and ``policy``; otherwise ``token`` is the shared token and the
    per-user tokens are those of the store read."""
    if open_client is None:
        def open_client() -> Any:
            from ..client import Client

            return Client(uri)

    api = Api(open_client, policy)
    if policy is None:
        api.policy = Policy(open_store=lambda: api.client.store)
    if authenticator is None:
        authenticator = Authenticator(shared_token=token, open_store=lambda: api.client.store)
    guard = Guard(authenticator)

    async def index(request: Request) -> Response:
        return FileResponse(os.path.join(STATIC, "index.html"), headers={"cache-control": "no-store"})

    async def login_page(request: Request) -> Response:
        # With "no-referrer" (every other page) a browser posts the form with "Origin: null", which
        # the login's same-origin check must refuse; "same-origin" still tells no other site anything.
        return HTMLResponse(_login_html(request.query_params.get("failed") == "1"), headers={"referrer-policy": "same-origin"})

    async def login(request: Request) -> Response:
        if not same_origin(request):
            return json_response({"error": "forbidden", "message": "cross-site login refused"}, 403)
        form = await request.form()
        if not await anyio.to_thread.run_sync(lambda: guard.required):
            return RedirectResponse("/", 303)
        who = await anyio.to_thread.run_sync(guard.log_in, str(form.get("token", "")))
        if who is None:
            return RedirectResponse("/login?failed=1", 303)
        response = RedirectResponse("/", 303)
        secure = request.url.scheme == "https"
        response.set_cookie(SESSION_COOKIE, guard.new_session(who), max_age=SESSION_TTL_S, httponly=True, samesite="strict",
                            secure=secure)
        return response

    async def logout(request: Request) -> Response:
        guard.end_session(request.cookies.get(SESSION_COOKIE))
        required = await anyio.to_thread.run_sync(lambda: guard.required)
        response = RedirectResponse("/login" if required else "/", 303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    async def session(request: Request) -> Response:
        """What the page needs to know about itself: login state, who it is (its role decides which
        buttons it shows; the API checks every write anyway) and where to send the CSRF value from."""
        who = request.scope.get("principal")
        required = await anyio.to_thread.run_sync(lambda: guard.required)
        return json_response({"login_required": required, "csrf_cookie": CSRF_COOKIE,
                              "user": getattr(who, "name", None), "role": getattr(who, "role", None)})

    routes = [
        *api.routes(),
        Route("/api/v1/session", session, methods=["GET"]),
        Route("/", index, methods=["GET"]),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/favicon.ico", lambda request: Response(status_code=204), methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.api = api
    app.add_middleware(SecurityMiddleware, guard=guard, allowed_hosts=allowed_hosts_for(host))
    return app


def _login_html(failed: bool) -> str:
    message = '<p class="error">That token is not right.</p>' if failed else ""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>modelbox: log in</title>
<link rel="stylesheet" href="/static/app.css"></head><body class="login">
<form method="post" action="/login"><h1>modelbox</h1>{message}
<label>Token <input type="password" name="token" autocomplete="current-password" autofocus></label>
<button type="submit">Log in</button></form><p class="muted">{html.escape("The token is kept in this browser's session only.")}</p>
</body></html>"""
