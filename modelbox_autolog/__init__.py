"""modelbox-autolog: one line to make ML training observable.

    import modelbox_autolog as mbx
    mbx.autolog()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import Client, RunView
    from .entities import ChangeEvent, Experiment, MetricPoint, ModelInfo

from ._autolog import autolog, enabled_integrations
from ._process_run import active_run, log_artifact, log_metric, log_metrics, log_param, log_params
from ._run import LoggedModel, NullRun, Run, flush, shutdown, start_run
from .backends import BackendError, NotFound, Refused

_LAZY = {  # read-side names, imported on first use so that `import` + `autolog()` stay cheap
    "Client": "client", "RunView": "client",
    "ChangeEvent": "entities", "Experiment": "entities", "MetricPoint": "entities", "ModelInfo": "entities",
    "DeleteReport": "entities",
    "SearchError": "search",
}

__version__ = "0.1.0"


def stats() -> dict[str, dict[str, int]]:
    """Per backend URI: records written, journaled, replayed and dropped by this process."""
    from ._exporter import all_exporters

    return {e.uri: dict(e.stats) for e in all_exporters()}


def __getattr__(name: str) -> Any:  # lazy names and submodules: mbx.Client, mbx.testing...
    import importlib

    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in ("testing", "integrations", "plots", "cli"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'modelbox_autolog' has no attribute {name!r}")


__all__ = [
    "BackendError", "ChangeEvent", "Client", "DeleteReport", "Experiment", "LoggedModel", "MetricPoint", "ModelInfo", "NotFound",
    "NullRun", "Refused", "Run", "RunView", "SearchError", "active_run", "autolog", "enabled_integrations", "flush", "log_artifact",
    "log_metric", "log_metrics", "log_param", "log_params", "shutdown", "start_run", "stats",
]
