"""Helpers for tests (ours and users'): capture everything logged in memory and inspect it."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from . import _config
from ._exporter import flush_all
from .backends import memory
from .client import Client


class Capture:
    """What ``capture()`` yields: a Client on a private in-memory store, flushed on access."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.client = Client(uri)

    def flush(self, timeout: float = 10.0) -> bool:
        return flush_all(timeout)

    def runs(self, **kwargs: Any):
        self.flush()
        return self.client.runs(**kwargs)

    def run(self, run_id: str):
        self.flush()
        return self.client.run(run_id)

    def only_run(self):
        """The single run logged (fails clearly if there are several or none)."""
        runs = self.runs()
        if len(runs) != 1:
            raise AssertionError(f"expected exactly one run, found {len(runs)}: {runs}")
        return runs[0]

    def models(self, **kwargs: Any):
        self.flush()
        return self.client.models(**kwargs)


@contextlib.contextmanager
def capture(name: str = "capture", **config: Any) -> Iterator[Capture]:
    """Route logging to ``memory://NAME`` for the block (autolog settings otherwise kept)."""
    uri = f"memory://{name}"
    memory.reset(name)
    previous = _config.current()
    _config.set_current(_config.build_config(previous, backend=uri, **config))
    try:
        yield Capture(uri)
    finally:
        flush_all(10)
        _config.set_current(previous)


def reset(timeout: float = 10.0) -> None:
    """Back to a clean slate: patches reverted, open runs ended, exporters stopped, config from env."""
    from . import _autolog, _exporter, _run

    _autolog.autolog(disable=True)
    from . import _process_run

    _process_run.forget()
    for run in _run.open_runs():
        run.end("finished")
    _exporter.shutdown_all(timeout)
    with _exporter._registry_lock:
        _exporter._exporters.clear()  # a clean slate: the next run opens its backend afresh
    _config.set_current(_config.build_config())
    worker = sys.modules.get("modelbox_autolog.integrations._plot_worker")
    if worker is not None:
        worker.detach()  # it draws what it was given, then exits
    plots = sys.modules.get("modelbox_autolog.integrations._sklearn_plots")
    if plots is not None:
        plots.budget.reset()  # each test's fits start with the whole drawing budget
