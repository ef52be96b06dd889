"""OpenAI's attribute filters, checked and turned into the index's filter."""

from __future__ import annotations

import pytest

from cairn.core.errors import InvalidInput
from cairn.core.ports.vectors import Comparison, Compound
from cairn.core.vectors.filters import MAX_DEPTH, MAX_NODES, MAX_VALUE_CHARS, parse_filters


def test_absent_filters_are_none():
    assert parse_filters(None) is None


def test_comparisons_of_every_type():
    for op, value in [("eq", "a"), ("ne", 1), ("gt", 1.5), ("gte", 0), ("lt", -2), ("lte", True)]:
        assert parse_filters({"type": op, "key": "k", "value": value}) == Comparison("k", op, value)
    assert parse_filters({"type": "in", "key": "k", "value": ["a", 2]}) == Comparison("k", "in", ("a", 2))
    assert parse_filters({"type": "nin", "key": "k", "value": [False]}) == Comparison("k", "nin", (False,))


def test_compounds_nest():
    raw = {
        "type": "or",
        "filters": [
            {"type": "eq", "key": "lang", "value": "en"},
            {"type": "and", "filters": [{"type": "gte", "key": "year", "value": 2020}]},
        ],
    }
    assert parse_filters(raw) == Compound(
        "or", (Comparison("lang", "eq", "en"), Compound("and", (Comparison("year", "gte", 2020),)))
    )


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        ("lang = en", "filters"),
        ({"type": "like", "key": "k", "value": "a"}, "filters.type"),
        ({"type": "eq", "value": "a"}, "filters.key"),
        ({"type": "eq", "key": "", "value": "a"}, "filters.key"),
        ({"type": "eq", "key": "k" * 65, "value": "a"}, "filters.key"),
        ({"type": "eq", "key": "k", "value": None}, "filters.value"),
        ({"type": "eq", "key": "k", "value": {"$gt": 1}}, "filters.value"),
        ({"type": "eq", "key": "k", "value": float("nan")}, "filters.value"),
        ({"type": "eq", "key": "k", "value": ["a"]}, "filters.value"),
        ({"type": "eq", "key": "k", "value": "v" * (MAX_VALUE_CHARS + 1)}, "filters.value"),
        ({"type": "in", "key": "k", "value": "a"}, "filters.value"),
        ({"type": "in", "key": "k", "value": []}, "filters.value"),
        ({"type": "in", "key": "k", "value": ["a", None]}, "filters.value[1]"),
        ({"type": "eq", "key": "k", "value": "a", "extra": 1}, "filters.extra"),
        ({"type": "and", "filters": []}, "filters.filters"),
        ({"type": "and", "filters": [{"type": "eq", "key": "k"}]}, "filters.filters[0].value"),
    ],
)
def test_malformed_filters_name_their_part(raw, param):
    with pytest.raises(InvalidInput) as caught:
        parse_filters(raw)
    assert caught.value.param == param


def test_depth_and_size_are_bounded():
    deep: dict = {"type": "eq", "key": "k", "value": 1}
    for _ in range(MAX_DEPTH):
        deep = {"type": "and", "filters": [deep]}
    with pytest.raises(InvalidInput, match="nest"):
        parse_filters(deep)
    wide = {"type": "or", "filters": [{"type": "eq", "key": "k", "value": i} for i in range(MAX_NODES)]}
    with pytest.raises(InvalidInput, match="at most"):
        parse_filters(wide)
