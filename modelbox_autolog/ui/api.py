"""The JSON HTTP API under ``/api/v1/``: everything the Client reads, the registry writes it
makes, run search, downsampled series, file downloads streamed in chunks, and the change feed
as server-sent events. Each route is declared once with what its OpenAPI entry needs, so the
document at ``/api/v1/openapi.json`` is generated from the same table the router uses.

Errors are JSON ``{"error", "message", ...}``: 400 for bad input (an invalid ``where`` also
gives its ``position``), 401/403 from the security layer, 404 naming the unknown id, 409 for a
final model, 503 when the store cannot be reached.
"""

from __future__ import annotations

import functools
import mimetypes
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import anyio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from .. import __version__
from .._actor import ANONYMOUS, acting_as
from ..backends import BackendError, BackendUnavailable, NotFound, Refused
from ..backends.uris import redact_uri
from ..search import SearchError
from ..server.access import Principal
from ..server.policy import Denied, Policy, http_rule
from . import encode
from .live import ChangeHub, event_stream
from .security import FILE_CSP

PREFIX = "/api/v1"
MAX_PAGE = 1000
MAX_COLUMNS = 50
MAX_COMPARE = 50
CONSOLE_TAIL = 256 << 10
# Types a browser may show inline from the API: pictures (an <img> never runs script; SVG is
# additionally sandboxed by FILE_CSP) and text shown as plain text. Anything else is a download.
INLINE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml", "text/plain", "application/json",
                "text/csv"}
TEXTUAL = {"text/plain", "application/json", "text/csv", "text/markdown", "application/x-yaml", "text/x-python"}


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.error, self.extra = status, error, extra


def json_response(document: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(encode.dumps(document), status, headers=headers, media_type="application/json")


def _error_response(exc: Exception) -> Response:
    if isinstance(exc, ApiError):
        return json_response({"error": exc.error, "message": str(exc), **exc.extra}, exc.status)
    if isinstance(exc, SearchError):
        return json_response({"error": "invalid expression", "message": exc.message, "position": exc.position,
                              "expression": exc.expression}, 400)
    if isinstance(exc, NotFound):
        return json_response({"error": "not found", "message": str(exc)}, 404)
    if isinstance(exc, Refused):  # a final model, an aliased version, a bad alias: the reason is the message
        return json_response({"error": "conflict", "message": str(exc)}, 409)
    if isinstance(exc, (BackendUnavailable, BackendError, OSError)):
        return json_response({"error": "store unreachable", "message": str(exc)}, 503)
    raise exc


# ---------------------------------------------------------------------- route table + OpenAPI
@dataclass
class Param:
    name: str
    where: str = "query"  # query | path
    kind: str = "string"  # string | integer | boolean
    description: str = ""
    required: bool = False


@dataclass
class Endpoint:
    method: str
    path: str
    handler: Callable
    summary: str
    params: list[Param] = field(default_factory=list)
    body: dict[str, Any] | None = None  # JSON schema of the request body
    returns: str = "application/json"
    tag: str = ""


ENDPOINTS: list[Endpoint] = []


def endpoint(method: str, path: str, summary: str, *params: Param, body: dict | None = None, returns: str = "application/json",
             tag: str = "") -> Callable:
    def register(fn: Callable) -> Callable:
        path_params = [Param(name, "path", required=True) for name in re.findall(r"{(\w+)(?::path)?}", path)]
        ENDPOINTS.append(Endpoint(method, path, fn, summary, [*path_params, *params], body, returns, tag or path.split("/")[1]))
        return fn

    return register


def openapi() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for e in ENDPOINTS:
        operation: dict[str, Any] = {
            "summary": e.summary, "tags": [e.tag], "operationId": e.handler.__name__,
            "parameters": [{"name": p.name, "in": p.where, "required": p.required or p.where == "path",
                            "description": p.description, "schema": {"type": p.kind}} for p in e.params],
            "responses": {
                "200": {"description": "OK", "content": {e.returns: {}}},
                "400": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"},
                "503": {"$ref": "#/components/responses/Error"},
            },
        }
        if e.body is not None:
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": e.body}}}
        if e.method != "GET":  # writes: CSRF/origin checks, refusals
            operation["responses"]["403"] = {"$ref": "#/components/responses/Error"}
            operation["responses"]["409"] = {"$ref": "#/components/responses/Error"}
        paths.setdefault(PREFIX + re.sub(r"{(\w+):path}", r"{\1}", e.path), {})[e.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "modelbox HTTP API", "version": __version__,
                 "description": "Runs, metrics, events, artifacts, models and changes of a modelbox store. Non-finite "
                                "floats are the strings NaN, Infinity, -Infinity. Writes need X-CSRF-Token (the mbx_csrf "
                                "cookie's value) or Authorization: Bearer TOKEN."},
        "paths": paths,
        "components": {
            "responses": {"Error": {"description": "error", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"error": {"type": "string"}, "message": {"type": "string"},
                                                 "position": {"type": "integer"}}}}}}},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
    }


# ---------------------------------------------------------------------- helpers
def _int(request: Request, name: str, default: int, low: int = 0, high: int | None = None) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, "bad request", f"{name} must be an integer, not {text[:40]!r}", parameter=name) from None
    if value < low or (high is not None and value > high):
        raise ApiError(400, "bad request", f"{name} must be between {low} and {high}", parameter=name)
    return value


def _list(request: Request, name: str, limit: int = MAX_COLUMNS) -> list[str]:
    values = [v for raw in request.query_params.getlist(name) for v in raw.split(",") if v.strip()]
    if len(values) > limit:
        raise ApiError(400, "bad request", f"at most {limit} values for {name}", parameter=name)
    return [v.strip() for v in values]


ARCHIVED = {"": False, "hide": False, "only": True, "all": None}


def _archived(request: Request) -> bool | None:
    text = request.query_params.get("archived") or ""
    if text not in ARCHIVED:
        raise ApiError(400, "bad request", "archived must be only, all or hide", parameter="archived")
    return ARCHIVED[text]


def _edits(body: dict[str, Any], name: str) -> dict[str, str | None] | None:
    """A {key: text or null} object of a PATCH body (null removes the key)."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, dict) or any(v is not None and not isinstance(v, str) for v in value.values()):
        raise ApiError(400, "bad request", f"{name} must be an object of strings (null removes a key)")
    return value


def _delete_document(report: Any) -> dict[str, Any]:
    return {"deleted": report._asdict()}


def _disposition(name: str, inline: bool) -> str:
    base = name.rsplit("/", 1)[-1] or "file"
    ascii_name = re.sub(r"[^A-Za-z0-9._-]", "_", base)[:120] or "file"
    return f"{'inline' if inline else 'attachment'}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(base, safe='')}"


def file_response(name: str, size: int | None, chunks: Iterable[bytes], want_download: bool) -> Response:
    """A stored file with a safe type: pictures and plain text inline, everything else downloaded;
    never HTML in the UI's origin (FILE_CSP sandboxes even what is shown)."""
    guessed = (mimetypes.guess_type(name)[0] or "application/octet-stream").lower()
    if guessed in TEXTUAL or guessed.startswith("text/"):
        media = "text/plain; charset=utf-8" if guessed not in ("application/json", "text/csv") else guessed
        inline = guessed in INLINE_TYPES or guessed.startswith("text/") and guessed != "text/html"
        if guessed == "text/html":
            media, inline = "application/octet-stream", False
    elif guessed in INLINE_TYPES:
        media, inline = guessed, True
    else:
        media, inline = "application/octet-stream", False
    if want_download:
        inline = False
    headers = {"content-disposition": _disposition(name, inline), "content-security-policy": FILE_CSP,
               "x-content-type-options": "nosniff", "cache-control": "private, max-age=0"}
    if size is not None:
        headers["content-length"] = str(size)
    return StreamingResponse(_chunks_in_thread(chunks), headers=headers, media_type=media)


def _first_bytes(chunks: Iterable[bytes], limit: int) -> Iterator[bytes]:
    left = limit
    for chunk in chunks:
        if left <= 0:
            break
        yield chunk[:left]
        left -= len(chunk)
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


async def _chunks_in_thread(chunks: Iterable[bytes]):
    iterator: Iterator[bytes] = iter(chunks)
    done = object()
    while True:
        chunk = await anyio.to_thread.run_sync(next, iterator, done)
        if chunk is done:
            return
        yield chunk


# ---------------------------------------------------------------------- the API
class Api:
    """Route handlers over one Client (opened lazily; an unreachable store answers 503 and is retried)."""

    def __init__(self, open_client: Callable[[], Any], policy: Policy | None = None) -> None:
        self._open_client = open_client
        self._client = None
        self.policy = policy  # what each caller may do (server.policy), route by route
        self.hub = ChangeHub(lambda since, limit: self.client.changes(since, limit), lambda: self.client.last_change_seq())

    @property
    def client(self):
        if self._client is None:
            self._client = self._open_client()
        return self._client

    def routes(self) -> list[Route]:
        routes = []
        for e in ENDPOINTS:
            routes.append(Route(PREFIX + e.path, self._wrap(e.handler, e.method), methods=[e.method]))
        return routes

    @staticmethod
    def _caller(request: Request) -> Principal:
        return request.scope.get("principal") or Principal(ANONYMOUS, "admin")  # no security layer: a bare app in tests

    def _refusal(self, fn: Callable, method: str, request: Request) -> Response | None:
        """403 unless the caller's role allows this route (the server's policy, one rule per route)."""
        if self.policy is None:
            return None
        who = self._caller(request)
        rule = http_rule(self.policy, method, fn.__name__)
        try:
            self.policy.authorize(who, rule, request.path_params.get(rule.field) if rule.field else None)
        except Denied as exc:
            return json_response({"error": "forbidden", "message": str(exc), "role": who.role}, 403)
        return None

    def _as_caller(self, fn: Callable, method: str, request: Request) -> Response:
        """``fn`` if the policy allows it, acting as the caller (the actor of what it changes)."""
        refused = self._refusal(fn, method, request)
        if refused is not None:
            return refused
        with acting_as(self._caller(request).name):
            return fn(self, request)

    def _wrap(self, fn: Callable, method: str) -> Callable:
        @functools.wraps(fn)
        async def handler(request: Request) -> Response:
            started = time.perf_counter()
            try:
                if fn.__name__ in ASYNC_HANDLERS:
                    refused = await anyio.to_thread.run_sync(self._refusal, fn, method, request)
                    return refused if refused is not None else await fn(self, request)
                response = await anyio.to_thread.run_sync(self._as_caller, fn, method, request)
                response.headers["server-timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
                return response
            except Exception as exc:
                response = _error_response(exc)
                if isinstance(exc, NotFound):  # name the id that was not found
                    ident = next(iter(request.path_params.values()), None)
                    response = json_response({"error": "not found", "message": str(exc), "id": ident}, 404)
                return response

        return handler

    # ------------------------------------------------------------------ store
    @endpoint("GET", "/health", "The store this server reads, and whether it answers")
    def health(self, request: Request) -> Response:
        uri = None
        try:
            uri = redact_uri(self.client.uri)  # a database password never leaves the server
            self.client.experiments()
            return json_response({"ok": True, "store": uri, "version": __version__})
        except Exception as exc:
            self._client = None  # reopen next time
            return json_response({"ok": False, "store": uri, "message": str(exc)}, 503)

    @endpoint("GET", "/openapi.json", "This document")
    def openapi_document(self, request: Request) -> Response:
        return json_response(openapi())

    @endpoint("GET", "/experiments", "Experiments, oldest first",
              Param("archived", description="only | all (default: archived ones hidden)"))
    def experiments(self, request: Request) -> Response:
        experiments = self.client.experiments(archived=_archived(request))
        return json_response({"experiments": [encode.experiment(e) for e in experiments]})

    @endpoint("POST", "/experiments/{experiment}/archive", "Hide an experiment and its runs from listings (restorable)",
              body={"type": "object"})
    def archive_experiment(self, request: Request) -> Response:
        return json_response(encode.experiment(self.client.archive_experiment(request.path_params["experiment"])))

    @endpoint("POST", "/experiments/{experiment}/restore", "Bring back an archived experiment", body={"type": "object"})
    def restore_experiment(self, request: Request) -> Response:
        return json_response(encode.experiment(self.client.restore_experiment(request.path_params["experiment"])))

    @endpoint("DELETE", "/experiments/{experiment}", "Delete an experiment with all its runs, for good (refused, 409, "
              "when a run has a final or aliased model)")
    def delete_experiment(self, request: Request) -> Response:
        return json_response(_delete_document(self.client.delete_experiment(request.path_params["experiment"])))

    @endpoint("GET", "/experiments/summary", "Per experiment id: its runs (top-level), how many are running, "
              "failed or killed, and its latest run (id, name, status, start)")
    def experiment_summaries(self, request: Request) -> Response:
        client = self.client
        summaries = {}
        for e in client.experiments():
            latest = client.runs(experiment=e.id, limit=1)  # newest first
            summaries[e.id] = {
                "runs": client.count_runs(experiment=e.id, where="parent is null"),
                "running": client.count_runs(experiment=e.id, status="running"),
                "failed": client.count_runs(experiment=e.id, where="status in ('failed', 'killed')"),
                "latest": encode.latest_run(latest[0]) if latest else None,
            }
        return json_response({"summaries": summaries})

    @endpoint("GET", "/keys", "Param, metric and tag keys of recent runs (column choices)", Param("experiment"))
    def keys(self, request: Request) -> Response:
        return json_response(self.client.search_keys(request.query_params.get("experiment") or None))

    # ------------------------------------------------------------------ runs
    @endpoint("GET", "/runs", "Search runs: filter, sort, page; with picked param and metric columns",
              Param("experiment", description="name or id"), Param("status"),
              Param("where", description="e.g. params.lr > 0.01 and metrics.acc >= 0.9"),
              Param("order_by", description="e.g. metrics.acc desc"), Param("limit", kind="integer"),
              Param("offset", kind="integer"), Param("params", description="comma-separated keys (default: all)"),
              Param("metrics", description="comma-separated keys (default: all)"),
              Param("top_level", kind="boolean", description="only runs without a parent"),
              Param("count", kind="boolean", description="also the total number of matches"),
              Param("archived", description="only | all (default: archived runs hidden)"))
    def runs(self, request: Request) -> Response:
        q = request.query_params
        where = q.get("where") or None
        if q.get("top_level") in ("1", "true"):
            where = f"parent is null and ({where})" if where else "parent is null"
        limit = _int(request, "limit", 50, 1, MAX_PAGE)
        offset = _int(request, "offset", 0)
        archived = _archived(request)
        try:
            runs = self.client.runs(experiment=q.get("experiment") or None, status=q.get("status") or None, limit=limit,
                                    where=where, order_by=q.get("order_by") or None, offset=offset, archived=archived)
        except SearchError as exc:
            if where != (q.get("where") or None) and exc.expression == where:  # point into what the user typed
                shift = len("parent is null and (")
                exc = SearchError(exc.message, q.get("where") or "", exc.position - shift)
            raise exc from None
        ids = [r.id for r in runs]
        metric_keys = _list(request, "metrics") if "metrics" in q else None
        params = _list(request, "params") if "params" in q else None
        summaries = self.client.metric_summaries(ids, metric_keys)
        children = self.client.child_counts(ids)
        document = {"runs": [encode.run(r, summaries=summaries.get(r.id, {}), params=params, children=children.get(r.id, 0))
                             for r in runs], "limit": limit, "offset": offset}
        if q.get("count") in ("1", "true"):
            document["total"] = self.client.count_runs(experiment=q.get("experiment") or None, status=q.get("status") or None,
                                                       where=where, archived=archived)
        return json_response(document)

    @endpoint("GET", "/runs/count", "How many runs match (the same filters as /runs)", Param("experiment"), Param("status"),
              Param("where"), Param("top_level", kind="boolean"), Param("archived"))
    def runs_count(self, request: Request) -> Response:
        q = request.query_params
        where = q.get("where") or None
        if q.get("top_level") in ("1", "true"):
            where = f"parent is null and ({where})" if where else "parent is null"
        total = self.client.count_runs(experiment=q.get("experiment") or None, status=q.get("status") or None, where=where,
                                       archived=_archived(request))
        return json_response({"total": total})

    @endpoint("PATCH", "/runs/{run_id}", "Rename a run, set or remove (null) tags, set its note (\"\" clears it)",
              body={"type": "object", "properties": {"name": {"type": "string"}, "note": {"type": "string"},
                                                     "tags": {"type": "object"}}})
    def update_run(self, request: Request) -> Response:
        body = _json_body(request)
        name, note = body.get("name"), body.get("note")
        if name is not None and not isinstance(name, str) or note is not None and not isinstance(note, str):
            raise ApiError(400, "bad request", "name and note must be strings")
        tags = _edits(body, "tags")
        r = self.client.update_run(request.path_params["run_id"], name=name, tags=tags, note=note)
        return json_response(encode.run(r, children=self.client.child_counts([r.id]).get(r.id, 0)))

    @endpoint("POST", "/runs/{run_id}/archive", "Hide a run and its child runs from listings (restorable)",
              body={"type": "object"})
    def archive_run(self, request: Request) -> Response:
        return json_response(encode.run(self.client.archive_run(request.path_params["run_id"])))

    @endpoint("POST", "/runs/{run_id}/restore", "Bring back an archived run", body={"type": "object"})
    def restore_run(self, request: Request) -> Response:
        return json_response(encode.run(self.client.restore_run(request.path_params["run_id"])))

    @endpoint("DELETE", "/runs/{run_id}", "Delete a run, its child runs and their files, for good (refused, 409, when a "
              "model of theirs is final or aliased)")
    def delete_run(self, request: Request) -> Response:
        return json_response(_delete_document(self.client.delete_run(request.path_params["run_id"])))

    @endpoint("GET", "/runs/{run_id}", "One run: params, tags, environment, metric summaries, failure")
    def run(self, request: Request) -> Response:
        r = self.client.run(request.path_params["run_id"])
        summaries = self.client.metric_summaries([r.id]).get(r.id, {})
        document = encode.run(r, summaries=summaries, children=self.client.child_counts([r.id]).get(r.id, 0), env=True)
        return json_response(document)

    @endpoint("GET", "/runs/{run_id}/metrics/{key:path}", "A metric series, downsampled in the store",
              Param("max_points", kind="integer", description="at most this many points (default 2000, max 100000)"))
    def metric(self, request: Request) -> Response:
        max_points = _int(request, "max_points", 2000, 10, 100_000)
        sample = self.client.metric_sample(request.path_params["run_id"], request.path_params["key"], max_points)
        return json_response(encode.sample(sample))

    @endpoint("GET", "/runs/{run_id}/events", "Events (epochs, data loading, checkpoints...)", Param("name"))
    def events(self, request: Request) -> Response:
        events = self.client.run(request.path_params["run_id"]).events(request.query_params.get("name") or None)
        return json_response({"events": [encode.event(e) for e in events]})

    @endpoint("GET", "/runs/{run_id}/artifacts", "Artifacts of a run")
    def artifacts(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        r = self.client.run(run_id)
        return json_response({"artifacts": [encode.artifact(a, r.id) for a in r.artifacts()]})

    @endpoint("GET", "/runs/{run_id}/artifacts/{artifact_id}/content", "An artifact's bytes (safe type, streamed)",
              Param("download", kind="boolean"), Param("head", kind="integer", description="only the first N bytes (previews)"),
              returns="application/octet-stream")
    def artifact_content(self, request: Request) -> Response:
        artifact, chunks = self.client.open_artifact(request.path_params["run_id"], request.path_params["artifact_id"])
        head = _int(request, "head", 0, 0)
        size = artifact.bytes
        if head and (size is None or head < size):
            chunks, size = _first_bytes(chunks, head), head if size is not None else None
        return file_response(artifact.name, size, chunks, request.query_params.get("download") in ("1", "true"))

    @endpoint("GET", "/runs/{run_id}/console", "The end of the run's console output (text)")
    def console(self, request: Request) -> Response:
        r = self.client.run(request.path_params["run_id"])
        consoles = [a for a in r.artifacts() if a.kind == "console" and a.bytes is not None]
        if not consoles:
            return json_response({"text": None, "truncated": False})
        artifact, chunks = self.client.open_artifact(r.id, consoles[-1].id)
        tail = bytearray()
        for chunk in chunks:
            tail += chunk
            if len(tail) > 2 * CONSOLE_TAIL:
                del tail[:-CONSOLE_TAIL]
        truncated = (artifact.bytes or 0) > CONSOLE_TAIL
        return json_response({"text": bytes(tail[-CONSOLE_TAIL:]).decode("utf-8", "replace"), "truncated": truncated,
                              "bytes": artifact.bytes, "content_url": encode.artifact(artifact, r.id)["content_url"]})

    @endpoint("GET", "/runs/{run_id}/inputs", "What the run consumed (datasets, models)")
    def inputs(self, request: Request) -> Response:
        return json_response({"inputs": [encode.input_(i) for i in self.client.run(request.path_params["run_id"]).inputs()]})

    @endpoint("GET", "/runs/{run_id}/models", "Models the run logged")
    def run_models(self, request: Request) -> Response:
        return json_response({"models": [encode.model(m) for m in self.client.run(request.path_params["run_id"]).models()]})

    @endpoint("GET", "/runs/{run_id}/lineage", "Datasets -> run -> models -> runs that loaded them")
    def lineage(self, request: Request) -> Response:
        r = self.client.run(request.path_params["run_id"])
        models = []
        for m in r.models():
            consumers = [{"id": c.id, "name": c.name, "status": c.status} for c in self.client.model_consumers(m.id)]
            models.append({**encode.model(m), "consumers": consumers})
        parent = None
        if r.parent_run_id:
            try:
                p = self.client.run(r.parent_run_id)
                parent = {"id": p.id, "name": p.name, "status": p.status}
            except NotFound:
                parent = {"id": r.parent_run_id, "name": None, "status": "unknown"}
        return json_response({"inputs": [encode.input_(i) for i in r.inputs()], "models": models, "parent": parent})

    # ------------------------------------------------------------------ models
    @endpoint("GET", "/models", "Models, newest first", Param("name"),
              Param("label", description="KEY=VALUE, or KEY for models that have the label; repeatable"))
    def models(self, request: Request) -> Response:
        labels: dict[str, str | None] = {}
        for item in request.query_params.getlist("label"):
            key, sep, value = item.partition("=")
            if not key:
                raise ApiError(400, "bad request", f"label {item!r} is not KEY=VALUE or KEY", parameter="label")
            labels[key] = value if sep else None
        models = self.client.models(name=request.query_params.get("name") or None, labels=labels or None)
        return json_response({"models": [encode.model(m) for m in models]})

    @endpoint("PATCH", "/models/{model_id}", "Merge metadata and labels into a draft model (a label set to null is removed)",
              body={"type": "object", "properties": {"metadata": {"type": "object"}, "labels": {"type": "object"}}})
    def update_model(self, request: Request) -> Response:
        body = _json_body(request)
        metadata = body.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise ApiError(400, "bad request", "metadata and labels must be JSON objects")
        labels = _edits(body, "labels")
        m = self.client.update_model(request.path_params["model_id"], metadata=metadata or None, labels=labels or None)
        return json_response(encode.model(m))

    @endpoint("DELETE", "/models/{model_id}", "Delete a model version and its files (refused, 409, when final or aliased)")
    def delete_model(self, request: Request) -> Response:
        return json_response(_delete_document(self.client.delete_model(request.path_params["model_id"])))

    @endpoint("PUT", "/models/{name}/aliases/{alias}", "Point NAME@ALIAS at a version (moved atomically)",
              body={"type": "object", "properties": {"version": {"type": ["integer", "string"]}}, "required": ["version"]})
    def set_alias(self, request: Request) -> Response:
        version = _json_body(request).get("version")
        if not isinstance(version, (int, str)) or isinstance(version, bool):
            raise ApiError(400, "bad request", "version must be a version number or \"latest\"")
        m = self.client.set_alias(request.path_params["name"], request.path_params["alias"], version)
        return json_response(encode.model(m))

    @endpoint("DELETE", "/models/{name}/aliases/{alias}", "Remove NAME@ALIAS")
    def delete_alias(self, request: Request) -> Response:
        self.client.delete_alias(request.path_params["name"], request.path_params["alias"])
        return json_response({"deleted": f"{request.path_params['name']}@{request.path_params['alias']}"})

    @endpoint("POST", "/models/{model_id}/finalize", "Make a model final (immutable from then on)", body={"type": "object"})
    def finalize_model(self, request: Request) -> Response:
        return json_response(encode.model(self.client.finalize_model(request.path_params["model_id"])))

    @endpoint("GET", "/models/{model_id}/files/{name:path}", "One file of a model (download, streamed)",
              returns="application/octet-stream")
    def model_file(self, request: Request) -> Response:
        info, chunks = self.client.open_model_file(request.path_params["model_id"], request.path_params["name"])
        return file_response(info.name, info.bytes, chunks, True)

    # Declared after the routes below a model, so that its path may hold a reference with slashes
    # (models:/NAME/VERSION); NAME@VERSION, NAME@latest and NAME@ALIAS work too.
    @endpoint("GET", "/models/{model_id:path}", "One model (by id, NAME@VERSION, NAME@ALIAS, models:/NAME/VERSION...), "
              "with the runs that loaded it")
    def model(self, request: Request) -> Response:
        m = self.client.model(request.path_params["model_id"])
        consumers = [{"id": c.id, "name": c.name, "status": c.status} for c in self.client.model_consumers(m.id)]
        return json_response({**encode.model(m), "consumers": consumers})

    # ------------------------------------------------------------------ changes
    @endpoint("GET", "/changes", "Change events after a sequence number", Param("since", kind="integer"),
              Param("limit", kind="integer"))
    def changes(self, request: Request) -> Response:
        since = _int(request, "since", 0)
        limit = _int(request, "limit", 1000, 1, 10_000)
        changes = self.client.changes(since, limit)
        return json_response({"changes": [c._asdict() for c in changes],
                              "last_seq": changes[-1].seq if changes else self.client.last_change_seq()})

    @endpoint("GET", "/changes/stream", "Change events as server-sent events (live pages)", Param("since", kind="integer"),
              returns="text/event-stream")
    async def changes_stream(self, request: Request) -> Response:
        since = _int(request, "since", -1, -1)
        return StreamingResponse(event_stream(self.hub, None if since < 0 else since, request.is_disconnected),
                                 media_type="text/event-stream", headers={"cache-control": "no-store", "x-accel-buffering": "no"})


ASYNC_HANDLERS = {"changes_stream"}


def _json_body(request: Request) -> dict[str, Any]:
    import json

    if "application/json" not in request.headers.get("content-type", ""):
        raise ApiError(415, "unsupported media type", "send the body as application/json")
    raw = anyio.from_thread.run(request.body)
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise ApiError(400, "bad request", f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad request", "the body must be a JSON object")
    return body
