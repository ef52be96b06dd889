"""The ``VectorIndex`` contract (``core/ports/vectors.py``), on every adapter."""

from __future__ import annotations

import math

import anyio
import numpy as np
import pytest
from _adapters import on

from cairn.core.errors import InvalidInput
from cairn.core.ports.vectors import Comparison, Compound, Filter, IndexedChunk, VectorIndex

pytestmark = [pytest.mark.anyio, on("sqlite", "postgres")]

DIM = 384


def unit(*components: float, dimension: int = 4) -> list[float]:
    vector = [*components, *[0.0] * (dimension - len(components))]
    norm = math.sqrt(sum(c * c for c in vector))
    return [c / norm for c in vector]


def chunks(*texts_and_vectors: tuple[str, list[float]]) -> list[IndexedChunk]:
    return [IndexedChunk(i, text, vector) for i, (text, vector) in enumerate(texts_and_vectors)]


def clustered(count: int, seed: int, clusters: int = 50) -> np.ndarray:
    """Normalised points of a Gaussian mixture: neighbours are near, as in real embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, DIM))
    points = centres[rng.integers(0, clusters, count)] + rng.normal(size=(count, DIM)) * 0.6
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


async def test_a_vector_of_another_dimension_is_invalid_input(vector_index: VectorIndex) -> None:
    await vector_index.create_store("vs_a", 4)
    with pytest.raises(InvalidInput):
        await vector_index.put_file("vs_a", "file-1", {}, chunks(("text", [1.0, 0.0, 0.0])))
    with pytest.raises(InvalidInput):
        await vector_index.nearest("vs_a", [1.0, 0.0, 0.0, 0.0, 0.0], limit=3)
    assert await vector_index.nearest("vs_a", unit(1), limit=3) == []


async def test_nearest_is_cosine_best_first(vector_index: VectorIndex) -> None:
    await vector_index.create_store("vs_a", 4)
    await vector_index.put_file(
        "vs_a",
        "file-1",
        {"topic": "x"},
        chunks(("same", unit(1)), ("apart", unit(0, 1)), ("opposite", unit(-1))),
    )
    await vector_index.put_file("vs_a", "file-2", {}, chunks(("close", unit(3, 1))))
    hits = await vector_index.nearest("vs_a", [2.0, 0.0, 0.0, 0.0], limit=10)
    assert [(hit.file_id, hit.index, hit.text) for hit in hits] == [
        ("file-1", 0, "same"),
        ("file-2", 0, "close"),
        ("file-1", 1, "apart"),
        ("file-1", 2, "opposite"),
    ]
    assert [hit.score for hit in hits] == pytest.approx([1.0, 3 / math.sqrt(10), 0.0, -1.0], abs=1e-5)
    assert hits[0].attributes == {"topic": "x"}
    assert len(await vector_index.nearest("vs_a", unit(1), limit=2)) == 2


async def test_put_file_replaces_the_file_chunks_and_attributes(vector_index: VectorIndex) -> None:
    await vector_index.create_store("vs_a", 4)
    await vector_index.put_file(
        "vs_a", "file-1", {"v": 1}, chunks(("old one", unit(1)), ("old two", unit(0, 1)))
    )
    await vector_index.put_file("vs_a", "file-1", {"v": 2}, chunks(("new one", unit(1, 1))))
    hits = await vector_index.nearest("vs_a", unit(1), limit=10)
    assert [(hit.text, hit.attributes) for hit in hits] == [("new one", {"v": 2})]
    assert [hit.text for hit in await vector_index.keyword("vs_a", "old new", limit=10)] == ["new one"]
    await vector_index.set_attributes("vs_a", "file-1", {"v": 3})
    assert [hit.attributes for hit in await vector_index.nearest("vs_a", unit(1), limit=10)] == [{"v": 3}]


async def test_a_chunks_metadata_comes_back_with_its_hits(vector_index: VectorIndex) -> None:
    await vector_index.create_store("vs_a", 4)
    kept = {"document_id": "d", "tags": ["a", 1, None], "nested": {"x": 0.5}}
    given = [IndexedChunk(0, "alpha kept", unit(1), kept), IndexedChunk(1, "alpha bare", unit(0, 1))]
    await vector_index.put_file("vs_a", "file-1", {}, given)
    near = await vector_index.nearest("vs_a", unit(1), limit=5)
    assert [(hit.text, hit.metadata) for hit in near] == [("alpha kept", kept), ("alpha bare", None)]
    keyed = await vector_index.keyword("vs_a", "alpha", limit=5)
    assert {hit.text: hit.metadata for hit in keyed} == {"alpha kept": kept, "alpha bare": None}
    assert await vector_index.keyword("vs_a", "tags nested", limit=5) == []  # metadata is never searched
    with pytest.raises(InvalidInput):
        await vector_index.put_file("vs_a", "file-2", {}, [IndexedChunk(0, "x", unit(1), {"n": math.nan})])


async def test_removed_files_and_dropped_stores_are_gone(vector_index: VectorIndex) -> None:
    await vector_index.create_store("vs_a", 4)
    await vector_index.put_file("vs_a", "file-1", {}, chunks(("alpha", unit(1))))
    await vector_index.put_file("vs_a", "file-2", {}, chunks(("alpha beta", unit(1, 1))))
    await vector_index.remove_file("vs_a", "file-1")
    await vector_index.remove_file("vs_a", "file-1")
    assert [hit.file_id for hit in await vector_index.nearest("vs_a", unit(1), limit=10)] == ["file-2"]
    assert [hit.file_id for hit in await vector_index.keyword("vs_a", "alpha", limit=10)] == ["file-2"]
    await vector_index.drop_store("vs_a")
    assert await vector_index.nearest("vs_a", unit(1), limit=10) == []
    assert await vector_index.keyword("vs_a", "alpha", limit=10) == []
    await vector_index.create_store("vs_a", 2)  # made again, empty, with another dimension
    assert await vector_index.nearest("vs_a", [1.0, 0.0], limit=10) == []


async def test_missing_stores_and_files_are_no_ops_and_empty(vector_index: VectorIndex) -> None:
    await vector_index.put_file("vs_none", "file-1", {}, chunks(("alpha", unit(1))))
    await vector_index.set_attributes("vs_none", "file-1", {"a": 1})
    await vector_index.remove_file("vs_none", "file-1")
    await vector_index.drop_store("vs_none")
    assert await vector_index.nearest("vs_none", unit(1), limit=5) == []
    assert await vector_index.keyword("vs_none", "alpha", limit=5) == []
    await vector_index.create_store("vs_a", 4)
    await vector_index.set_attributes("vs_a", "file-1", {"a": 1})
    await vector_index.remove_file("vs_a", "file-1")
    assert await vector_index.nearest("vs_a", unit(1), limit=5) == []


async def test_stores_are_isolated(vector_index: VectorIndex) -> None:
    await vector_index.create_store("vs_a", 4)
    await vector_index.create_store("vs_b", 4)
    await vector_index.put_file("vs_a", "file-1", {"s": "a"}, chunks(("apples", unit(1))))
    await vector_index.put_file("vs_b", "file-1", {"s": "b"}, chunks(("apples and pears", unit(0, 1))))
    assert [hit.text for hit in await vector_index.nearest("vs_a", unit(0, 1), limit=5)] == ["apples"]
    assert [hit.text for hit in await vector_index.keyword("vs_b", "apples", limit=5)] == ["apples and pears"]
    await vector_index.drop_store("vs_b")
    assert [hit.attributes for hit in await vector_index.keyword("vs_a", "apples", limit=5)] == [{"s": "a"}]


async def test_keyword_ranks_by_bm25_over_optional_words(vector_index: VectorIndex) -> None:
    await vector_index.create_store("vs_a", 4)
    await vector_index.put_file(
        "vs_a",
        "file-1",
        {},
        chunks(
            ("The cat sat on the mat.", unit(1)),
            ("A dog barked at the mailman all morning long.", unit(1)),
            ("Quarterly revenue grew; the zebra migration report is attached.", unit(1)),
            ("Nothing to see here, move along.", unit(1)),
        ),
    )
    hits = await vector_index.keyword("vs_a", "zebra migration?", limit=5)
    assert [hit.index for hit in hits] == [2]
    assert hits[0].score > 0
    either = await vector_index.keyword("vs_a", "dog OR cat", limit=5)  # OR is a word, never syntax
    assert sorted(hit.index for hit in either) == [0, 1]
    both = await vector_index.keyword("vs_a", "mailman barked cat", limit=5)
    assert [hit.index for hit in both] == [1, 0]
    assert both[0].score > both[1].score > 0


async def test_stop_words_are_no_keywords(vector_index: VectorIndex) -> None:
    await vector_index.create_store("vs_a", 4)
    await vector_index.put_file(
        "vs_a",
        "file-1",
        {},
        chunks(("The cat sat on the mat.", unit(1)), ("Of mice and men.", unit(1)), ("A dog.", unit(1))),
    )
    for query in ("the of and", "The AND of", "it is what it is"):
        assert await vector_index.keyword("vs_a", query, limit=5) == [], query
    assert [hit.index for hit in await vector_index.keyword("vs_a", "cat", limit=5)] == [0]
    assert await vector_index.keyword("vs_a", "the cat and the mice", limit=5) == await vector_index.keyword(
        "vs_a", "cat mice", limit=5
    )


@pytest.mark.parametrize(
    "query",
    ['"', "*", "NEAR(", "OR", "AND NOT", "", "   ", "_", 'a"b', "^x", "text:cat", "{store}:x", "\x00"],
)
async def test_hostile_keyword_queries_never_error(vector_index: VectorIndex, query: str) -> None:
    await vector_index.create_store("vs_a", 4)
    await vector_index.put_file("vs_a", "file-1", {}, chunks(("or and not near x cat", unit(1))))
    hits = await vector_index.keyword("vs_a", query, limit=5)
    assert len(hits) <= 1


ATTRIBUTES = {
    "file-s": {"kind": "report", "year": 2023, "score": 0.5, "draft": False},
    "file-t": {"kind": "memo", "year": 2024, "draft": True},
    "file-u": {"kind": "2024", "year": "2024"},  # the same text as the numbers, as strings
    "file-v": {},
}

FILTER_CASES: list[tuple[Filter, set[str]]] = [
    (Comparison("kind", "eq", "report"), {"file-s"}),
    (Comparison("year", "eq", 2024), {"file-t"}),
    (Comparison("year", "eq", 2024.0), {"file-t"}),
    (Comparison("year", "eq", "2024"), {"file-u"}),
    (Comparison("draft", "eq", True), {"file-t"}),
    (Comparison("draft", "eq", 1), set()),
    (Comparison("kind", "ne", "report"), {"file-t", "file-u", "file-v"}),
    (Comparison("year", "ne", 2023), {"file-t", "file-v"}),  # file-u's year is a string: false
    (Comparison("year", "gt", 2023), {"file-t"}),
    (Comparison("year", "gte", 2023), {"file-s", "file-t"}),
    (Comparison("year", "lt", 2024), {"file-s"}),
    (Comparison("year", "lte", 2024), {"file-s", "file-t"}),
    (Comparison("kind", "gt", "n"), {"file-s"}),
    (Comparison("kind", "lt", "a"), {"file-u"}),
    (Comparison("score", "lt", 1), {"file-s"}),
    (Comparison("kind", "in", ("memo", "report")), {"file-s", "file-t"}),
    (Comparison("year", "in", (2023, 1999)), {"file-s"}),
    (Comparison("year", "in", ("2024",)), {"file-u"}),
    (Comparison("kind", "nin", ("memo", "report")), {"file-u", "file-v"}),
    (Comparison("year", "nin", (2023,)), {"file-t", "file-v"}),
    (Comparison("missing", "eq", "x"), set()),
    (Comparison("missing", "ne", "x"), set(ATTRIBUTES)),
    (Comparison("missing", "nin", ("x", 1)), set(ATTRIBUTES)),
    (Comparison("missing", "gt", 0), set()),
    (
        Compound("and", (Comparison("kind", "in", ("memo", "report")), Comparison("draft", "eq", False))),
        {"file-s"},
    ),
    (
        Compound(
            "or",
            (
                Comparison("kind", "eq", "2024"),
                Compound("and", (Comparison("year", "gte", 2024), Comparison("draft", "ne", False))),
            ),
        ),
        {"file-t", "file-u"},
    ),
]


@pytest.mark.parametrize(("filters", "expected"), FILTER_CASES)
async def test_filters_on_attributes(vector_index: VectorIndex, filters: Filter, expected: set[str]) -> None:
    await vector_index.create_store("vs_a", 4)
    for file_id, attributes in ATTRIBUTES.items():
        await vector_index.put_file("vs_a", file_id, attributes, chunks(("common words", unit(1))))
    near = await vector_index.nearest("vs_a", unit(1), limit=10, filters=filters)
    assert {hit.file_id for hit in near} == expected
    words = await vector_index.keyword("vs_a", "common", limit=10, filters=filters)
    assert {hit.file_id for hit in words} == expected


async def test_approximate_search_has_recall_and_filters_never_starve(vector_index: VectorIndex) -> None:
    points, queries = np.split(clustered(5040, seed=7), [5000])
    await vector_index.create_store("vs_big", DIM)
    for file in range(10):
        rows = range(file * 500, (file + 1) * 500)
        await vector_index.put_file(
            "vs_big",
            f"file-{file}",
            {"file": file, "even": file % 2 == 0},
            [IndexedChunk(i - file * 500, f"chunk {i}", points[i].tolist()) for i in rows],
        )
    await vector_index.create_store("vs_small", DIM)
    await vector_index.put_file("vs_small", "file-0", {}, [IndexedChunk(0, "chunk 0", points[0].tolist())])
    found = 0
    for query in queries:
        exact = set(np.argsort(-(points @ query))[:10].tolist())
        hits = await vector_index.nearest("vs_big", query.tolist(), limit=10)
        assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
        found += len(exact & {int(hit.text.split()[1]) for hit in hits})
    assert found / (10 * len(queries)) >= 0.95
    query = queries[0].tolist()
    not_even = Comparison("even", "eq", False)  # 2,500 chunks
    odd = await vector_index.nearest("vs_big", query, limit=10, filters=not_even)
    assert len(odd) == 10
    assert all(hit.attributes["even"] is False for hit in odd)
    few = Compound("and", (Comparison("file", "eq", 3), Comparison("file", "ne", 4)))
    assert len(await vector_index.nearest("vs_big", query, limit=50, filters=few)) == 50
    three_or_five = Compound("or", (Comparison("file", "eq", 3), Comparison("file", "eq", 5)))
    within = await vector_index.nearest("vs_big", query, limit=10, filters=three_or_five)
    assert len(within) == 10
    assert {hit.file_id for hit in within} <= {"file-3", "file-5"}
    await vector_index.put_file("vs_big", "file-9", {"file": 9}, [IndexedChunk(0, "chunk 4999", query)])
    only = await vector_index.nearest("vs_big", query, limit=10, filters=Comparison("file", "eq", 9))
    assert [(hit.text, round(hit.score, 5)) for hit in only] == [("chunk 4999", 1.0)]
    assert len(await vector_index.nearest("vs_small", query, limit=10)) == 1


async def test_searches_during_replacements_see_one_version_of_a_file(vector_index: VectorIndex) -> None:
    await vector_index.create_store("vs_a", 4)
    versions = 12

    def version(v: int) -> list[IndexedChunk]:
        return [IndexedChunk(i, f"version{v} part{i}", unit(1, i / 10)) for i in range(3 + v % 3)]

    await vector_index.put_file("vs_a", "file-1", {"v": 0}, version(0))

    async def writer() -> None:
        for v in range(1, versions):
            await vector_index.put_file("vs_a", "file-1", {"v": v}, version(v))

    async def reader() -> None:
        for _ in range(versions * 2):
            hits = await vector_index.nearest("vs_a", unit(1), limit=10)
            words = await vector_index.keyword("vs_a", "part0 part1 part2 part3 part4", limit=10)
            for found in (hits, words):
                tags = {hit.text.split()[0] for hit in found}
                assert {f"version{hit.attributes['v']}" for hit in found} == tags
                assert len(found) == 3 + int(tags.pop().removeprefix("version")) % 3

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(writer)
        tasks.start_soon(reader)
        tasks.start_soon(reader)
    final = await vector_index.nearest("vs_a", unit(1), limit=10)
    assert {hit.text.split()[0] for hit in final} == {f"version{versions - 1}"}
