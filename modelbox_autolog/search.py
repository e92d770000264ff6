"""The run-search language shared by ``Client.runs(where=..., order_by=...)``, ``modelbox runs
--where`` and the web UI: parsed once (pyparsing) into a small tree that each store compiles
to its own query language; a bad expression raises ``SearchError`` naming the position.

    params.lr > 0.01 and metrics.val_acc >= 0.9
    (tags.team = 'vision' or name like 'bert-%') and not status in ('failed', 'killed')
    max(metrics.val_acc) > 0.8 and duration < 10m and started >= 2024-05-01
    order_by: "metrics.val_acc desc, params.lr"

Fields: ``params.KEY``, ``metrics.KEY`` (latest value; ``min(metrics.KEY)`` / ``max(...)``),
``tags.KEY`` (a key with other characters goes in backticks: ``params.`my key```),
``status``, ``name``, ``id``, ``experiment``, ``parent`` (the parent run id), ``started``,
``ended`` (epoch seconds or a date), ``duration`` (seconds, or with a unit: ms s m h d).
Operators: ``= == != <> < <= > >=``, ``[not] like`` (case-insensitive, ``%`` and ``_``),
``[not] in (...)``, ``is [not] null``; combined with ``and``, ``or``, ``not`` and parentheses.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyparsing as pp

ATTRIBUTES = ("status", "name", "id", "experiment", "parent", "started", "ended", "duration")
_ATTRIBUTE_ALIASES = {"start_time": "started", "end_time": "ended", "run_id": "id", "parent_run_id": "parent"}
_KINDS = {"params": "param", "param": "param", "metrics": "metric", "metric": "metric", "tags": "tag", "tag": "tag"}
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
NUMERIC_ATTRIBUTES = frozenset({"started", "ended", "duration"})


class SearchError(ValueError):
    """An expression that cannot be parsed or compiled; ``position`` is the 0-based offset of the bad token."""

    def __init__(self, message: str, expression: str, position: int) -> None:
        self.message = message
        self.expression = expression
        self.position = max(0, min(position, len(expression)))
        super().__init__(f"{message} at position {self.position}")

    def pointer(self) -> str:
        """The expression with a caret under the bad token (for a terminal)."""
        return f"{self.expression}\n{' ' * self.position}^ {self.message}"


# ---------------------------------------------------------------------- the tree
@dataclass(frozen=True)
class Field:
    kind: str  # param | metric | tag | attr
    key: str  # the param/metric/tag key, or the attribute name
    agg: str = "last"  # metrics only: last | min | max

    def __str__(self) -> str:
        if self.kind == "attr":
            return self.key
        text = f"{self.kind}s.{self.key}" if all(c.isalnum() or c in "_.-/:" for c in self.key) else f"{self.kind}s.`{self.key}`"
        return text if self.agg == "last" else f"{self.agg}({text})"


@dataclass(frozen=True)
class Compare:
    field: Field
    op: str  # = != < <= > >= like not_like in not_in is_null not_null
    value: Any = None  # a number, string, bool, or a tuple of them for in / not_in
    position: int = 0


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = Compare | And | Or | Not


@dataclass(frozen=True)
class OrderKey:
    field: Field
    descending: bool = False


# ---------------------------------------------------------------------- grammar
def _field_action(text: str, loc: int, tokens: pp.ParseResults) -> Field:
    import pyparsing as pp
    agg = tokens.get("agg")
    kind = tokens.get("kind")
    if kind is None:
        name = tokens["attr"].lower()
        return Field("attr", _ATTRIBUTE_ALIASES.get(name, name))
    key = tokens.get("quoted")
    key = key.replace("\\`", "`").replace("\\\\", "\\") if key is not None else tokens["key"]
    kind = _KINDS[kind.lower()]
    if agg and kind != "metric":
        raise pp.ParseFatalException(text, loc, f"{agg.lower()}() applies to metrics only")
    return Field(kind, key, agg.lower() if agg else "last")


def _number_action(text: str, loc: int, tokens: pp.ParseResults) -> float | int | _Duration:
    raw, unit = tokens["num"], tokens.get("unit")
    value = float(raw) if any(c in raw for c in ".eE") else int(raw)
    return _Duration(float(value) * _UNITS[unit], loc) if unit else value


def _date_action(text: str, loc: int, tokens: pp.ParseResults) -> float:
    import pyparsing as pp
    try:
        return _dt.datetime.fromisoformat(tokens[0]).timestamp()
    except ValueError as exc:
        raise pp.ParseFatalException(text, loc, f"{tokens[0]!r} is not a date ({exc})") from None


@dataclass(frozen=True)
class _Duration:
    seconds: float
    position: int


def _build_grammar() -> tuple[pp.ParserElement, pp.ParserElement]:
    import pyparsing as pp
    kw = pp.CaselessKeyword
    AND, OR, NOT, IN, LIKE, IS, NULL = (kw(w) for w in ("and", "or", "not", "in", "like", "is", "null"))
    TRUE, FALSE = kw("true"), kw("false")
    ASC, DESC = kw("asc"), kw("desc")
    lpar, rpar = pp.Suppress("("), pp.Suppress(")")

    key = r"(?:`(?P<quoted>(?:[^`\\]|\\.)+)`|(?P<key>[A-Za-z0-9_][A-Za-z0-9_.\-/:]*))"
    prefixed = pp.Regex(r"(?i)(?P<kind>params|param|metrics|metric|tags|tag)\." + key)
    aggregated = pp.Regex(r"(?i)(?P<agg>min|max)\(\s*(?P<kind>metrics|metric|params|param|tags|tag)\." + key + r"\s*\)")
    attribute = pp.Regex(r"(?i)(?P<attr>" + "|".join([*ATTRIBUTES, *_ATTRIBUTE_ALIASES]) + r")\b")
    field = (aggregated | prefixed | attribute).set_name("a field (params.X, metrics.X, tags.X, status, name, started, duration...)")
    field.set_parse_action(_field_action)

    date = pp.Regex(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?![\w.])").set_parse_action(_date_action)
    number = (pp.Regex(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")("num")
              + pp.Optional(pp.Regex(r"(?:ms|s|m|h|d)\b")("unit")).leave_whitespace()).set_parse_action(_number_action)
    string = pp.QuotedString("'", esc_char="\\", esc_quote="''") | pp.QuotedString('"', esc_char="\\", esc_quote='""')
    boolean = TRUE.copy().set_parse_action(lambda: True) | FALSE.copy().set_parse_action(lambda: False)
    value = (date | number | string | boolean).set_name("a value (a number, 'text', true or false)")
    values = pp.Group(lpar - pp.DelimitedList(value) - rpar).set_name("a list of values in parentheses")

    op = pp.Regex(r"==|=|!=|<>|<=|>=|<|>").set_name("a comparison (= != < <= > >= like in is)")
    condition = "a condition such as params.lr > 0.01"
    comparison = (
        (field + op - value)
        | (field + pp.Opt(NOT)("negated") + LIKE - string.copy().set_name("a 'pattern' in quotes"))
        | (field + pp.Opt(NOT)("negated") + IN - values)
        | (field + IS - pp.Opt(NOT)("negated") - NULL.copy().set_name("null"))
    ).set_name(condition)
    comparison.set_parse_action(_comparison_action)

    expr = pp.Forward().set_name(condition)
    atom = ((lpar + expr - rpar) | comparison).set_name(condition)
    not_expr = pp.Forward().set_name(condition)
    not_expr <<= ((NOT.copy().suppress() - not_expr).set_parse_action(lambda t: Not(t[0])) | atom).set_name(condition)
    and_expr = (not_expr + pp.ZeroOrMore(AND.suppress() - not_expr)).set_parse_action(
        lambda t: t[0] if len(t) == 1 else And(tuple(t))).set_name(condition)
    expr <<= (and_expr + pp.ZeroOrMore(OR.suppress() - and_expr)).set_parse_action(
        lambda t: t[0] if len(t) == 1 else Or(tuple(t)))

    order_key = (field + pp.Opt(ASC | DESC)("direction")).set_parse_action(
        lambda t: OrderKey(t[0], str(t.get("direction", "asc")).lower() == "desc"))
    order = pp.DelimitedList(order_key)
    return expr, order


_OPS = {"==": "=", "<>": "!="}


def _comparison_action(text: str, loc: int, tokens: pp.ParseResults) -> Compare:
    field = tokens[0]
    words = [t.lower() for t in tokens[1:] if isinstance(t, str)]
    negated = "not" in words
    if "like" in words:
        return _checked(Compare(field, "not_like" if negated else "like", tokens[-1], loc), text)
    if "in" in words:
        return _checked(Compare(field, "not_in" if negated else "in", tuple(tokens[-1]), loc), text)
    if "is" in words:
        return _checked(Compare(field, "not_null" if negated else "is_null", None, loc), text)
    return _checked(Compare(field, _OPS.get(tokens[1], tokens[1]), tokens[2], loc), text)


def _checked(node: Compare, text: str) -> Compare:
    """Type rules that do not depend on the store; the value's own position is reported."""
    import pyparsing as pp
    field, values = node.field, node.value if isinstance(node.value, tuple) else (node.value,)
    durations = [v for v in values if isinstance(v, _Duration)]
    if durations and not (field.kind == "attr" and field.key == "duration"):
        raise pp.ParseFatalException(text, durations[0].position, "a unit (ms s m h d) applies to duration only")
    if durations:
        converted = tuple(v.seconds if isinstance(v, _Duration) else v for v in values)
        node = Compare(field, node.op, converted if isinstance(node.value, tuple) else converted[0], node.position)
        values = converted
    numeric_field = field.kind == "metric" or (field.kind == "attr" and field.key in NUMERIC_ATTRIBUTES)
    if numeric_field and node.op not in ("is_null", "not_null"):
        if node.op in ("like", "not_like"):
            raise pp.ParseFatalException(text, node.position, f"{field} is a number; like applies to text")
        bad = [v for v in values if isinstance(v, (str, bool))]
        if bad:
            quote = min((i for i in (text.find("'", node.position), text.find('"', node.position)) if i >= 0), default=-1)
            where = quote if isinstance(bad[0], str) and quote >= 0 else node.position
            raise pp.ParseFatalException(text, where, f"{field} is a number; compare it with a number, not {bad[0]!r}")
    return node


_GRAMMAR: tuple[pp.ParserElement, pp.ParserElement] | None = None


def _grammar() -> tuple[pp.ParserElement, pp.ParserElement]:
    global _GRAMMAR
    if _GRAMMAR is None:
        _GRAMMAR = _build_grammar()
    return _GRAMMAR


def _parse(element: pp.ParserElement, text: str, what: str) -> pp.ParseResults:
    import pyparsing as pp
    if not isinstance(text, str):
        raise SearchError(f"{what} must be text, not {type(text).__name__}", "", 0)
    try:
        return element.parse_string(text, parse_all=True)
    except pp.ParseBaseException as exc:
        position = exc.loc
        found = text[position:].split(None, 1)[0] if text[position:].strip() else ""
        message = exc.msg
        if message.startswith("Expected end of text") or message.startswith("Expected ") and found:
            expected = message[len("Expected "):].split(", found")[0] if message.startswith("Expected ") else ""
            if expected.startswith("end of text"):
                message = f"unexpected {found!r}" if found else "unexpected end"
            else:
                message = f"expected {expected}, found {found!r}" if found else f"expected {expected}, found the end"
        elif message.startswith("Expected "):
            message = f"expected {message[len('Expected '):].split(', found')[0]}, found the end"
        raise SearchError(message, text, position) from None


def parse_where(text: str) -> Node | None:
    """The tree of a filter expression (None for an empty one); SearchError when it is not valid."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    return _parse(_grammar()[0], text, "where")[0]


def parse_order_by(text: str | None) -> list[OrderKey]:
    """``"metrics.val_acc desc, params.lr"`` -> order keys; SearchError when it is not valid."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return []
    return list(_parse(_grammar()[1], text, "order_by"))


def fields_of(node: Node | None) -> list[Field]:
    """Every field a tree compares, in order (the UI adds them as columns)."""
    if node is None:
        return []
    if isinstance(node, Compare):
        return [node.field]
    if isinstance(node, Not):
        return fields_of(node.item)
    return [f for item in node.items for f in fields_of(item)]
