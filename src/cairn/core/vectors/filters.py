"""OpenAI's attribute filters (``filters`` of a vector store search and of the ``file_search`` tool),
checked and turned into the vector index's filter (``ports.vectors.Filter``).

A comparison is ``{"type": "eq"|"ne"|"gt"|"gte"|"lt"|"lte", "key": k, "value": v}`` with ``v`` a string,
number or boolean, or ``{"type": "in"|"nin", "key": k, "value": [v, …]}``; a compound is
``{"type": "and"|"or", "filters": [...]}``. Everything is bounded before it is walked: at most
``MAX_DEPTH`` levels, ``MAX_NODES`` filters in all, ``MAX_VALUES`` values in a list, keys of at most
``MAX_KEY_CHARS`` characters and string values of at most ``MAX_VALUE_CHARS`` (an attribute holds no
longer string). Anything else is ``InvalidInput`` naming the path of the offending part
(``filters.filters[1].value``).
"""

from __future__ import annotations

from typing import Any, cast, get_args

from ..errors import InvalidInput
from ..ports.vectors import Comparison, ComparisonOp, Compound, Filter, Scalar

MAX_DEPTH = 8
MAX_NODES = 64
MAX_VALUES = 256
MAX_KEY_CHARS = 64
MAX_VALUE_CHARS = 512
LISTS = ("in", "nin")


def parse_filters(raw: object, param: str = "filters") -> Filter | None:
    """The filter ``raw`` says; None for an absent one (``None``)."""
    if raw is None:
        return None
    nodes = [0]
    return _parse(raw, param, 1, nodes)


def _parse(raw: object, path: str, depth: int, nodes: list[int]) -> Filter:
    nodes[0] += 1
    if nodes[0] > MAX_NODES:
        raise InvalidInput(f"A filter may hold at most {MAX_NODES} comparisons and compounds.", param=path)
    if depth > MAX_DEPTH:
        raise InvalidInput(f"Filters may nest at most {MAX_DEPTH} levels deep.", param=path)
    if not isinstance(raw, dict):
        raise InvalidInput("Expected a filter object.", param=path)
    kind = raw.get("type")
    if kind in ("and", "or"):
        _only(raw, {"type", "filters"}, path)
        children = raw.get("filters")
        if not isinstance(children, list) or not children:
            raise InvalidInput("Expected a non-empty list of filters.", param=f"{path}.filters")
        parsed = tuple(
            _parse(child, f"{path}.filters[{i}]", depth + 1, nodes) for i, child in enumerate(children)
        )
        return Compound(op=kind, filters=parsed)
    if kind not in get_args(ComparisonOp):
        raise InvalidInput(
            "Expected type to be one of eq, ne, gt, gte, lt, lte, in, nin, and, or.", param=f"{path}.type"
        )
    _only(raw, {"type", "key", "value"}, path)
    key = raw.get("key")
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_CHARS:
        raise InvalidInput(f"Expected a key of 1 to {MAX_KEY_CHARS} characters.", param=f"{path}.key")
    value = raw.get("value")
    if kind in LISTS:
        if not isinstance(value, list) or not 0 < len(value) <= MAX_VALUES:
            raise InvalidInput(f"Expected a list of 1 to {MAX_VALUES} values.", param=f"{path}.value")
        values = tuple(_scalar(item, f"{path}.value[{i}]") for i, item in enumerate(value))
        return Comparison(key=key, op=cast(ComparisonOp, kind), value=values)
    return Comparison(key=key, op=cast(ComparisonOp, kind), value=_scalar(value, f"{path}.value"))


def _scalar(value: Any, path: str) -> Scalar:
    if isinstance(value, str):
        if len(value) > MAX_VALUE_CHARS:
            raise InvalidInput(f"A value may hold at most {MAX_VALUE_CHARS} characters.", param=path)
        return value
    if isinstance(value, bool | int | float) and value == value and abs(value) != float("inf"):
        return cast(Scalar, value)
    raise InvalidInput("Expected a string, a finite number or a boolean.", param=path)


def _only(raw: dict[str, Any], allowed: set[str], path: str) -> None:
    extra = sorted(set(raw) - allowed)
    if extra:
        raise InvalidInput(f"Unexpected field `{extra[0]}`.", param=f"{path}.{extra[0]}")
