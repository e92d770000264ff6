"""Real components the tests start (a browser, PostgreSQL, an S3 server, toolchains).

A missing component skips its tests with one clear line; under ``CI=true`` it is a failure
instead, so CI never goes green by skipping.
"""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str, how: str) -> None:
    """Skip (or fail under CI=true) because ``what`` is not available; ``how`` says how to get it."""
    message = f"{what} is not available ({how})"
    if in_ci():
        pytest.fail(f"CI=true: {message}", pytrace=False)
    pytest.skip(message)


def require_binary(path_or_name: str, how: str) -> str:
    """The absolute path of an executable, or skip/fail with one line."""
    found = path_or_name if os.path.isabs(path_or_name) and os.access(path_or_name, os.X_OK) else shutil.which(path_or_name)
    if not found:
        missing(path_or_name, how)
    return found


def require_module(name: str, how: str):
    """Import a Python module, or skip/fail with one line."""
    try:
        return __import__(name)
    except ImportError:
        missing(f"python module {name}", how)
