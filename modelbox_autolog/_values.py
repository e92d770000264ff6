"""Turning arbitrary user values into things we can store, without ever raising.

Nothing here shortens what the user gave: keys and values are kept whole, and the run API
refuses (with a warning naming the key) what no store can hold (see ``_names``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any


def flatten(params: Mapping[Any, Any], prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """Flatten nested mappings: ``{"opt": {"lr": 1}}`` -> ``{"opt.lr": 1}``. Lists stay values."""
    flat: dict[str, Any] = {}
    stack: list[tuple[str, Mapping[Any, Any]]] = [(prefix, params)]
    seen: set[int] = set()
    while stack:
        base, mapping = stack.pop()
        if id(mapping) in seen:  # a mapping that contains itself
            flat[base or "<root>"] = "<cycle>"
            continue
        seen.add(id(mapping))
        for key, value in mapping.items():
            name = f"{base}{sep}{to_key(key)}" if base else to_key(key)
            if isinstance(value, Mapping) and value:
                stack.append((name, value))
            else:
                flat[name] = value
    return flat


def to_key(key: Any) -> str:
    """Keys are strings; anything else becomes its ``str`` (never shortened)."""
    if isinstance(key, str):
        return key
    try:
        return str(key)
    except Exception:
        return safe_repr(key)


def _jsonable(value: Any, depth: int = 0) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if depth > 8:
        return repr(value)
    if isinstance(value, Mapping):
        return {to_key(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in value]
    item = getattr(value, "item", None)  # numpy / torch scalars
    if callable(item) and getattr(value, "ndim", None) == 0:
        try:
            return _jsonable(item(), depth + 1)
        except Exception:
            pass
    tolist = getattr(value, "tolist", None)  # small arrays
    if callable(tolist) and getattr(value, "size", 1 << 30) <= 64:
        try:
            return _jsonable(tolist(), depth + 1)
        except Exception:
            pass
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    return safe_repr(value)


def safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as exc:  # a broken __repr__ is the user's problem, not a crash
        return f"<unrepresentable {type(value).__name__}: {exc!r}>"


_encode_str = json.encoder.encode_basestring  # C implementation, no encoder object per call


def to_param_text(value: Any) -> str:
    """JSON text of a param value; non-JSON values become the JSON string of their repr."""
    cls = type(value)  # fast paths for the common scalars: a fit logs dozens of these
    if cls is str:
        return _encode_str(value)
    if cls is int:
        return str(value)
    if cls is bool or value is None:
        return "true" if value is True else "false" if value is False else "null"
    if cls is float and math.isfinite(value):
        return repr(value)
    try:
        return json.dumps(_jsonable(value), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return json.dumps(safe_repr(value), ensure_ascii=False)


def from_param_text(text: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


_ATOMS = frozenset((str, int, bool, type(None)))


def to_attrs(attrs: Mapping[Any, Any]) -> dict[str, Any]:
    """Event/model attribute dicts: JSON-able values, keys as strings."""
    clean: dict[str, Any] = {}
    for key, value in attrs.items():
        if key.__class__ is not str:
            key = to_key(key)
        cls = value.__class__
        clean[key] = value if cls in _ATOMS or (cls is float and math.isfinite(value)) else _jsonable(value)
    return clean


def to_tags(tags: Mapping[Any, Any] | None) -> dict[str, str]:
    """Tag and label values are text; booleans read ``true``/``false``, as params print."""
    if not tags:
        return {}
    return {to_key(k): v if isinstance(v, str) else _tag_text(v) for k, v in tags.items()}


def _tag_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return safe_repr(value)


def display(value: Any) -> str:
    """One way to print a value everywhere (CLI tables, CSV, plots): text as is, booleans as
    ``true``/``false``, None as ``null``, numbers and containers as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return safe_repr(value)
