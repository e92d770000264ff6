"""Headless Chromium for the browser tests: one browser per test session, a fresh page per test.

The fixtures are registered once, by the root ``tests/conftest.py``: a session fixture defined
(or imported) in two places is two fixtures, and a second ``sync_playwright()`` started while the
first one's event loop runs fails ("Playwright Sync API inside the asyncio loop").
"""

from __future__ import annotations

import os

import pytest

from tests._components import require_binary, require_module

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


@pytest.fixture(scope="session")
def browser():
    require_binary("/usr/bin/chromium", "apt-get install chromium (make test installs it when root)")
    require_module("playwright.sync_api", "pip install playwright (in the dev extra)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> str:
    """Screenshots land in test-artifacts/ui (gitignored) for a person to look at."""
    folder = os.path.join(ROOT, "test-artifacts", "ui")
    os.makedirs(folder, exist_ok=True)
    return folder


@pytest.fixture
def page(browser, artifacts_dir, request):
    """A fresh browser page that records console errors, page errors and dialogs (none expected)."""
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    pg = context.new_page()
    pg.problems = []
    pg.dialogs = []
    pg.on("pageerror", lambda exc: pg.problems.append(f"page error: {exc}"))
    pg.on("console", lambda msg: pg.problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)

    pg.confirm_next = False  # a test that expects one confirm() sets this

    def on_dialog(dialog):
        if pg.confirm_next and dialog.type == "confirm":
            pg.confirm_next = False
            dialog.accept()
            return
        pg.dialogs.append(dialog.message)
        dialog.dismiss()

    pg.on("dialog", on_dialog)
    yield pg
    try:
        pg.screenshot(path=os.path.join(artifacts_dir, f"{request.node.name}-end.png"), full_page=True)
    except Exception:
        pass
    context.close()
