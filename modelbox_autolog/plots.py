"""Metric plots of runs: a PNG or SVG (matplotlib) or a self-contained HTML page (inline SVG,
no scripts or links to fetch).

``plot_run`` draws one run (the metrics given on one chart, or every metric with related ones
such as ``train_loss``/``val_loss`` together); ``compare_runs`` draws several runs, one chart
per metric and one line per run, with a table of their params that marks what differs.
Steps and epochs get integer ticks; NaN and infinite values are marked at the chart's edge
(they have no place on the axis); metrics with a single value are listed in a table instead.
"""

from __future__ import annotations

import datetime as _dt
import html
import io
import math
import os
import re
from collections.abc import Sequence
from typing import Any

from ._values import display

_PREFIXES = re.compile(r"^(train|training|val|valid|validation|test|eval)[_./-]")
FORMATS = (".png", ".svg", ".html", ".htm")


def metric_group(key: str) -> str:
    """Related metrics share a chart: ``train_loss`` and ``val_loss`` -> ``loss`` (as in the UI)."""
    return _PREFIXES.sub("", key)


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    if math.isnan(value) or math.isinf(value):
        return str(value)
    return f"{value:.6g}"


def _output_kind(out: str) -> str:
    extension = os.path.splitext(out)[1].lower()
    if extension not in FORMATS:
        raise ValueError(f"cannot tell the format of {out!r}: use .png, .svg or .html")
    return extension


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _draw_series(axis: Any, points: Sequence[Any], label: str, color: Any = None) -> bool:
    """One line; NaN/inf points marked at the top (NaN, +inf) or bottom (-inf) edge. True if any was."""
    steps = [p.step for p in points]
    finite = [(p.step, p.value) for p in points if math.isfinite(p.value)]
    many = len(points) > 50
    line = axis.plot([s for s, _ in finite], [v for _, v in finite], marker=None if many else "o", markersize=3,
                     linewidth=1.5, label=label, color=color)[0]
    marked = False
    edge = axis.get_xaxis_transform()  # x in data, y in axes fractions
    for kind, test, y, marker in (("NaN", math.isnan, 0.97, "x"), ("+inf", lambda v: v == math.inf, 0.97, "^"),
                                  ("-inf", lambda v: v == -math.inf, 0.03, "v")):
        xs = [p.step for p in points if test(p.value)]
        if xs:
            marked = True
            axis.scatter(xs, [y] * len(xs), transform=edge, marker=marker, color=line.get_color(), s=36, zorder=5,
                         label=f"{label}: {kind} ({len(xs)})", clip_on=False)
    if steps:
        _fit_steps(axis, steps)
    return marked


def _fit_steps(axis: Any, steps: Sequence[int]) -> None:
    """Integer ticks (steps and epochs are whole numbers), and every step in view, including
    those whose value is NaN or infinite (drawn on the edge, outside the data limits)."""
    from matplotlib.ticker import MaxNLocator

    seen = getattr(axis, "_modelbox_steps", None) or [math.inf, -math.inf]
    low, high = min(seen[0], min(steps)), max(seen[1], max(steps))
    axis._modelbox_steps = [low, high]
    pad = max((high - low) * 0.03, 0.5)
    axis.set_xlim(low - pad, high + pad)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))


def _charted(run: Any, keys: Sequence[str]) -> tuple[list[str], list[str]]:
    """(keys with a series to chart, keys with a single value for the table)."""
    summaries = {}
    try:
        summaries = run._client.metric_summaries([run.id], list(keys)).get(run.id, {})
    except Exception:  # noqa: BLE001 - a store without summaries: count the points
        pass
    counts = {k: summaries[k].count if k in summaries else len(run.metrics(k)) for k in keys}
    return [k for k in keys if counts[k] > 1], [k for k in keys if counts[k] <= 1]


def plot_run(run: Any, keys: Sequence[str] | None, out: str | os.PathLike[str], together: bool = False) -> str:
    """Write the metrics ``keys`` (all when None) of ``run`` (a RunView) to ``out`` (.png, .svg
    or .html); ``together`` draws the given keys on one chart."""
    out = os.fspath(out)
    kind = _output_kind(out)
    available = run.metric_keys()
    keys = list(keys) if keys else available
    missing = [k for k in keys if k not in available]
    if missing:
        raise KeyError(f"run {run.id} has no metric {missing[0]!r}; it has: {', '.join(available) or 'none'}")
    if not keys:
        raise KeyError(f"run {run.id} has no metrics to plot")
    series, single = _charted(run, keys)
    if together:
        series, single = keys, []
    groups: dict[str, list[str]] = {}
    for key in series:
        groups.setdefault("together" if together else metric_group(key), []).append(key)
    plt = _pyplot()
    rows = len(groups) + (1 if single and kind != ".html" and groups else 0)
    fig, axes = plt.subplots(max(rows, 1), 1, figsize=(8, 2.8 * max(rows, 1)), squeeze=False)
    try:
        for axis, members in zip(axes[:, 0], groups.values(), strict=False):
            for key in members:
                _draw_series(axis, run.metrics(key), key)
            axis.set_title(", ".join(members), fontsize=10, loc="left")
            axis.set_xlabel("step")
            axis.grid(True, alpha=0.3)
            if len(members) > 1 or axis.get_legend_handles_labels()[1] != members:
                axis.legend(fontsize=8)
        single_rows = [(k, _fmt(run.metrics(k)[-1].value)) for k in single]
        if single_rows and kind != ".html":
            axis = axes[-1, 0]
            axis.axis("off")
            axis.set_title("single values", fontsize=10, loc="left")
            table = axis.table(cellText=single_rows, colLabels=["metric", "value"], loc="upper left", cellLoc="left")
            table.auto_set_font_size(False)
            table.set_fontsize(9)
        fig.suptitle(f"run {run.name or ''} {run.id[:8]} ({run.experiment})", fontsize=11)
        fig.tight_layout()
        _save(fig, out, kind, lambda svg: _run_page(run, keys, single_rows, svg))
    finally:
        plt.close(fig)
    return out


def compare_runs(runs: Sequence[Any], keys: Sequence[str] | None, out: str | os.PathLike[str]) -> str:
    """One chart per metric with one line per run (``keys``: default the metrics every run has,
    else those any has), and the runs' params side by side, differences marked."""
    out = os.fspath(out)
    kind = _output_kind(out)
    per_run = {r.id: set(r.metric_keys()) for r in runs}
    if keys:
        missing = [(r, k) for k in keys for r in runs if k not in per_run[r.id]]
        if len(missing) == len(keys) * len(runs):
            raise KeyError(f"none of the runs has metric {keys[0]!r}")
        keys = list(keys)
    else:
        shared = set.intersection(*per_run.values()) if per_run else set()
        keys = sorted(shared or set.union(*per_run.values()))
    if not keys:
        raise KeyError("the runs have no metrics to compare")
    labels = _run_labels(runs)
    params, differing = params_table(runs)
    plt = _pyplot()
    table_rows = params if kind != ".html" else []
    height = 2.8 * len(keys) + (0.3 * (len(table_rows) + 2) if table_rows else 0)
    fig = plt.figure(figsize=(9, height))
    grid = fig.add_gridspec(len(keys) + (1 if table_rows else 0), 1,
                            height_ratios=[2.8] * len(keys) + ([0.3 * (len(table_rows) + 2)] if table_rows else []))
    try:
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for number, key in enumerate(keys):
            axis = fig.add_subplot(grid[number, 0])
            for index, r in enumerate(runs):
                if key in per_run[r.id]:
                    _draw_series(axis, r.metrics(key), labels[r.id], colors[index % len(colors)])
            axis.set_title(key, fontsize=10, loc="left")
            axis.set_xlabel("step")
            axis.grid(True, alpha=0.3)
            axis.legend(fontsize=8)
        if table_rows:
            axis = fig.add_subplot(grid[len(keys), 0])
            axis.axis("off")
            axis.set_title("params (differences highlighted)", fontsize=10, loc="left")
            cells = [[key, *(_cut(v) for v in values)] for key, values in table_rows]
            table = axis.table(cellText=cells, colLabels=["param", *(labels[r.id] for r in runs)], loc="upper left",
                               cellLoc="left")
            table.auto_set_font_size(False)
            table.set_fontsize(9)
            for row, (key, _values) in enumerate(table_rows, start=1):
                if key in differing:
                    for column in range(len(runs) + 1):
                        table[row, column].set_facecolor("#fff2b3")
        fig.suptitle(f"{len(runs)} runs compared", fontsize=11)
        fig.tight_layout()
        _save(fig, out, kind, lambda svg: _compare_page(runs, labels, keys, params, differing, svg))
    finally:
        plt.close(fig)
    return out


def _run_labels(runs: Sequence[Any]) -> dict[str, str]:
    names = [r.name or r.id[:8] for r in runs]
    return {r.id: (f"{name} ({r.id[:6]})" if names.count(name) > 1 else name) for r, name in zip(runs, names, strict=True)}


def params_table(runs: Sequence[Any]) -> tuple[list[tuple[str, list[str]]], set[str]]:
    """([(param, [value per run])], the params whose values differ), values printed one way."""
    keys = sorted({k for r in runs for k in r.params})
    rows = [(k, [display(r.params[k]) if k in r.params else "" for r in runs]) for k in keys]
    return rows, {k for k, values in rows if len(set(values)) > 1}


def _cut(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _save(fig: Any, out: str, kind: str, page) -> None:
    if kind in (".png", ".svg"):
        fig.savefig(out, dpi=110)
        return
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    svg = buffer.getvalue()
    with open(out, "w", encoding="utf-8") as handle:
        handle.write(page(svg[svg.index("<svg"):]))  # drop the XML prolog: the SVG is inline


_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222} table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;max-width:40em;overflow-wrap:anywhere} th{background:#f4f4f4}
tr.diff td{background:#fff2b3} svg{max-width:100%;height:auto} .nonfinite{color:#b00}"""


def _page(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title><style>{_STYLE}</style></head><body>
<h1>{title}</h1>
{body}
</body></html>
"""


def _cell(value: str) -> str:
    escaped = html.escape(value)
    return f'<span class="nonfinite">{escaped}</span>' if value in ("nan", "inf", "-inf") else escaped


def _run_page(run: Any, keys: Sequence[str], single: list[tuple[str, str]], svg: str) -> str:
    started = _dt.datetime.fromtimestamp(run.start_time).isoformat(timespec="seconds")
    rows = []
    for key in keys:
        points = run.metrics(key)
        values = [p.value for p in points if not math.isnan(p.value)]
        rows.append(f"<tr><td>{html.escape(key)}</td><td>{len(points)}</td><td>{_cell(_fmt(points[-1].value) if points else '')}"
                    f"</td><td>{_cell(_fmt(min(values)) if values else '')}</td><td>{_cell(_fmt(max(values)) if values else '')}</td>"
                    f"<td>{sum(1 for p in points if not math.isfinite(p.value)) or ''}</td></tr>")
    params = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(display(v))}</td></tr>"
                     for k, v in sorted(run.params.items()))
    single_table = ("<h2>Single values</h2><table><tr><th>metric</th><th>value</th></tr>"
                    + "".join(f"<tr><td>{html.escape(k)}</td><td>{_cell(v)}</td></tr>" for k, v in single) + "</table>"
                    if single else "")
    body = (f"<p>run <code>{html.escape(run.id)}</code> · status <b>{html.escape(run.status)}</b> · started {started}</p>"
            "<h2>Metrics</h2><table><tr><th>metric</th><th>points</th><th>last</th><th>min</th><th>max</th>"
            f"<th>NaN/inf</th></tr>{''.join(rows)}</table>{svg}{single_table}"
            f"<h2>Params</h2><table><tr><th>param</th><th>value</th></tr>{params}</table>")
    return _page(html.escape(f"{run.name or run.id} · {run.experiment}"), body)


def _compare_page(runs: Sequence[Any], labels: dict[str, str], keys: Sequence[str], params: list[tuple[str, list[str]]],
                  differing: set[str], svg: str) -> str:
    head = "".join(f"<th>{html.escape(labels[r.id])}<br><code>{html.escape(r.id[:12])}</code></th>" for r in runs)
    latest = []
    for key in keys:
        cells = []
        for r in runs:
            points = r.metrics(key) if key in r.metric_keys() else []
            cells.append(f"<td>{_cell(_fmt(points[-1].value)) if points else ''}</td>")
        latest.append(f"<tr><td>{html.escape(key)}</td>{''.join(cells)}</tr>")
    diff = ' class="diff"'
    param_rows = "".join(
        f"<tr{diff if k in differing else ''}><td>{html.escape(k)}</td>"
        + "".join(f"<td>{html.escape(v)}</td>" for v in values) + "</tr>" for k, values in params)
    body = (f"{svg}<h2>Latest values</h2><table><tr><th>metric</th>{head}</tr>{''.join(latest)}</table>"
            f"<h2>Params</h2><p>{len(differing)} of {len(params)} differ (highlighted).</p>"
            f"<table><tr><th>param</th>{head}</tr>{param_rows}</table>")
    return _page(html.escape(f"{len(runs)} runs compared"), body)
