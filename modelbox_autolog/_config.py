"""One validated configuration: keyword arguments > ``MODELBOX_*`` environment > defaults."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

DEFAULT_BACKEND = "sqlite:///./modelbox-runs/modelbox.db"
ALL_FRAMEWORKS = (
    "pytorch", "lightning", "keras", "sklearn", "xgboost", "lightgbm", "catboost", "fastai", "megengine",
    "tensorboard", "matplotlib", "transformers",
)
DEFAULT_SYSTEM_METRICS_INTERVAL_S = 10.0
DEFAULT_MAX_FIGURES_PER_RUN = 100


def testing_mode() -> bool:
    """Under ``MODELBOX_AUTOLOG_TESTING=1`` our own errors are re-raised instead of swallowed."""
    return os.environ.get("MODELBOX_AUTOLOG_TESTING", "") not in ("", "0", "false", "False")


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() not in ("0", "false", "no", "off")


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name}={raw!r} is not a number") from exc


def default_experiment() -> str:
    """The running script's file stem, as a user would name the experiment by hand."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv and sys.argv[0] else "")
    stem = os.path.splitext(os.path.basename(path))[0] if path else ""
    if not stem or stem in ("-c", "__main__", "ipykernel_launcher", "pytest", "-m"):
        return "default"
    return stem


def default_journal_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "modelbox-autolog", "journal")


@dataclass(frozen=True, slots=True)
class Config:
    backend: str = DEFAULT_BACKEND
    experiment: str | None = None  # None: resolved at run start (script stem)
    log_models: bool = True
    log_checkpoints: bool = True
    log_every_n_steps: int | None = None
    capture_console: bool = True
    capture_env: bool = True
    silent: bool = False
    log_all_ranks: bool = False  # distributed: by default only global rank 0 logs
    journal_dir: str = field(default_factory=default_journal_dir)
    queue_capacity: int = 250_000  # records held in memory before back-pressure/spill
    batch_size: int = 20_000  # most records written in one backend call
    flush_interval_s: float = 0.25
    shutdown_timeout_s: float = 10.0
    max_model_mb: float = 1024.0  # an autologged model file above this is recorded as an event, not copied
    heartbeat_s: float = 10.0  # the exporter renews its open runs' lease this often (lease: 3x, at least 30 s)
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # per-integration knobs
    log_plots: bool = True  # figures of the user's and diagnostic plots (scikit-learn)
    system_metrics_interval: float = DEFAULT_SYSTEM_METRICS_INTERVAL_S  # seconds; 0 = no system metrics
    max_figures_per_run: int = DEFAULT_MAX_FIGURES_PER_RUN  # images kept per run (figures, TensorBoard images)

    def experiment_name(self) -> str:
        return self.experiment or default_experiment()

    def option(self, integration: str, name: str, default: Any = None) -> Any:
        return self.options.get(integration, {}).get(name, default)


def build_config(base: Config | None = None, **overrides: Any) -> Config:
    """Merge keyword overrides (``None`` = not given) over env over ``base``/defaults; validate."""
    env_defaults = {
        "backend": os.environ.get("MODELBOX_BACKEND") or DEFAULT_BACKEND,
        "experiment": os.environ.get("MODELBOX_EXPERIMENT") or None,
        "log_all_ranks": _env_bool("MODELBOX_LOG_ALL_RANKS", False),
        "journal_dir": os.environ.get("MODELBOX_JOURNAL_DIR") or default_journal_dir(),
        "shutdown_timeout_s": _env_float("MODELBOX_SHUTDOWN_TIMEOUT", 10.0),
        "heartbeat_s": _env_float("MODELBOX_HEARTBEAT_S", 10.0),
        "silent": _env_bool("MODELBOX_SILENT", False),
        "max_model_mb": _env_float("MODELBOX_MAX_MODEL_MB", 1024.0),
    }
    config = base or Config(**env_defaults)
    given = {k: v for k, v in overrides.items() if v is not None}
    if "options" in given:
        given["options"] = {str(k): dict(v) for k, v in given["options"].items()}
    config = replace(config, **given)
    validate(config)
    return config


def validate(config: Config) -> None:
    if not isinstance(config.backend, str) or "://" not in config.backend:
        raise ValueError(
            f"backend {config.backend!r} is not a URI; use sqlite:///PATH, file:///DIR, grpc://HOST:PORT or memory://"
        )
    n = config.log_every_n_steps
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise ValueError(f"log_every_n_steps must be None or a positive int, not {n!r}")
    if not isinstance(config.max_model_mb, (int, float)) or isinstance(config.max_model_mb, bool) or not config.max_model_mb > 0:
        raise ValueError(f"max_model_mb must be a positive number of megabytes, not {config.max_model_mb!r}")
    interval = config.system_metrics_interval
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval < 0 or interval != interval:
        raise ValueError(f"system_metrics_interval must be None or a positive number of seconds, not {interval!r}")
    if 0 < interval < 0.01:
        raise ValueError(f"system_metrics_interval {interval!r} is too short; use at least 0.01 s")
    cap = config.max_figures_per_run
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 0:
        raise ValueError(f"max_figures_per_run must be an int >= 0, not {cap!r}")
    if config.queue_capacity < 1000:
        raise ValueError("queue_capacity must be at least 1000")
    if config.batch_size < 1:
        raise ValueError("batch_size must be positive")
    if not config.heartbeat_s > 0:
        raise ValueError("heartbeat_s (MODELBOX_HEARTBEAT_S) must be a positive number of seconds")


def normalize_frameworks(frameworks: str | Iterable[str] | None) -> tuple[str, ...] | None:
    if frameworks is None:
        return None
    names = (frameworks,) if isinstance(frameworks, str) else tuple(frameworks)
    unknown = [n for n in names if n not in ALL_FRAMEWORKS]
    if unknown:
        raise ValueError(f"unknown framework(s) {unknown}; choose from {', '.join(ALL_FRAMEWORKS)}")
    return names


_current = Config()
_configured = False


def current() -> Config:
    """The active config (autolog's, or environment defaults before autolog was called)."""
    global _current, _configured
    if not _configured:
        _current = build_config()
        _configured = True
    return _current


def set_current(config: Config) -> None:
    global _current, _configured
    _current = config
    _configured = True
