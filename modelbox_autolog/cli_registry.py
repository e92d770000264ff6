"""``modelbox`` commands of the registry and the run lifecycle: aliases, registering models,
labels, tags, names and notes, archive and restore, delete, gc, downloads, export and compare.

Kept beside ``cli.py`` (which owns the parser and the browsing commands) and added to its
parser by ``add_commands``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console

from .backends import NotFound

PROGRESS_MIN_BYTES = 4 << 20  # smaller transfers finish before a bar would help
err_console = Console(stderr=True)


# ---------------------------------------------------------------------- helpers
@contextlib.contextmanager
def progress_bar(description: str, total: int | None = None) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr for a transfer of ``total`` bytes (shown once it is, or turns
    out to be, more than a few MB); yields ``update(done, total)``."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    progress: Progress | None = None
    task = None

    def update(done: int, total_now: int) -> None:
        nonlocal progress, task
        size = total_now or total or 0
        if progress is None:
            if max(size, done) < PROGRESS_MIN_BYTES:
                return
            progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                                console=err_console, transient=True)
            progress.start()
            task = progress.add_task(description, total=size or None)
        progress.update(task, completed=done, total=size or None)

    try:
        yield update
    finally:
        if progress is not None:
            progress.stop()


def _pairs(items: list[str] | None, what: str) -> dict[str, str]:
    pairs = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} {item!r} is not KEY=VALUE")
        pairs[key] = value
    return pairs


def _confirm(args: argparse.Namespace, question: str) -> bool:
    """Deletion is permanent: ask on a terminal, else require --yes."""
    if getattr(args, "yes", False):
        return True
    if not sys.stdin.isatty():
        print(f"error: {question} needs --yes (deletion is permanent)", file=sys.stderr)
        return False
    answer = input(f"{question} This cannot be undone. Type 'yes' to go on: ")
    return answer.strip().lower() in ("y", "yes")


def _size(n: int | None) -> str:
    from .cli import _size as size

    return size(n)


def _client(args: argparse.Namespace):
    from .cli import _client as client

    return client(args)


def _print(text: str) -> None:
    from .cli import console

    console.print(text, highlight=False, markup=False)


# ---------------------------------------------------------------------- models
def cmd_alias(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.alias_command == "set":
        m = client.set_alias(args.name, args.alias, args.version)
        _print(f"{args.name}@{args.alias} -> v{m.version} ({m.id})")
    elif args.alias_command == "delete":
        client.delete_alias(args.name, args.alias)
        _print(f"deleted {args.name}@{args.alias}")
    else:
        models = client.models(name=args.name)
        if not models:
            raise NotFound(f"no model named {args.name!r}")
        for m in sorted(models, key=lambda m: m.version):
            for alias in m.aliases:
                _print(f"{args.name}@{alias} -> v{m.version} ({m.id})")
    return 0


def cmd_register(args: argparse.Namespace) -> int:
    metadata = json.loads(args.metadata) if args.metadata else None
    if metadata is not None and not isinstance(metadata, dict):
        raise ValueError("--metadata must be a JSON object")
    client = _client(args)
    with progress_bar(f"uploading {args.name}") as update:
        m = client.register_model(args.path, name=args.name, framework=args.framework, metadata=metadata,
                                  labels=_pairs(args.label, "label"), datasets=args.dataset, progress=update)
    what = f"reference {m.source_uri}" if m.source_uri else f"{len(m.files)} files ({_size(sum(f.bytes or 0 for f in m.files))})"
    _print(f"registered {m.name} v{m.version} ({m.id}): {what}\n{m.url}")
    return 0


def cmd_label(args: argparse.Namespace) -> int:
    labels: dict[str, str | None] = {**_pairs(args.pairs, "label"), **{k: None for k in args.remove or []}}
    if not labels:
        raise ValueError("give KEY=VALUE labels to set and/or --remove KEY")
    m = _client(args).update_model(args.model, labels=labels)
    _print(f"{m.name} v{m.version} labels: " + (", ".join(f"{k}={v}" for k, v in sorted(m.labels.items())) or "none"))
    return 0


# ---------------------------------------------------------------------- runs
def cmd_tag(args: argparse.Namespace) -> int:
    tags: dict[str, str | None] = {**_pairs(args.pairs, "tag"), **{k: None for k in args.remove or []}}
    if not tags:
        raise ValueError("give KEY=VALUE tags to set and/or --remove KEY")
    r = _client(args).set_tags(args.run_id, tags)
    _print(f"run {r.id[:12]} tags: " + (", ".join(f"{k}={v}" for k, v in sorted(r.tags.items())) or "none"))
    return 0


def cmd_rename(args: argparse.Namespace) -> int:
    r = _client(args).rename_run(args.run_id, args.name)
    _print(f"run {r.id[:12]} is now named {r.name!r}")
    return 0


def cmd_note(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.text == "-" else args.text
    r = _client(args).set_note(args.run_id, text)
    _print(f"run {r.id[:12]}: note {'cleared' if not r.note else 'saved'}")
    return 0


def cmd_archive(args: argparse.Namespace, restore: bool = False) -> int:
    client = _client(args)
    verb = "restored" if restore else "archived"
    if args.experiment:
        e = client.restore_experiment(args.experiment) if restore else client.archive_experiment(args.experiment)
        _print(f"{verb} experiment {e.name}")
    for run_id in args.run_ids:
        r = client.restore_run(run_id) if restore else client.archive_run(run_id)
        _print(f"{verb} run {r.id[:12]} {r.name or ''}".rstrip())
    if not args.experiment and not args.run_ids:
        raise ValueError("give RUN_ID... or --experiment NAME")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    client = _client(args)
    targets = [f"run {r}" for r in args.run_ids] + ([f"experiment {args.experiment!r}"] if args.experiment else []) \
        + [f"model {m}" for m in args.model or []]
    if not targets:
        raise ValueError("give RUN_ID..., --experiment NAME or --model REF")
    if not _confirm(args, f"Delete {', '.join(targets)} with everything logged in it?"):
        return 2
    for run_id in args.run_ids:
        _report(f"run {run_id}", client.delete_run(run_id))
    if args.experiment:
        _report(f"experiment {args.experiment}", client.delete_experiment(args.experiment))
    for ref in args.model or []:
        _report(f"model {ref}", client.delete_model(ref))
    return 0


def _report(what: str, report: Any) -> None:
    parts = [f"{report.runs} runs" if report.runs else "", f"{report.models} models" if report.models else "",
             f"{report.files} files ({_size(report.bytes)})"]
    _print(f"deleted {what}: " + ", ".join(p for p in parts if p))


def cmd_gc(args: argparse.Namespace) -> int:
    report = _client(args).gc(delete=args.yes, older_than_s=args.older_than)
    for key in report.keys:
        _print(f"  {key}")
    more = report.files - len(report.keys)
    if more > 0:
        _print(f"  ... and {more} more")
    action = "removed" if args.yes else "would remove"
    _print(f"{action} {report.files} unreferenced files ({_size(report.bytes)}) from {report.location}"
           + (f"; kept {report.kept_young} newer than {args.older_than:.0f}s" if report.kept_young else "")
           + (f"; {report.failed} could not be removed" if report.failed else "")
           + ("" if args.yes or not report.files else "; run again with --yes to remove them"))
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    """A model's files, or a run's artifacts (all, or those named with --artifact)."""
    client = _client(args)
    if not args.artifact:
        try:
            info = client.model(args.ref)
        except NotFound as model_error:
            try:
                client.run(args.ref)
            except NotFound:
                raise model_error from None
        else:
            total = sum(f.bytes or 0 for f in info.files)
            with progress_bar(f"{info.name} v{info.version}", total) as update:
                path = client.download_model(info.url or info.id, args.dest, progress=update)
            _print(f"{info.name} v{info.version} is a reference: {path}" if path == info.source_uri else f"downloaded to {path}")
            return 0
    run = client.run(args.ref)
    artifacts = [a for a in run.artifacts() if a.bytes is not None and (not args.artifact or a.name in args.artifact)]
    missing = sorted(set(args.artifact or []) - {a.name for a in artifacts})
    if missing:
        names = ", ".join(sorted({a.name for a in run.artifacts()})) or "none"
        raise NotFound(f"run {run.id} has no stored artifact {missing[0]!r}; it has: {names}")
    latest = {a.name: a for a in artifacts}  # the latest of each name
    total = sum(a.bytes or 0 for a in latest.values())
    with progress_bar(f"run {run.id[:8]} artifacts", total) as update:
        done = 0
        for name, artifact in latest.items():
            client.download_artifact(run.id, name, args.dest,
                                     progress=lambda n, _t, base=done: update(base + n, total))
            done += artifact.bytes or 0
    _print(f"downloaded {len(latest)} artifacts ({_size(total)}) of run {run.id[:12]} to {os.path.abspath(args.dest)}")
    return 0


# ---------------------------------------------------------------------- export and compare
def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_run

    run = _client(args).run(args.run_id)
    written = export_run(run, args.format, args.output, args.metric or None)
    if written:
        print(f"wrote {written}", file=sys.stderr)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .plots import compare_runs

    client = _client(args)
    runs = [client.run(r) for r in args.run_ids]
    if len(runs) < 2:
        raise ValueError("compare needs at least two runs")
    _print(f"wrote {compare_runs(runs, args.metric or None, args.output)}")
    return 0


# ---------------------------------------------------------------------- parser
def add_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add this module's commands with ``add(name, handler, help)`` from ``cli.build_parser``."""
    p = add("alias", cmd_alias, "set, delete or list a model's aliases (NAME@ALIAS)")
    sub = p.add_subparsers(dest="alias_command", required=True)
    s = sub.add_parser("set", help="point NAME@ALIAS at VERSION (moves it from another version)")
    s.add_argument("name")
    s.add_argument("alias")
    s.add_argument("version", help="a version number or latest")
    s = sub.add_parser("delete", help="remove NAME@ALIAS")
    s.add_argument("name")
    s.add_argument("alias")
    s = sub.add_parser("list", help="the aliases of NAME")
    s.add_argument("name")

    p = add("register", cmd_register, "register a model no run produced: a file, a folder or a URI (s3://, https://, hf://)")
    p.add_argument("path", help="a local file or folder (copied), or a URI kept as a reference")
    p.add_argument("--name", required=True)
    p.add_argument("--framework")
    p.add_argument("--label", action="append", help="KEY=VALUE (repeatable)")
    p.add_argument("--metadata", help="a JSON object")
    p.add_argument("--dataset", action="append", help="a dataset it was trained on (repeatable)")

    p = add("label", cmd_label, "set or remove labels of a draft model")
    p.add_argument("model", help="model id, NAME@VERSION, NAME@ALIAS...")
    p.add_argument("pairs", nargs="*", help="KEY=VALUE")
    p.add_argument("--remove", action="append", metavar="KEY")

    p = add("tag", cmd_tag, "set or remove tags of a run (finished runs too)")
    p.add_argument("run_id")
    p.add_argument("pairs", nargs="*", help="KEY=VALUE")
    p.add_argument("--remove", action="append", metavar="KEY")
    p = add("rename", cmd_rename, "rename a run")
    p.add_argument("run_id")
    p.add_argument("name")
    p = add("note", cmd_note, "set a run's note ('' clears it, - reads stdin)")
    p.add_argument("run_id")
    p.add_argument("text")

    for name, restore in (("archive", False), ("restore", True)):
        p = add(name, lambda args, restore=restore: cmd_archive(args, restore),
                "bring back archived runs or an experiment" if restore else
                "hide runs (with their child runs) or an experiment from listings; restorable")
        p.add_argument("run_ids", nargs="*", metavar="RUN_ID")
        p.add_argument("--experiment", "-e", help="an experiment name or id")

    p = add("delete", cmd_delete, "delete runs (with child runs, artifacts and models), an experiment or a model, for good")
    p.add_argument("run_ids", nargs="*", metavar="RUN_ID")
    p.add_argument("--experiment", "-e", help="an experiment name or id: all its runs")
    p.add_argument("--model", action="append", metavar="REF", help="a model version (id, NAME@VERSION...)")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask")

    p = add("gc", cmd_gc, "find files no record points at any more (a dry run unless --yes)")
    p.add_argument("--yes", "-y", action="store_true", help="remove them")
    p.add_argument("--older-than", type=float, default=3600.0, metavar="SECONDS",
                   help="keep younger files: a write in progress places its files first (default 3600)")

    p = add("export", cmd_export, "a run's metrics as CSV, JSON or Parquet (one row per point)")
    p.add_argument("run_id")
    p.add_argument("--format", "-f", choices=["csv", "json", "parquet"], default="csv")
    p.add_argument("--metric", "-m", action="append", help="only these metrics (repeatable)")
    p.add_argument("-o", "--output", help="file (default: stdout; parquet needs a file)")

    p = add("compare", cmd_compare, "compare runs: one chart per metric, one line per run, params that differ")
    p.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    p.add_argument("--metric", "-m", action="append", help="metrics to chart (default: those the runs share)")
    p.add_argument("-o", "--output", required=True, help="out.png | out.svg | out.html")
