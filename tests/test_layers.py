"""Imports flow one way: the read side never reaches into the write side, the UI never into a store."""

from __future__ import annotations

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "modelbox_autolog"


def imported_modules(path: pathlib.Path) -> set[str]:
    """Every module ``path`` imports (module level or inside functions), as dotted names under the package."""
    relative_to = path.relative_to(PACKAGE.parent).with_suffix("").parts
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(relative_to[: len(relative_to) - node.level])
                if path.name == "__init__.py":
                    base = list(relative_to[: len(relative_to) - node.level + 1])
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_client_does_not_import_autolog():
    assert not {m for m in imported_modules(PACKAGE / "client.py") if m.startswith("modelbox_autolog._autolog")}


def test_run_does_not_import_client():
    assert "modelbox_autolog.client" not in imported_modules(PACKAGE / "_run.py")


def test_wire_format_takes_name_checks_from_the_low_floor():
    modules = imported_modules(PACKAGE / "proto" / "convert.py")
    assert "modelbox_autolog._names" in modules
    assert not {m for m in modules if m.startswith("modelbox_autolog.backends")}


def test_loader_registry_finds_shipped_loaders_without_autolog():
    from modelbox_autolog.integrations.loaders import model_loader, register_loader

    loader = model_loader("sklearn")
    assert loader is not None and loader.__name__ == "load_model"
    assert model_loader("no-such-framework") is None
    register_loader("no-such-framework", lambda folder, info: ("loaded", folder))
    assert model_loader("no-such-framework")("x", None) == ("loaded", "x")
