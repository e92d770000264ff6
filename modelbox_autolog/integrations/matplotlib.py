"""matplotlib autologging: figures a script saves (``Figure.savefig``, ``pyplot.savefig``) or shows
(``pyplot.show``) are kept with the active run (else the process-level run) as PNG artifacts of
kind ``plot``, with an ``image_logged`` event, at most ``max_figures_per_run`` per run.

- A figure saved as a PNG file is kept as a copy of that file (the user's file is left as it
  is); saved in another format or to a file object, it is rendered once more as PNG (100 dpi).
  Named by the file name; a shown figure by its title (``suptitle``, else the first axes' title),
  else ``figure<N>``. The step is the last one the run saw through TensorBoard or
  ``mbx.log_metric``, when there was one (``name-step<N>.png``).
- ``pyplot.show()`` keeps every open figure not kept since it last changed (same axes, artists,
  titles and limits: a figure saved and then shown is kept once, and figures left open across
  several ``show()`` calls of a non-interactive backend once each); under an interactive
  backend, before the window opens.
- ``autolog(log_plots=False)`` keeps none. Rendering happens on the caller's thread (matplotlib
  is not thread-safe), only for figures that are not already a PNG file, and not at all once the
  run's cap is reached.
"""

from __future__ import annotations

import io
import os
import weakref
from collections.abc import Generator
from typing import Any

from .._patching import Call, entered, report_error
from .._process_run import target_run
from .._run import NullRun, Run
from ._images import has_room, keep_image, private_copy
from .base import Integration

MPL_SAVE = "matplotlib-save"
MPL_SHOW = "matplotlib-show"
RENDER_DPI = 100


def figure_title(figure: Any) -> str | None:
    suptitle = getattr(figure, "_suptitle", None)
    if suptitle is not None and suptitle.get_text().strip():
        return suptitle.get_text().strip()
    for axes in figure.get_axes():
        title = axes.get_title().strip()
        if title:
            return title
    return None


def content_signature(figure: Any) -> tuple:
    """What a figure shows, roughly: its axes, their artists, titles and limits (cheap, no drawing).

    Saving a figure marks it stale (matplotlib restores its dpi and colours), so staleness cannot
    tell whether it changed since it was kept; this can, for every change but data edited in place
    without a new autoscale.
    """
    suptitle = getattr(figure, "_suptitle", None)
    parts: list[Any] = [suptitle.get_text() if suptitle is not None else None]
    for ax in figure.get_axes():
        parts.append((id(ax), len(ax.lines), len(ax.patches), len(ax.collections), len(ax.images), len(ax.texts),
                      ax.get_title(), tuple(ax.get_xlim()), tuple(ax.get_ylim())))
    return tuple(parts)


def _is_png(fname: Any, fmt: Any) -> bool:
    if fmt:
        return str(fmt).lower() == "png"
    ext = os.path.splitext(os.fspath(fname))[1].lower()
    if ext:
        return ext == ".png"
    import matplotlib

    return str(matplotlib.rcParams.get("savefig.format", "png")).lower() == "png"


class MatplotlibIntegration(Integration):
    name = "matplotlib"
    modules = ("matplotlib.figure", "matplotlib.pyplot")
    distribution = "matplotlib"
    requirement = ">=3.5"

    def __init__(self) -> None:
        super().__init__()
        self._kept: weakref.WeakKeyDictionary[Any, tuple] = weakref.WeakKeyDictionary()  # figure -> what it showed

    def setup(self, module: Any) -> None:
        if module.__name__ == "matplotlib.figure":
            self.patch(module.Figure, "savefig", self._savefig_hook, group=MPL_SAVE)
        elif module.__name__ == "matplotlib.pyplot":
            self.patch(module, "show", self._show_hook, group=MPL_SHOW)

    def _wanted(self) -> Run | None:
        if not self.config.log_plots:
            return None
        run = target_run()
        return None if run is None or isinstance(run, NullRun) else run  # non-zero ranks: nothing to render

    # ------------------------------------------------------------------ savefig
    def _savefig_hook(self, call: Call) -> Generator[Any, Any, None]:
        yield None
        figure = call.instance
        run = self._wanted()
        if run is None or figure is None:
            return
        fname = call.argument("fname")
        fmt = call.kwargs.get("format")
        step = getattr(run, "_mbx_step_hint", None)
        if isinstance(fname, (str, os.PathLike)):
            name = os.path.splitext(os.path.basename(os.fspath(fname)))[0] or figure_title(figure) or "figure"
        else:
            name = figure_title(figure) or f"figure{getattr(figure, 'number', '')}"
        if not has_room(run, name, "savefig"):
            return
        if isinstance(fname, (str, os.PathLike)):
            path = os.fspath(fname)
            if _is_png(fname, fmt) and not os.path.splitext(path)[1]:
                path += ".png"  # matplotlib added the extension of the default format
            if _is_png(fname, fmt) and os.path.isfile(path):
                copy = private_copy(path)
                if copy is not None:
                    keep_image(run, name, png_file=copy, step=step, source="savefig")
                    self._kept[figure] = content_signature(figure)
                    return
        png = self._render(figure)
        if png is not None:
            keep_image(run, name, png=png, step=step, source="savefig")
            self._kept[figure] = content_signature(figure)

    def _render(self, figure: Any) -> bytes | None:
        buffer = io.BytesIO()
        with entered(MPL_SAVE):  # our own savefig is not the user's
            figure.savefig(buffer, format="png", dpi=RENDER_DPI)
        return buffer.getvalue()

    # ------------------------------------------------------------------ show
    def _show_hook(self, call: Call) -> Generator[Any, Any, None]:
        try:
            self._keep_open_figures()
        except Exception as exc:
            report_error("matplotlib:show", exc)
        yield None

    def _keep_open_figures(self) -> None:
        run = self._wanted()
        if run is None:
            return
        from matplotlib._pylab_helpers import Gcf

        step = getattr(run, "_mbx_step_hint", None)
        for manager in Gcf.get_all_fig_managers():
            figure = manager.canvas.figure
            if self._kept.get(figure) == content_signature(figure):
                continue  # kept already and unchanged since
            name = figure_title(figure) or f"figure{manager.num}"
            if not has_room(run, name, "show"):
                return
            png = self._render(figure)
            if png is not None:
                keep_image(run, name, png=png, step=step, source="show")
                self._kept[figure] = content_signature(figure)
