"""What every framework integration is: a name, the framework it binds, the version range it
supports, and a ``setup`` that registers patches through ``_patching``."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from .. import _config, _patching
from .._patching import Hook


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("."):
        match = re.match(r"\d+", piece)
        if not match:
            break
        parts.append(int(match.group()))
    return tuple(parts)


def satisfies(version: str, requirement: str) -> bool:
    """``satisfies("2.1.0", ">=2.0,<3")``; only the comparisons we use (>=, >, <=, <, ==, !=)."""
    have = _version_tuple(version)
    for clause in filter(None, (c.strip() for c in requirement.split(","))):
        match = re.match(r"(>=|<=|==|!=|>|<)\s*([\w.]+)", clause)
        if not match:
            continue
        op, want_text = match.groups()
        want = _version_tuple(want_text)
        width = max(len(have), len(want))
        a, b = have + (0,) * (width - len(have)), want + (0,) * (width - len(want))
        ok = {">=": a >= b, "<=": a <= b, "==": a == b, "!=": a != b, ">": a > b, "<": a < b}[op]
        if not ok:
            return False
    return True


class Integration:
    """Subclass per framework. Never import the framework at module level: ``setup`` gets it."""

    name: ClassVar[str] = ""
    modules: ClassVar[tuple[str, ...]] = ()  # import names whose import triggers setup
    distribution: ClassVar[str] = ""  # the pip distribution, for version checks
    requirement: ClassVar[str] = ""  # supported range, e.g. ">=2.0,<4"

    def __init__(self) -> None:
        self.set_up_modules: set[str] = set()

    @property
    def config(self) -> _config.Config:
        return _config.current()

    def option(self, name: str, default: Any = None) -> Any:
        return self.config.option(self.name, name, default)

    def setup(self, module: Any) -> None:
        """Register patches for ``module`` (called once per module in ``modules``)."""
        raise NotImplementedError

    def teardown(self) -> None:
        """Extra cleanup beyond reverting patches (which the ledger does)."""

    def patch(self, owner: Any, attr: str, hook: Hook, group: str | None = None) -> bool:
        return _patching.patch_call(self.name, owner, attr, hook, group=group)

    def patch_raw(self, owner: Any, attr: str, wrapper: Any) -> bool:
        return _patching.patch_function(self.name, owner, attr, wrapper)

    @classmethod
    def load_model(cls, files_dir: str, model: Any) -> Any:
        """Load a model this integration logged (``model`` is the ModelInfo) into a live object."""
        raise NotImplementedError(f"the {cls.name} integration cannot load models")
