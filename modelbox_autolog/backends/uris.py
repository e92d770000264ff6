"""Parsing backend URIs without importing any backend (cheap enough for ``autolog()``)."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

from .base import BackendError


def sqlite_path(uri: str) -> str:
    """``sqlite:///relative.db`` / ``sqlite:////abs.db`` -> filesystem path."""
    if not uri.startswith("sqlite:///"):
        raise BackendError(f"{uri!r} is not a sqlite URI; expected sqlite:///PATH (e.g. sqlite:///./runs/modelbox.db)")
    path = unquote(uri[len("sqlite:///"):].split("?", 1)[0].split("#", 1)[0])
    if not path:
        raise BackendError(f"{uri!r} names no database file; expected sqlite:///PATH")
    return path


def spool_dir(uri: str) -> str:
    """``file:///DIR`` -> folder path."""
    if not uri.startswith("file://"):
        raise BackendError(f"{uri!r} is not a file URI; expected file:///DIR")
    path = unquote(uri[len("file://"):])
    if not path:
        raise BackendError(f"{uri!r} names no folder; expected file:///DIR")
    return path


def artifacts_param(uri: str) -> str | None:
    """The ``?artifacts=LOCATION`` of a store URI (a folder or ``s3://BUCKET/PREFIX``), if any."""
    if "?" not in uri:
        return None
    values = parse_qs(urlsplit(uri.split("#", 1)[0]).query).get("artifacts")
    return values[-1] if values else None


def server_addresses(uri: str, default_port: int = 50051) -> tuple[list[tuple[str, int]], bool]:
    """``grpc://h1:p1,h2:p2`` (``grpcs://`` for TLS) -> ([(host, port), ...], tls). IPv6 hosts in brackets."""
    scheme, sep, rest = uri.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("grpc", "grpcs"):
        raise BackendError(f"{uri!r} is not a server URI; expected grpc://HOST:PORT or grpcs://HOST:PORT")
    netloc, slash, tail = rest.partition("/")
    if (slash and tail) or "?" in rest or "#" in rest:
        raise BackendError(f"{uri!r}: a server URI has no path or query; expected grpc://HOST:PORT[,HOST:PORT...]")
    addresses = []
    for item in netloc.split(","):
        parts = urlsplit(f"//{item.strip()}")
        try:
            host, port = parts.hostname, parts.port or default_port
        except ValueError as exc:
            raise BackendError(f"{uri!r}: {exc}") from exc
        if not host:
            raise BackendError(f"{uri!r}: {item!r} names no host; expected grpc://HOST:PORT[,HOST:PORT...]")
        addresses.append((host, port))
    return addresses, scheme == "grpcs"


def redact_uri(uri: str) -> str:
    """A URI safe to show: without the password of ``scheme://user:password@host`` forms."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri
    netloc, slash, tail = rest.partition("/")
    if "@" in netloc:
        auth, _, hosts = netloc.rpartition("@")
        netloc = auth.split(":", 1)[0] + "@" + hosts
    return f"{scheme}{sep}{netloc}{slash}{tail}"
