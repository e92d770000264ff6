"""Metric plots of a run: a PNG (matplotlib) or a self-contained HTML page (inline SVG, no
scripts or links to fetch)."""

from __future__ import annotations

import datetime as _dt
import html
import io
import math
import os
from collections.abc import Sequence
from typing import Any


def _figure(run: Any, keys: Sequence[str]):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(keys), 1, figsize=(8, 2.8 * len(keys)), squeeze=False)
    for axis, key in zip(axes[:, 0], keys, strict=True):
        points = run.metrics(key)
        steps = [p.step for p in points]
        values = [p.value for p in points]
        axis.plot(steps, values, marker="o" if len(points) <= 50 else None, markersize=3, linewidth=1.5)
        axis.set_title(key, fontsize=10, loc="left")
        axis.set_xlabel("step")
        axis.grid(True, alpha=0.3)
    fig.suptitle(f"run {run.name or ''} {run.id[:8]} ({run.experiment})", fontsize=11)
    fig.tight_layout()
    return fig, plt


def plot_run(run: Any, keys: Sequence[str] | None, out: str | os.PathLike[str]) -> str:
    """Write the metrics ``keys`` (all when None) of ``run`` (a RunView) to ``out`` (.png or .html)."""
    out = os.fspath(out)
    available = run.metric_keys()
    keys = list(keys) if keys else available
    missing = [k for k in keys if k not in available]
    if missing:
        raise KeyError(f"run {run.id} has no metric {missing[0]!r}; it has: {', '.join(available) or 'none'}")
    if not keys:
        raise KeyError(f"run {run.id} has no metrics to plot")
    extension = os.path.splitext(out)[1].lower()
    if extension not in (".png", ".html", ".htm", ".svg"):
        raise ValueError(f"cannot tell the format of {out!r}: use .png, .svg or .html")
    fig, plt = _figure(run, keys)
    try:
        if extension in (".png", ".svg"):
            fig.savefig(out, dpi=110)
        else:
            buffer = io.StringIO()
            fig.savefig(buffer, format="svg")
            with open(out, "w", encoding="utf-8") as handle:
                handle.write(_html_page(run, keys, buffer.getvalue()))
    finally:
        plt.close(fig)
    return out


def _fmt(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        return str(value)
    return f"{value:.6g}"


def _html_page(run: Any, keys: Sequence[str], svg: str) -> str:
    svg_body = svg[svg.index("<svg"):]  # drop the XML prolog: the SVG is inline
    started = _dt.datetime.fromtimestamp(run.start_time).isoformat(timespec="seconds")
    rows = []
    for key in keys:
        points = run.metrics(key)
        values = [p.value for p in points if not math.isnan(p.value)]
        last = _fmt(points[-1].value) if points else ""
        low = _fmt(min(values)) if values else ""
        high = _fmt(max(values)) if values else ""
        rows.append(f"<tr><td>{html.escape(key)}</td><td>{len(points)}</td><td>{last}</td><td>{low}</td><td>{high}</td></tr>")
    params = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in sorted(run.params.items())
    )
    title = html.escape(f"{run.name or run.id} · {run.experiment}")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}} th{{background:#f4f4f4}} svg{{max-width:100%;height:auto}}</style>
</head><body>
<h1>{title}</h1>
<p>run <code>{html.escape(run.id)}</code> · status <b>{html.escape(run.status)}</b> · started {started}</p>
<h2>Metrics</h2>
<table><tr><th>metric</th><th>points</th><th>last</th><th>min</th><th>max</th></tr>{''.join(rows)}</table>
{svg_body}
<h2>Params</h2>
<table><tr><th>param</th><th>value</th></tr>{params}</table>
</body></html>
"""
