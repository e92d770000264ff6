"""Who called a fit: the user's own code, or a library's.

Only fits the user's own code calls become runs. ``classification_report`` fits a
``LabelEncoder``, XGBoost's wrappers and scikit-learn's ``predict`` of some estimators fit
helpers, a visualisation library may fit a small model: those are implementation details of
the call the user made, never runs of their own. The test is the calling frame: code of a
known ML library's package (a module of it that is not a test module) is a library. A test
suite's modules (``*.tests.*``, ``test_*``, ``conftest``) are user code, also inside a
library's package: that is how a framework's own test suite calls its estimators.
"""

from __future__ import annotations

import sys
from typing import Any

# Libraries whose internal fits are never runs: the frameworks we integrate and the libraries
# around them that fit helper estimators inside their own functions. More can be named with
# ``autolog(options={"sklearn": {"library_packages": [...]}})``.
LIBRARY_PACKAGES = frozenset({
    "sklearn", "xgboost", "lightgbm", "catboost", "imblearn", "scipy", "numpy", "pandas", "joblib",
    "keras", "tensorflow", "torch", "lightning", "pytorch_lightning", "fastai", "shap", "lime",
    "mlxtend", "yellowbrick", "category_encoders", "feature_engine", "statsmodels", "optuna", "skopt",
    "hyperopt", "sktime", "umap", "hdbscan", "pycaret", "autosklearn", "tpot", "modelbox_autolog",
})
_OURS = ("modelbox_autolog.", "wrapt")  # frames between the caller and the hook
_MAX_CACHED = 20_000

_verdicts: dict[Any, bool] = {}  # code object of a calling frame -> is it a library's?
_extra: frozenset[str] = frozenset()


def configure(extra_packages: Any) -> None:
    """Library packages named by the user, on top of ``LIBRARY_PACKAGES``."""
    global _extra
    _extra = frozenset(str(p).split(".")[0] for p in (extra_packages or ()))
    _verdicts.clear()


def is_library_module(name: str) -> bool:
    parts = name.split(".")
    if parts[0] not in LIBRARY_PACKAGES and parts[0] not in _extra:
        return False
    return not any(p in ("tests", "test") or p.startswith(("test_", "conftest")) for p in parts[1:])


def called_by_library(framework: str | None = None) -> bool:
    """Is the code that called the instrumented function a library's? Our own frames, and those
    of ``framework`` itself (CatBoost's ``fit`` calling its ``_fit``), are looked through."""
    skipped = _OURS if framework is None else (*_OURS, framework + ".")
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").startswith(skipped):
        frame = frame.f_back
    if frame is None:
        return False
    code = frame.f_code
    verdict = _verdicts.get(code)
    if verdict is None:
        if len(_verdicts) > _MAX_CACHED:
            _verdicts.clear()
        verdict = _verdicts[code] = is_library_module(frame.f_globals.get("__name__") or "")
    return verdict
