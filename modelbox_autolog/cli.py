"""The ``modelbox`` command: browse runs, models and events; plot; watch; sync; serve."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import _config, cli_registry
from ._values import display
from .backends import BackendError, NotFound, canonical_uri, scheme_of

console = Console(width=None if sys.stdout.isatty() else 140)


def _when(ts: float | None) -> str:
    return "" if ts is None else _dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _num(value: Any) -> str:
    if isinstance(value, float):
        return str(value) if math.isnan(value) or math.isinf(value) else f"{value:.6g}"
    return "" if value is None else str(value)


def _size(n: int | None) -> str:
    if n is None:
        return "missing"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _client(args: argparse.Namespace):
    from .client import Client

    uri = args.backend or _config.current().backend
    scheme = scheme_of(uri)
    if scheme == "sqlite":
        from .backends.sqlite import path_from_uri

        path = path_from_uri(uri)
        if not os.path.exists(path):
            raise BackendError(f"no store at {os.path.abspath(path)} (from {uri}); nothing has been logged there yet")
    return Client(canonical_uri(uri))


# ---------------------------------------------------------------------- commands
def cmd_experiments(args: argparse.Namespace) -> int:
    archived = None if args.all else bool(args.archived)
    table = Table(title="experiments")
    for column in ("id", "name", "created", *(("archived",) if archived is not False else ())):
        table.add_column(column)
    for exp in _client(args).experiments(archived=archived):
        table.add_row(exp.id[:12], exp.name, _when(exp.created_at), *((_when(exp.archived_at),) if archived is not False else ()))
    console.print(table)
    return 0


def _check_experiment(client: Any, name_or_id: str | None) -> None:
    """An experiment the user named must exist: say so (with close names) rather than list nothing."""
    if name_or_id is not None:
        client.experiment(name_or_id)  # NotFound: "no experiment 'nope'; did you mean 'mnist'?"


CHILDREN_SHOWN = 5  # child runs listed under their parent; the rest are counted


def cmd_runs(args: argparse.Namespace) -> int:
    from .search import SearchError

    client = _client(args)
    _check_experiment(client, args.experiment)
    archived = None if args.all else bool(args.archived)
    fold = not (args.flat or args.json or args.csv or args.where or args.order_by)
    where = "parent is null" if fold else args.where
    try:
        runs = client.runs(experiment=args.experiment, status=args.status, limit=args.limit, where=where,
                           order_by=args.order_by, offset=args.offset, archived=archived)
    except SearchError as exc:
        print(f"error: invalid {'--where' if exc.expression == (args.where or '') else '--order-by'} expression "
              f"at position {exc.position}:\n  {exc.pointer().replace(chr(10), chr(10) + '  ')}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([_run_dict(r) for r in runs], indent=2, default=str))
        return 0
    if args.csv:
        _runs_csv(runs)
        return 0
    children = client.child_counts([r.id for r in runs]) if fold else {}
    table = Table(title=f"runs ({len(runs)}{' top-level' if fold and any(children.values()) else ''})")
    for column in ("id", "experiment", "name", "status", "progress", "started", "duration", "params",
                   "children" if fold else "parent"):
        table.add_column(column, overflow="fold")
    for r in runs:
        _run_row(table, r, str(children.get(r.id) or "") if fold else (r.parent_run_id or "")[:12])
        count = children.get(r.id, 0)
        if count:
            kids = client.runs(where=f"parent = '{r.id}'", limit=CHILDREN_SHOWN, archived=archived)
            for child in kids:
                _run_row(table, child, "", indent="  └ ")
            if count > len(kids):
                table.add_row("", "", f"  … {count - len(kids)} more: runs --where \"parent = '{r.id[:12]}'\"", "", "", "", "", "", "")
    console.print(table)
    return 0


def _run_row(table: Table, r: Any, last: str, indent: str = "") -> None:
    duration = f"{r.duration_s:.1f}s" if r.duration_s is not None else ""
    progress = f"{r.progress:.0%}" if r.progress is not None else ""
    style = {"failed": "red", "killed": "yellow", "running": "cyan"}.get(r.status, "")
    status = f"[{style}]{r.status}[/]" if style else r.status
    if r.archived_at is not None:
        status += " [dim](archived)[/]"
    table.add_row(indent + r.id[:12] if not indent else f"{indent}{r.id[:8]}", r.experiment, escape(r.name or ""), status,
                  progress, _when(r.start_time), duration, str(len(r.params)), last)


def _runs_csv(runs: Sequence[Any]) -> None:
    """One row per run: attributes, then params.* and metrics.* (latest values) columns."""
    import csv

    client = runs[0]._client if runs else None
    summaries = client.metric_summaries([r.id for r in runs]) if client else {}
    param_keys = sorted({k for r in runs for k in r.params})
    metric_keys = sorted({k for s in summaries.values() for k in s})
    writer = csv.writer(sys.stdout)
    writer.writerow(["id", "experiment", "name", "status", "start_time", "end_time", "duration_s", "parent_run_id",
                     *(f"params.{k}" for k in param_keys), *(f"metrics.{k}" for k in metric_keys)])
    for r in runs:
        params = [r.params.get(k, "") for k in param_keys]
        metrics = [summaries.get(r.id, {}).get(k) for k in metric_keys]
        writer.writerow([r.id, r.experiment, r.name or "", r.status, r.start_time, r.end_time or "", r.duration_s or "",
                         r.parent_run_id or "", *(v if isinstance(v, str) else json.dumps(v) for v in params),
                         *("" if m is None or m.last is None else repr(m.last) for m in metrics)])


def _run_dict(r: Any) -> dict[str, Any]:
    failure = getattr(r, "failure", None)
    return {
        "id": r.id, "experiment": r.experiment, "name": r.name, "status": r.status, "progress": r.progress,
        "start_time": r.start_time, "end_time": r.end_time, "parent_run_id": r.parent_run_id, "params": r.params,
        "tags": r.tags, "failure": failure._asdict() if failure else None, "note": r.note, "archived_at": r.archived_at,
    }


MAX_SHOWN_CHARS = 200  # a param value longer than this is cut in the table (whole in --json)


def _shown(value: Any) -> str:
    text = display(value)
    if len(text) > MAX_SHOWN_CHARS:
        return f"{text[:MAX_SHOWN_CHARS]}… ({len(text):,} characters; --json shows all)"
    return text


def cmd_show(args: argparse.Namespace) -> int:
    r = _client(args).run(args.run_id)
    if args.json:
        doc = _run_dict(r)
        doc["env"] = r.env
        doc["metrics"] = {k: [p._asdict() for p in r.metrics(k)] for k in r.metric_keys()}
        doc["events"] = [e._asdict() for e in r.events()]
        doc["artifacts"] = [a._asdict() for a in r.artifacts()]
        print(json.dumps(doc, indent=2, default=str))
        return 0
    archived = "  [dim](archived)[/]" if r.archived_at is not None else ""
    console.print(f"[bold]run[/] {r.id}  [bold]{escape(r.name or '')}[/]  experiment {escape(r.experiment)}  "
                  f"status [bold]{r.status}[/]{archived}")
    duration = f"  duration {r.duration_s:.2f}s" if r.duration_s is not None else ""
    console.print(f"started {_when(r.start_time)}{duration}" + (f"  parent {r.parent_run_id}" if r.parent_run_id else ""))
    if r.tags:
        console.print("tags: " + ", ".join(f"{k}={_shown(v)}" for k, v in sorted(r.tags.items())), markup=False)
    if r.note:
        console.print("note: " + r.note, markup=False, highlight=False)
    failure = getattr(r, "failure", None)
    if failure is not None:
        console.print(f"[bold red]{r.status}[/]: {escape(failure.type)}: {escape(failure.message)}", highlight=False)
        if failure.traceback:
            console.print(failure.traceback.rstrip(), markup=False, highlight=False)
    env = r.env
    if env:
        git = env.get("git", {})
        git_text = f"  git {git.get('commit', '')[:10]}{' (dirty)' if git.get('dirty') else ''}" if git else ""
        console.print(f"python {env.get('python')} on {env.get('platform')}{git_text}  packages: {len(env.get('packages', {}))}")
    if r.params:
        table = Table(title="params")
        table.add_column("param")
        table.add_column("value", overflow="fold")
        for key, value in sorted(r.params.items()):
            table.add_row(escape(key), escape(_shown(value)))
        console.print(table)
    keys = r.metric_keys()
    if keys:
        table = Table(title="metrics")
        for column in ("metric", "points", "last step", "last", "min", "max"):
            table.add_column(column)
        for key in keys:
            points = r.metrics(key)
            values = [p.value for p in points if not math.isnan(p.value)]
            table.add_row(
                key, str(len(points)), str(points[-1].step) if points else "", _num(points[-1].value) if points else "",
                _num(min(values)) if values else "", _num(max(values)) if values else "",
            )
        console.print(table)
    events = r.events()
    if events:
        counts: dict[str, list[float]] = {}
        for e in events:
            counts.setdefault(e.name, []).append(e.duration_s or 0.0)
        table = Table(title=f"events ({len(events)})")
        for column in ("event", "count", "total s"):
            table.add_column(column)
        for name, durations in counts.items():
            table.add_row(name, str(len(durations)), f"{sum(durations):.3f}")
        console.print(table)
    artifacts = r.artifacts()
    if artifacts:
        table = Table(title="artifacts")
        for column in ("name", "kind", "size", "sha256"):
            table.add_column(column, overflow="fold")
        for a in artifacts:
            table.add_row(a.name, a.kind, _size(a.bytes), (a.sha256 or "")[:16])
        console.print(table)
    models = r.models()
    if models:
        _models_table(models, "models")
    inputs = r.inputs()
    if inputs:
        table = Table(title="inputs")
        for column in ("kind", "ref"):
            table.add_column(column, overflow="fold")
        for i in inputs:
            table.add_row(i.kind, i.ref)
        console.print(table)
    return 0


def _models_table(models: Sequence[Any], title: str) -> None:
    table = Table(title=title)
    for column in ("id", "name", "version", "aliases", "framework", "status", "files", "size", "run", "labels"):
        table.add_column(column, overflow="fold")
    for m in models:
        size = sum(f.bytes or 0 for f in m.files)
        labels = ", ".join(f"{k}={v}" for k, v in sorted(m.labels.items()))
        files = "reference" if m.source_uri else str(len(m.files))
        table.add_row(m.id[:12], escape(m.name), str(m.version), ", ".join(m.aliases), m.framework, m.status, files,
                      "" if m.source_uri else _size(size), (m.run_id or "")[:12], escape(labels))
    console.print(table)


def cmd_models(args: argparse.Namespace) -> int:
    labels: dict[str, str | None] = {}
    for item in args.label or []:  # KEY=VALUE matches the value; KEY alone: models that have the label
        key, sep, value = item.partition("=")
        labels[key] = value if sep else None
    models = _client(args).models(name=args.name, labels=labels or None)
    if args.json:
        print(json.dumps([_model_dict(m) for m in models], indent=2, default=str))
        return 0
    _models_table(models, f"models ({len(models)})")
    return 0


def _model_dict(m: Any) -> dict[str, Any]:
    return {
        "id": m.id, "name": m.name, "version": m.version, "framework": m.framework, "run_id": m.run_id, "status": m.status,
        "metadata": m.metadata, "labels": m.labels, "datasets": m.datasets, "url": m.url, "aliases": m.aliases,
        "source_uri": m.source_uri, "files": [f._asdict() for f in m.files],
    }


def cmd_model(args: argparse.Namespace) -> int:
    m = _client(args).model(args.model_id)
    print(json.dumps(_model_dict(m), indent=2, default=str))
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    events = _client(args).run(args.run_id).events(args.name)
    table = Table(title=f"events ({len(events)})")
    for column in ("time", "event", "duration s", "attributes"):
        table.add_column(column, overflow="fold")
    for e in events:
        attrs = {k: v for k, v in e.attrs.items() if k != "end"}
        duration = f"{e.duration_s:.4f}" if e.duration_s is not None else ""
        table.add_row(_when(e.timestamp), e.name, duration, json.dumps(attrs, default=str))
    console.print(table)
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from .plots import plot_run

    run = _client(args).run(args.run_id)
    out = plot_run(run, args.metrics or None, args.output, together=bool(args.metrics) and not args.separate)
    console.print(f"wrote {out}")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    client = _client(args)
    console.print(f"watching {client.uri} (Ctrl-C to stop)")
    try:
        for change in client.watch(since=args.since, poll_interval=args.interval, timeout=args.timeout):
            payload = json.dumps(change.payload, default=str)
            console.print(f"{change.seq:>6}  {change.kind:<9} {change.object_type:<10} {change.object_id[:12]}  "
                          f"{change.actor or '-':<12} {payload}", markup=False, highlight=False)
    except KeyboardInterrupt:
        pass
    return 0


STORE_SCHEMES = ("sqlite", "postgresql", "postgres", "grpc", "grpcs", "memory")


def cmd_sync_store(args: argparse.Namespace) -> int:
    """``modelbox sync STORE_URI --to URI``: copy a whole store (SQLite <-> PostgreSQL + S3, a server)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .backends import open_backend, open_store
    from .store_copy import copy_store

    if not args.to:
        raise BackendError(f"copying the store {args.directory}: say where with --to URI")
    source = open_store(canonical_uri(args.directory))
    target = open_backend(canonical_uri(args.to))
    try:
        columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("runs"),
                   TextColumn("{task.fields[detail]}"), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=not console.is_terminal) as progress:
            task = progress.add_task("copying", total=None, detail="")

            def on_progress(report, total: int, what: str) -> None:
                progress.update(task, total=total, completed=report.runs,
                                detail=f"{report.points:,} points  {report.files} files ({_size(report.bytes)})  {what}")

            report = copy_store(source, target, on_progress)
    finally:
        target.close()
        source.close()
    console.print(f"synced {report.runs} runs, {report.points:,} new metric points, {report.files} files "
                  f"({_size(report.bytes)}), {report.models} models from {args.directory} to {args.to} "
                  "(what the target had already was skipped)")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    if "://" in args.directory and scheme_of(args.directory) in STORE_SCHEMES:
        return cmd_sync_store(args)
    """Replay a journal (its root, or one backend's folder) or a file:// spool into a store."""
    from ._journal import backend_of

    source = os.path.abspath(args.directory)
    if not os.path.isdir(source):
        raise BackendError(f"{source} is not a folder (give a journal folder, a journal root or a file:// spool)")
    if backend_of(source) is not None:  # one backend's journal folder
        jobs = [(source, args.to or backend_of(source))]
    else:
        journals = sorted(os.path.join(source, name) for name in os.listdir(source)
                          if backend_of(os.path.join(source, name)) is not None)
        if not journals:  # a spool folder
            if not args.to:
                raise BackendError(f"{source} is a spool (no BACKEND note): say where to replay it with --to URI")
            return _sync_spool(source, args.to)
        if args.to:
            wanted = canonical_uri(args.to)
            jobs = [(folder, args.to) for folder in journals if backend_of(folder) == wanted]
            others = [folder for folder in journals if backend_of(folder) != wanted]
            for folder in others:
                console.print(f"not replayed: {folder} holds records for {backend_of(folder)}; to send them there: "
                              f"modelbox sync {folder}  (or into another store: modelbox sync {folder} --to URI)",
                              markup=False, highlight=False)
            if not jobs:
                print(f"error: no journal under {source} is for {wanted}; the commands above replay each one", file=sys.stderr)
                return 2
        else:
            jobs = [(folder, backend_of(folder)) for folder in journals]
    status = 0
    for folder, target in jobs:
        status = max(status, _sync_journal(folder, target))
    return status


def _refusal_printer(counts: dict[str, int]):
    def on_refused(record: Any, reason: str, detail: str) -> None:
        if reason not in counts:
            console.print(f"refused (skipped): {type(record).__name__}: {detail}", markup=False, highlight=False)
        counts[reason] = counts.get(reason, 0) + 1

    return on_refused


def _sync_journal(folder: str, target_uri: str) -> int:
    """Replay every segment no live process holds; delivered segments are deleted."""
    from ._exporter import _remove_staged
    from ._journal import JournalDamaged, Replayed, replay_segment, segment_files
    from .backends import BackendUnavailable, open_backend
    from .backends.delivery import deliver

    target = open_backend(target_uri)
    result, refused, busy = Replayed(), {}, 0
    on_refused = _refusal_printer(refused)

    def send(batch: Any) -> bool | None:
        new = deliver(target, batch, on_refused)
        _remove_staged(batch)
        return new

    segments = segment_files(folder)
    bar = _batches_bar(len(segments))
    try:
        bar.start()
        task = bar.add_task("replay", total=len(segments))
        for path in segments:
            bar.advance(task)
            try:
                if replay_segment(path, send, result) is None:
                    busy += 1
            except JournalDamaged as exc:
                console.print(f"skipped a damaged segment: {exc}", markup=False, highlight=False)
            except BackendUnavailable as exc:
                console.print(f"{target_uri} is unavailable ({exc}); what is left stays in {folder}", markup=False, highlight=False)
                _sync_summary(folder, target_uri, result, refused, busy)
                return 3
    finally:
        bar.stop()
        target.close()
    _sync_summary(folder, target_uri, result, refused, busy)
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Bring a store's schema to this version's (PostgreSQL: numbered migrations, one transaction)."""
    scheme = scheme_of(args.uri)
    if scheme in ("postgresql", "postgres"):
        import psycopg

        from .backends import pg_migrations
        from .backends.postgres import connect_error, split_uri

        conninfo, display, _ = split_uri(args.uri)
        try:
            conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
        except psycopg.Error as exc:
            raise connect_error(exc, conninfo) from exc
        with conn:
            before = pg_migrations.current_version(conn)
            if before > pg_migrations.LATEST:
                raise BackendError(f"{display} has schema v{before}, newer than this modelbox-autolog's "
                                   f"v{pg_migrations.LATEST}; upgrade modelbox-autolog instead")
            if before == pg_migrations.LATEST:
                console.print(f"{display}: schema v{before}, up to date")
                return 0
            applied = pg_migrations.upgrade(conn)
        for migration in applied:
            console.print(f"  applied {migration.version:04d}_{migration.name}")
        console.print(f"{display}: schema v{before} -> v{pg_migrations.LATEST}")
        return 0
    if scheme == "sqlite":
        from .backends.sqlite import SCHEMA_VERSION, SQLiteStore

        SQLiteStore(args.uri).close()  # opening a SQLite store brings its schema up to date
        console.print(f"{args.uri}: schema v{SCHEMA_VERSION}, up to date")
        return 0
    raise BackendError(f"{args.uri}: only sqlite:// and postgresql:// stores have a schema to upgrade")


def _batches_bar(total: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("[bold]replaying"), BarColumn(), MofNCompleteColumn(), TextColumn("batches"), TimeElapsedColumn(),
                    console=cli_registry.err_console, transient=True, disable=total <= 3)


def _sync_spool(folder: str, target_uri: str) -> int:
    from ._journal import Replayed
    from .backends import BackendUnavailable, open_backend
    from .backends.delivery import deliver
    from .backends.spool import count_batches, read_spool

    target = open_backend(target_uri)
    result, refused = Replayed(), {}
    on_refused = _refusal_printer(refused)
    total = count_batches(folder)
    bar = _batches_bar(total)  # a bar on stderr once there are more than a few batches
    try:
        with bar:
            task = bar.add_task("replay", total=total or None)
            for batch in read_spool(folder):
                new = deliver(target, batch, on_refused)
                result.batches += 1
                result.records += len(batch.records)
                if new is False:
                    result.present += 1
                else:
                    result.new += 1
                bar.update(task, completed=result.batches)
    except BackendUnavailable as exc:
        console.print(f"{target_uri} is unavailable ({exc}); run the same command again later", markup=False, highlight=False)
        _sync_summary(folder, target_uri, result, refused, 0)
        return 3
    finally:
        target.close()
    _sync_summary(folder, target_uri, result, refused, 0)
    return 0


def _sync_summary(folder: str, target: str, result: Any, refused: dict[str, int], busy: int) -> None:
    text = (f"synced {folder} to {target}: {result.batches} batches ({result.records} records): {result.new} new, "
            f"{result.present} already there")
    if result.skipped_acked:
        text += f", {result.skipped_acked} delivered before"
    if refused:
        text += f"; {sum(refused.values())} record(s) refused and skipped: " + "; ".join(f"{n} x {r}" for r, n in refused.items())
    if busy:
        text += f"; {busy} segment(s) left alone (a running process is still writing them)"
    console.print(text, markup=False, highlight=False)


def cmd_ui(args: argparse.Namespace) -> int:
    """Serve the web UI and the HTTP API over the store at --backend (default: the local store)."""
    try:
        from .ui.app import create_app
        from .ui.serve import bind, serve
    except ImportError as exc:
        print(f"error: the UI needs the ui extra: pip install 'modelbox-autolog[ui]' ({exc})", file=sys.stderr)
        return 2
    uri = canonical_uri(args.backend or _config.current().backend)
    if scheme_of(uri) == "sqlite":
        from .backends.sqlite import path_from_uri

        if not os.path.exists(path_from_uri(uri)):
            print(f"note: no store at {path_from_uri(uri)} yet; the UI shows it once something is logged there", file=sys.stderr)
    token = args.token or None
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 2
    app = create_app(uri, token=token, host=args.host)
    host, port = sock.getsockname()[:2]
    where = f"[{host}]" if ":" in host else host
    print(f"modelbox ui on http://{where}:{port}/  (store {uri}{', token required' if token else ''}; Ctrl-C to stop)",
          flush=True)
    if host not in ("127.0.0.1", "::1", "localhost") and not token:
        print("  warning: no --token and not bound to loopback: anyone who can reach the port can read and edit models",
              flush=True)
    serve(app, sock, log_level=args.log_level)
    return 0


def cmd_server(args: argparse.Namespace) -> int:
    from .server import cli as server_cli

    return server_cli.run(args)


# ---------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelbox", description="Browse and serve what modelbox-autolog recorded.")
    parser.add_argument("--backend", help="store URI (default: $MODELBOX_BACKEND or sqlite:///./modelbox-runs/modelbox.db)")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, handler, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--backend", default=argparse.SUPPRESS, help="store URI")
        p.set_defaults(handler=handler)
        return p

    p = add("experiments", cmd_experiments, "list experiments")
    p.add_argument("--archived", action="store_true", help="only archived experiments")
    p.add_argument("--all", action="store_true", help="archived experiments too")
    p = add("runs", cmd_runs, "list runs, newest first (child runs folded under their parent)")
    p.add_argument("--experiment", "-e")
    p.add_argument("--status", choices=["running", "finished", "failed", "killed"])
    p.add_argument("--limit", "-n", type=int)
    p.add_argument("--offset", type=int, default=0, help="skip this many runs (paging)")
    p.add_argument("--where", "-w", help="filter, e.g. \"params.lr > 0.01 and metrics.val_acc >= 0.9\" (see docs/API.md)")
    p.add_argument("--order-by", help="sort, e.g. \"metrics.val_acc desc\" (default: newest first)")
    output = p.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true")
    output.add_argument("--csv", action="store_true", help="CSV with params.* and metrics.* (latest) columns")
    p.add_argument("--flat", action="store_true", help="child runs as rows of their own, not folded under the parent")
    p.add_argument("--archived", action="store_true", help="only archived runs")
    p.add_argument("--all", action="store_true", help="archived runs too")
    p = add("show", cmd_show, "one run: params, metrics, events, artifacts, models")
    p.add_argument("run_id", help="run id (or a unique prefix of at least 4 characters)")
    p.add_argument("--json", action="store_true")
    p = add("models", cmd_models, "list models")
    p.add_argument("--name")
    p.add_argument("--label", action="append", help="KEY=VALUE, or KEY: models that have the label (repeatable)")
    p.add_argument("--json", action="store_true")
    p = add("model", cmd_model, "one model, as JSON")
    p.add_argument("model_id", help="model id, id prefix, model URL, NAME@VERSION, NAME@latest, NAME@ALIAS or models:/NAME/VERSION")
    p = add("download", cli_registry.cmd_download, "download a model's files, or a run's artifacts")
    p.add_argument("ref", help="a model (id, URL, NAME@VERSION, NAME@ALIAS...) or a run id")
    p.add_argument("dest", help="destination folder")
    p.add_argument("--artifact", "-a", action="append", help="a run's artifact by name (repeatable; default: all of them)")
    p = add("events", cmd_events, "a run's events")
    p.add_argument("run_id")
    p.add_argument("--name")
    p = add("plot", cmd_plot, "plot a run's metrics to PNG, SVG or a self-contained HTML page")
    p.add_argument("run_id")
    p.add_argument("metrics", nargs="*", help="metric keys, drawn together on one chart (default: all, related ones together)")
    p.add_argument("--separate", action="store_true", help="one chart per given metric")
    p.add_argument("-o", "--output", required=True, help="out.png | out.svg | out.html")
    p = add("watch", cmd_watch, "follow changes (runs, metrics, models) as they happen")
    p.add_argument("--since", type=int, default=None, help="sequence number to resume from (default: now)")
    p.add_argument("--interval", type=float, default=0.5)
    p.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")
    p = add("sync", cmd_sync, "replay a journal (its root or one backend's folder) or a file:// spool into a store, "
                               "or copy a whole store (sqlite://, postgresql://, grpc://) into another; idempotent: "
                               "what is there already is skipped")
    p.add_argument("directory", help="a journal root (e.g. ~/.cache/modelbox-autolog/journal), one journal folder, a spool, "
                                     "or a store URI")
    p.add_argument("--to", help="target URI (default for a journal: the backend each folder was written for)")
    p = add("db", lambda args: p_db.print_help() or 2, "store schema maintenance")
    p_db = p
    db_sub = p.add_subparsers(dest="db_command")
    p = db_sub.add_parser("upgrade", help="migrate a store's schema to this version (back it up first)",
                          description="Migrate a store's schema to this version (back it up first).")
    p.add_argument("uri", help="store URI: postgresql://USER@HOST:PORT/DB or sqlite:///PATH")
    p.set_defaults(handler=cmd_db_upgrade)

    cli_registry.add_commands(add)

    p = add("ui", cmd_ui, "serve the web UI and the HTTP API (/api/v1/) over a store")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=5000, help="port (default 5000; 0 picks a free one)")
    p.add_argument("--token", default=os.environ.get("MODELBOX_UI_TOKEN"),
                   help="require this token (login form or Authorization: Bearer); default $MODELBOX_UI_TOKEN")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    p = add("server", cmd_server, "run the gRPC modelbox server")
    try:
        from .server import cli as server_cli

        server_cli.add_arguments(p)
    except ImportError as exc:
        p.set_defaults(handler=lambda args, exc=exc: _missing_server(exc))
    return parser


def _missing_server(exc: Exception) -> int:
    print(f"error: the server needs the grpc extra: pip install 'modelbox-autolog[grpc]' ({exc})", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except BrokenPipeError:
        # the reader went away (`modelbox runs --json | head -1`): stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (BackendError, NotFound, KeyError, ValueError, FileNotFoundError, ImportError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
