"""``autolog()``: configure once, then bind each framework when (and if) it is imported."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from . import _config, _patching
from .integrations import SPECS, Spec
from .integrations.base import Integration, satisfies

log = logging.getLogger("modelbox_autolog")

_enabled: dict[str, Integration | None] = {}
_watch_lock = threading.RLock()  # name -> instance once its framework was imported


def _installed(spec: Spec) -> bool:
    return any(_find(module) for module in spec.modules)


def _find(module: str) -> bool:
    if module in sys.modules:
        return True
    try:  # the top-level package only: find_spec of a dotted name would import its parent
        return importlib.util.find_spec(module.partition(".")[0]) is not None
    except (ImportError, ValueError):
        return False


def _load_class(spec: Spec) -> type[Integration] | None:
    module_name, _, class_name = spec.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None  # we ship no integration for it (yet)
        raise
    return getattr(module, class_name)


def _third_party_specs() -> dict[str, Spec]:
    from ._plugins import integration_entry_points

    found: dict[str, Spec] = {}
    for entry in integration_entry_points(_config.current().journal_dir):
        try:
            cls = entry.load()  # an integration module must not import its framework
            found[entry.name] = Spec(entry.name, entry.value, tuple(cls.modules), cls.distribution, entry.name)
        except Exception as exc:
            _patching.safe("plugins", _patching.report_error, f"plugin {entry.name}", exc)
    return found


def _setup(spec: Spec, module: Any) -> None:
    """Post-import hook: bind ``spec``'s integration to the freshly imported ``module``."""
    try:
        instance = _enabled.get(spec.name)
        if instance is None:
            cls = _load_class(spec)
            if cls is None:
                return
            if cls.distribution and cls.requirement:
                from importlib.metadata import PackageNotFoundError, version

                try:
                    have = version(cls.distribution)
                except PackageNotFoundError:
                    have = getattr(module, "__version__", "0")
                if not satisfies(have, cls.requirement):
                    if not _config.current().silent:
                        log.warning(
                            "modelbox-autolog: %s %s is outside the supported range %s; not autologging it",
                            cls.distribution, have, cls.requirement,
                        )
                    return
            instance = cls()
            _enabled[spec.name] = instance
        module_name = getattr(module, "__name__", "")
        if module_name not in instance.set_up_modules:
            instance.set_up_modules.add(module_name)
            instance.setup(module)
    except Exception as exc:
        _patching.report_error(f"{spec.name}:setup", exc)


def autolog(
    frameworks: str | Iterable[str] | None = None,
    *,
    disable: bool = False,
    backend: str | None = None,
    experiment: str | None = None,
    log_models: bool = True,
    log_checkpoints: bool = True,
    log_every_n_steps: int | None = None,
    capture_console: bool = True,
    capture_env: bool = True,
    silent: bool = False,
    log_all_ranks: bool | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    max_model_mb: float | None = None,
    log_plots: bool = True,
    system_metrics_interval: float | None = _config.DEFAULT_SYSTEM_METRICS_INTERVAL_S,
    max_figures_per_run: int = _config.DEFAULT_MAX_FIGURES_PER_RUN,
) -> None:
    """Record every supported framework's training from now on (see API.md section 1).

    Never imports a framework: each is bound by a post-import hook, at once if it is already
    imported. Calling it again updates the configuration without patching twice;
    ``disable=True`` restores the originals of the named frameworks (all by default).
    ``log_plots``: keep the figures the script saves or shows, and scikit-learn's diagnostic
    plots; ``system_metrics_interval``: seconds between samples of CPU, memory, disk, network
    and GPU (``None`` disables); ``max_figures_per_run``: images kept per run.
    """
    names = _config.normalize_frameworks(frameworks)
    specs = dict(SPECS)
    selected = [specs[n] for n in (specs if names is None else names)]

    if disable:
        if names is None:  # everything off: the process console capture too (stored with its run)
            from ._run import _store_process_console

            _patching.safe("console", _store_process_console)
        for spec in selected:
            _patching.cancel_import_hooks(spec.name)
            instance = _enabled.pop(spec.name, None)
            if instance is not None:
                _patching.safe(f"{spec.name}:teardown", instance.teardown)
            _patching.revert(spec.name)
        if names is None:  # nothing records into the process-level run any more
            from . import _process_run

            _process_run.autolog_on = False
            _process_run.end_automatic()
        return

    if names is not None:
        for spec in selected:
            if not _installed(spec):
                if spec.note:
                    raise ImportError(f"autolog(frameworks=[{spec.name!r}]): {spec.distribution} is not installed; {spec.note}")
                raise ImportError(
                    f"autolog(frameworks=[{spec.name!r}]): {spec.distribution} is not installed; "
                    f"install it with: pip install 'modelbox-autolog[{spec.extra}]'"
                )
            if spec.note and _load_class_quietly(spec) is None:
                raise ImportError(f"autolog(frameworks=[{spec.name!r}]): {spec.note}")

    config = _config.build_config(
        _config.build_config(),
        backend=backend,
        experiment=experiment,
        log_models=log_models,
        log_checkpoints=log_checkpoints,
        log_every_n_steps=log_every_n_steps,
        capture_console=capture_console,
        capture_env=capture_env,
        silent=silent,
        log_all_ranks=log_all_ranks,
        options=options,
        max_model_mb=max_model_mb,
        log_plots=log_plots,
        system_metrics_interval=0.0 if system_metrics_interval is None else system_metrics_interval,
        max_figures_per_run=max_figures_per_run,
    )
    from .backends import check_uri

    check_uri(config.backend)
    _config.set_current(config)
    from . import _process_run
    from ._run import start_process_console

    _process_run.autolog_on = _process_run.autolog_on or bool(selected)  # frameworks=[]: configuration only
    start_process_console(config)  # the runs' console.log covers the process from here to exit
    warming = _warm_up(config)

    _watch(selected)
    from ._plugins import known_to_be_none

    if names is None and not known_to_be_none(config.journal_dir):
        # Looking for third-party integrations reads the installed distributions' entry points
        # (a few ms; skipped when an earlier process found none and nothing was installed since,
        # see _plugins): off the caller's thread. A module imported meanwhile is still bound,
        # because registering a hook fires at once for modules already imported.
        threading.Thread(target=_watch_third_party, name="modelbox-plugins", daemon=True).start()
    if warming is not None and any(instance is not None for instance in _enabled.values()):
        # A framework is bound already: a fit may start at once, so wait (briefly) for the store.
        # Otherwise importing the framework takes longer than opening the store: no wait.
        warming.wait(WARM_UP_WAIT_S)


def _watch(specs: Iterable[Spec]) -> None:
    with _watch_lock:
        for spec in specs:
            if spec.name in _enabled:
                continue  # already bound or waiting for its import: idempotent
            _enabled[spec.name] = None
            for module in spec.modules:
                _patching.when_imported(spec.name, module, lambda mod, spec=spec: _setup(spec, mod))


def _watch_third_party() -> None:
    try:
        _watch(s for name, s in _third_party_specs().items() if name not in SPECS)
    except Exception as exc:
        _patching.safe("plugins", _patching.report_error, "plugins", exc)


WARM_UP_WAIT_S = 0.05  # autolog() waits this long at most for the default backend to open


def _warm_up(config: _config.Config) -> threading.Event | None:
    """Open the default backend on the exporter thread now, so the first fit does not pay for it.

    The exporter is created and started on a helper thread, overlapping the binding of the
    frameworks; autolog() then waits up to ``WARM_UP_WAIT_S`` for the backend to be open, so a fit
    started right after it does not compete with that work for the GIL. A slow backend (a remote
    server, a busy disk) goes on opening in the background.
    """
    from ._exporter import exporter_for, shutdowns
    from ._run import is_logging_process
    from .backends import canonical_uri

    scheduled = shutdowns()
    ready = threading.Event()

    def start() -> None:
        exporter = exporter_for(canonical_uri(config.backend), config)
        exporter.warm_up(config.capture_env)
        exporter.opened.wait(WARM_UP_WAIT_S)
        from ._system_metrics import prepare

        prepare(config)  # psutil's import and NVML's start: on this thread, before the first fit

    def warm() -> None:
        try:
            if shutdowns() == scheduled:  # shut down meanwhile: a late warm-up must not start it again
                _patching.safe("warm-up", start)
        finally:
            ready.set()

    if is_logging_process(config):  # even creating the exporter costs ms: not on the caller's thread
        threading.Thread(target=warm, name="modelbox-warm-up", daemon=True).start()
        return ready
    return None


def _load_class_quietly(spec: Spec) -> type[Integration] | None:
    try:
        return _load_class(spec)
    except Exception:
        return None


def enabled_integrations() -> dict[str, bool]:
    """Which integrations autolog is bound to (True) or waiting for their import (False)."""
    return {name: instance is not None for name, instance in _enabled.items()}


def integration_class(framework: str) -> type[Integration] | None:
    spec = SPECS.get(framework) or _third_party_specs().get(framework)
    return _load_class_quietly(spec) if spec else None
