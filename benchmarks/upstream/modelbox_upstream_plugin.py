"""A pytest plugin for running a framework's own test suite with and without ``mbx.autolog()``.

Loaded with ``-p modelbox_upstream_plugin``. ``UPSTREAM_MODE=autolog`` calls ``mbx.autolog()``
into ``UPSTREAM_BACKEND`` before the first test (as a user's conftest would); every test's outcome
(passed, failed, error, skipped, xfailed, xpassed) is written to ``UPSTREAM_OUTCOMES`` as JSON.
"""

from __future__ import annotations

import json
import os

_outcomes: dict[str, str] = {}
_messages: dict[str, str] = {}


def pytest_configure(config):
    if os.environ.get("UPSTREAM_MODE") == "autolog":
        import modelbox_autolog as mbx

        mbx.autolog(backend=os.environ["UPSTREAM_BACKEND"], experiment="upstream", capture_console=False)


def pytest_runtest_logreport(report):
    node = report.nodeid
    if report.when == "setup" and report.failed:
        _outcomes[node] = "error"
    elif report.when == "setup" and report.skipped:
        _outcomes[node] = "xfailed" if hasattr(report, "wasxfail") else "skipped"
    elif report.when == "call":
        if hasattr(report, "wasxfail"):
            _outcomes[node] = "xpassed" if report.passed else "xfailed"
        else:
            _outcomes[node] = report.outcome
    elif report.when == "teardown" and report.failed and _outcomes.get(node) == "passed":
        _outcomes[node] = "error"
    if report.failed:
        _messages[node] = str(report.longrepr)[-4000:]


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("UPSTREAM_MODE") == "autolog":
        import modelbox_autolog as mbx

        mbx.flush(600)
    with open(os.environ["UPSTREAM_OUTCOMES"], "w") as handle:
        json.dump({"outcomes": _outcomes, "failures": _messages}, handle)
