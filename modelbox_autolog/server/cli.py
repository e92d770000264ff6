"""``modelbox server``: arguments and entry point (also ``python -m modelbox_autolog.server.cli``).

Any number of servers may serve one PostgreSQL store and one bucket: they keep no state of
their own, so clients can be given several addresses (``grpc://h1:p1,h2:p2``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

DEFAULT_STORE = "sqlite:///./modelbox-runs/modelbox.db"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The server's options, added to the ``modelbox server`` sub-command (or a parser of its own)."""
    parser.add_argument("--store", help="metadata store to serve: sqlite:///PATH or postgresql://USER@HOST:PORT/DB "
                        f"(default: --backend if it is one of those, else {DEFAULT_STORE})")
    parser.add_argument("--artifacts", help="where artifact and model files go: a folder or s3://BUCKET/PREFIX (endpoint and "
                        "credentials from the AWS variables); default: 'artifacts' beside a SQLite store; a PostgreSQL "
                        "store remembers the location it was first given")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 exposes the server)")
    parser.add_argument("--port", type=int, default=50051, help="gRPC port (default 50051; 0 picks a free one)")
    parser.add_argument("--token", default=os.environ.get("MODELBOX_TOKEN"),
                        help="one-token mode: a shared secret every call must carry, acting as admin (default: $MODELBOX_TOKEN). "
                        "Per-user tokens with roles: modelbox server token create USER --role ROLE; with neither, no check")
    parser.add_argument("--tls-cert", help="PEM certificate chain: serve TLS (clients use grpcs://)")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this port (same host)")
    parser.add_argument("--http-port", type=int,
                        help="also serve the web UI and HTTP API (/api/v1/) on this port (same host and token; needs the ui extra)")
    parser.add_argument("--max-message-mb", type=int, default=64, help="largest request accepted (default 64 MB)")
    parser.add_argument("--max-upload-mb", type=int, default=64 * 1024, help="largest file accepted (default 64 GB)")
    parser.add_argument("--workers", type=int, default=16, help="threads serving calls (default 16)")
    parser.add_argument("--max-watchers", type=int, default=32, help="concurrent Watch streams (default 32)")
    parser.add_argument("--grace", type=float, default=30.0, help="seconds in-flight calls get at shutdown (default 30)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    from . import token_cli

    token_cli.add_arguments(parser, DEFAULT_STORE)


def store_from(args: argparse.Namespace) -> str:
    """--store, else --backend / $MODELBOX_BACKEND when it names a SQL store, else the default store."""
    if args.store is not None:
        return args.store
    backend = getattr(args, "backend", None) or os.environ.get("MODELBOX_BACKEND")
    return backend if backend and backend.startswith(("sqlite:", "postgresql:", "postgres:")) else DEFAULT_STORE


def settings_from(args: argparse.Namespace):
    from .app import Settings

    store = store_from(args)
    for name in ("port", "max_message_mb", "max_upload_mb", "workers", "max_watchers"):
        if getattr(args, name) < (0 if name == "port" else 1):
            raise ValueError(f"--{name.replace('_', '-')} must be {'non-negative' if name == 'port' else 'positive'}")
    return Settings(
        store=store, artifacts=args.artifacts, host=args.host, port=args.port, token=args.token or None,
        tls_cert=args.tls_cert, tls_key=args.tls_key, metrics_port=args.metrics_port,
        max_message_bytes=args.max_message_mb << 20, max_upload_bytes=args.max_upload_mb << 20,
        workers=args.workers, max_watchers=args.max_watchers, grace_s=args.grace,
        http_port=getattr(args, "http_port", None),
    )


def run(args: argparse.Namespace) -> int:
    """Start the server and serve until SIGTERM/SIGINT; 2 with a clear message when it cannot start.
    ``modelbox server token ...`` manages per-user tokens instead."""
    if getattr(args, "server_command", None) == "token":
        from . import token_cli

        return token_cli.run(args, store_from(args))
    logging.basicConfig(level=getattr(logging, args.log_level.upper()), format="%(asctime)s %(levelname)s %(message)s")
    for chatty in ("botocore", "boto3", "s3transfer", "urllib3", "psycopg.pool"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
    from .app import Server, StartupError

    try:
        server = Server(settings_from(args))
    except (StartupError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    server.start()
    s = server.settings
    scheme = "grpcs" if s.tls_cert else "grpc"
    where = f"[{s.host}]" if ":" in s.host else s.host
    print(f"modelbox server listening on {scheme}://{where}:{server.port}", flush=True)
    print(f"  store {server.store.uri}  artifacts {server.artifacts.uri}", flush=True)
    if server.metrics_port is not None:
        print(f"  metrics http://{where}:{server.metrics_port}/metrics", flush=True)
    if server.http_port is not None:
        print(f"  web UI and HTTP API http://{where}:{server.http_port}/", flush=True)
    if server.authenticator.required():
        kinds = ["--token (admin)"] if s.token else []
        store_tokens = getattr(server.store, "tokens", None)
        if store_tokens is not None:
            in_force = sum(t.revoked_at is None for t in store_tokens())
            if in_force or not s.token:
                kinds.append(f"{in_force} per-user token(s)")
        print(f"  tokens required: {' and '.join(kinds)}", flush=True)
    else:
        exposed = s.host not in ("127.0.0.1", "localhost", "::1")
        print("  warning: no --token: anyone who can reach the port can read and write" if exposed else "  no token (local only)",
              flush=True)
    server.serve_until_signalled()
    print("modelbox server stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelbox server", description="Run the gRPC modelbox server.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
