"""modelbox-autolog: one line to make ML training observable.

    import modelbox_autolog as mbx
    mbx.autolog()
"""

from __future__ import annotations

from typing import Any

from ._autolog import autolog, enabled_integrations
from ._run import LoggedModel, NullRun, Run, active_run, flush, shutdown, start_run
from .backends import BackendError, NotFound
from .client import Client, RunView
from .entities import ChangeEvent, Experiment, MetricPoint, ModelInfo

__version__ = "0.1.0"


def stats() -> dict[str, dict[str, int]]:
    """Per backend URI: records written, journaled, replayed and dropped by this process."""
    from ._exporter import all_exporters

    return {e.uri: dict(e.stats) for e in all_exporters()}


def __getattr__(name: str) -> Any:  # lazy submodules: mbx.testing, mbx.integrations
    import importlib

    if name in ("testing", "integrations", "plots", "cli"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'modelbox_autolog' has no attribute {name!r}")


__all__ = [
    "BackendError", "ChangeEvent", "Client", "Experiment", "LoggedModel", "MetricPoint", "ModelInfo", "NotFound",
    "NullRun", "Run", "RunView", "active_run", "autolog", "enabled_integrations", "flush", "shutdown", "start_run", "stats",
]
