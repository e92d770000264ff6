"""Images kept with a run (matplotlib figures, TensorBoard images, diagnostic plots), at most
``max_figures_per_run`` per run, so that a figure drawn every batch cannot flood the store.

The training thread only hands over PNG bytes or a private copy of the user's PNG file; the
file is written and stored by the exporter thread. Each kept image is an artifact (kind
``plot`` or ``image``) and an ``image_logged`` event (artifact, title, step, source); images past the cap
are counted in the run's ``images_skipped`` tag, with one ``image_limit_reached`` event.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
import weakref
from typing import Any

from .._exporter import Deferred
from .._records import Artifact, new_id
from .._run import NullRun, Run

log = logging.getLogger("modelbox_autolog")

_UNSAFE = re.compile(r"[^A-Za-z0-9._/=+-]+")
_MAX_NAME_CHARS = 120


class _RunImages:
    __slots__ = ("kept", "skipped", "names")

    def __init__(self) -> None:
        self.kept = 0
        self.skipped = 0
        self.names: dict[str, int] = {}


_state: weakref.WeakKeyDictionary[Run, _RunImages] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def clean_name(text: str, default: str = "figure") -> str:
    """A readable artifact name from a title, tag or file name (relative, no odd characters)."""
    name = _UNSAFE.sub("_", str(text).strip()).strip("._/")
    name = re.sub(r"/+", "/", name).replace("/./", "/")
    parts = [p for p in name.split("/") if p not in ("", ".", "..")]
    return "/".join(parts)[:_MAX_NAME_CHARS].strip("/") or default


def _reserve(run: Run, base: str) -> tuple[str | None, int]:
    """(artifact name, skipped so far); name None when the run's image budget is spent."""
    cap = run.config.max_figures_per_run
    with _lock:
        state = _state.get(run)
        if state is None:
            state = _state[run] = _RunImages()
        if state.kept >= cap:
            state.skipped += 1
            return None, state.skipped
        state.kept += 1
        seen = state.names.get(base, 0)
        state.names[base] = seen + 1
    return (base if seen == 0 else f"{base}-{seen + 1}") + ".png", 0


def has_room(run: Run, name: str = "", source: str = "") -> bool:
    """Whether the run may keep one more image; a refusal is counted as a skipped image."""
    with _lock:
        state = _state.get(run)
        if state is None or state.kept < run.config.max_figures_per_run:
            return True
        state.skipped += 1
        skipped = state.skipped
    _skipped(run, skipped, name, source)
    return False


def keep_image(
    run: Run, name: str, *, png: bytes | None = None, png_file: str | None = None, pixels: Any = None,
    step: int | None = None, source: str, kind: str = "plot", prefix: str = "",
) -> str | None:
    """Keep one image: PNG bytes, a PNG file of ours (deleted once stored), or ``pixels`` (a uint8
    HxWxC array the caller no longer changes, encoded on the exporter thread). Returns the artifact
    name, or None past the run's cap."""
    if isinstance(run, NullRun):
        return None  # a non-logging rank
    base = prefix + clean_name(name) + (f"-step{int(step)}" if step is not None else "")
    artifact_name, skipped = _reserve(run, base)
    if artifact_name is None:
        _skipped(run, skipped, name, source)
        return None
    run_id = run.id
    if png is not None or pixels is not None:
        def produce(data: bytes | None = png, name: str = artifact_name) -> list[Any]:
            folder = tempfile.mkdtemp(prefix="modelbox-image-")
            path = os.path.join(folder, os.path.basename(name))
            if data is None:
                encode_png(pixels, path)
            else:
                with open(path, "wb") as handle:
                    handle.write(data)
            return [Artifact(new_id(), run_id, name, path, kind, True)]

        run._submit(Deferred(produce, background=True))
    elif png_file is not None:
        run.log_artifact(png_file, name=artifact_name, kind=kind, _staged=True)
    else:
        raise ValueError("keep_image needs png bytes or a png_file")
    run.log_event("image_logged", artifact=artifact_name, title=str(name)[:200], step=step, source=source, kind=kind)
    return artifact_name


def encode_png(pixels: Any, path: str) -> None:
    """A uint8 HxW, HxWx1, HxWx3 or HxWx4 array as a PNG file (Pillow)."""
    from PIL import Image

    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[:, :, 0]
    Image.fromarray(pixels).save(path, format="PNG")


def _skipped(run: Run, skipped: int, name: str, source: str) -> None:
    if skipped == 1:
        cap = run.config.max_figures_per_run
        run.log_event("image_limit_reached", limit=cap, first_skipped=str(name)[:200], source=source)
        if not run.config.silent:
            log.warning(
                "modelbox-autolog: run %s kept %d images (max_figures_per_run); further images are counted in its "
                "'images_skipped' tag, not stored", run.id, cap,
            )
    run.set_tag("images_skipped", skipped)


def kept(run: Run) -> int:
    with _lock:
        state = _state.get(run)
        return state.kept if state is not None else 0


def private_copy(path: str) -> str | None:
    """A copy of the user's PNG file that the exporter may delete (the user's file is left as it is)."""
    import shutil

    folder = tempfile.mkdtemp(prefix="modelbox-image-")
    target = os.path.join(folder, os.path.basename(path) or "figure.png")
    try:
        shutil.copyfile(path, target)
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)
        return None
    return target
