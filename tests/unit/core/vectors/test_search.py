"""Searching a vector store (``core/vectors/search.py``) through the real composition on SQLite and on
PostgreSQL with the embedded MiniLM: over a small corpus of distinct topics the right document comes
first in every mode, a query of stop words finds nothing by keywords, filters narrow,
``score_threshold`` drops weak hits, pages walk every result once, tokens and inputs are checked, a
rewritten query is reported, and another tenant's store is not found."""

from __future__ import annotations

import pytest
from _composition import settled, uploader

from cairn.compose import Composition
from cairn.core.errors import InvalidInput, NotFound
from cairn.core.vectors.search import SearchPage
from cairn.core.vectors.stores import VectorStores

pytestmark = pytest.mark.anyio

ALICE, BOB = "alice", "bob"
CORPUS = {
    "granite.txt": (
        "geology",
        "Granite is an igneous rock of quartz and feldspar that cools slowly from magma.",
    ),
    "sourdough.txt": ("food", "A sourdough starter is flour and water fermented by wild yeast and bacteria."),
    "comets.txt": ("space", "A comet is an icy body that grows a glowing tail of gas near the Sun."),
    "violin.txt": ("music", "The violin is a bowed string instrument with four strings tuned in fifths."),
    "photosynthesis.txt": (
        "biology",
        "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar.",
    ),
    "bitcoin.txt": (
        "finance",
        "Bitcoin is a digital currency recorded on a decentralised blockchain ledger.",
    ),
    "volcano.txt": ("geology", "A volcano erupts lava, ash and gases when molten magma reaches the surface."),
    "tennis.txt": ("sport", "In tennis, players hit a ball over a net with rackets to win points and sets."),
}
QUERIES = {
    "granite.txt": "granite quartz feldspar rock",
    "sourdough.txt": "sourdough starter yeast",
    "violin.txt": "violin string instrument",
    "bitcoin.txt": "bitcoin blockchain currency",
    "tennis.txt": "tennis rackets net",
}


@pytest.fixture(scope="module")
async def store_id(composition: Composition, stores: VectorStores) -> str:
    upload = uploader(composition)
    store = await stores.create(ALICE, name="corpus")
    for filename, (topic, text) in CORPUS.items():
        record = await upload(ALICE, filename, text.encode())
        await stores.attach_file(ALICE, store.record.id, record.id, attributes={"topic": topic})
        await settled(stores, ALICE, store.record.id, record.id)
    return store.record.id


def filenames(page: SearchPage) -> list[str]:
    return [hit.filename for hit in page.hits]


@pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
async def test_the_right_document_comes_first_in_every_mode(
    stores: VectorStores, store_id: str, mode: str
) -> None:
    for expected, query in QUERIES.items():
        page = await stores.search(ALICE, store_id, query, search_mode=mode)
        assert filenames(page)[0] == expected, (mode, query, filenames(page))
        assert page.search_query == [query]
        assert all(0 <= hit.score <= 1 for hit in page.hits)
        assert [h.score for h in page.hits] == sorted((h.score for h in page.hits), reverse=True)
        top = page.hits[0]
        assert top.text == CORPUS[expected][1] and top.attributes == {"topic": CORPUS[expected][0]}


async def test_rrf_and_weights_rank_too_and_several_queries_merge(
    stores: VectorStores, store_id: str
) -> None:
    rrf = await stores.search(
        ALICE, store_id, QUERIES["violin.txt"], search_mode="hybrid", ranking_options={"ranker": "rrf"}
    )
    assert filenames(rrf)[0] == "violin.txt" and rrf.hits[0].score == 1.0  # first in both lists
    text_only = await stores.search(
        ALICE,
        store_id,
        "comet tail",
        search_mode="hybrid",
        ranking_options={"hybrid_search": {"embedding_weight": 0, "text_weight": 1}},
    )
    keyword = await stores.search(ALICE, store_id, "comet tail", search_mode="keyword")
    matched = [(h.filename, round(h.score, 6)) for h in keyword.hits]
    assert [(h.filename, round(h.score, 6)) for h in text_only.hits][: len(matched)] == matched
    assert all(h.score == 0 for h in text_only.hits[len(matched) :])  # found by nearness only
    both = await stores.search(
        ALICE, store_id, [QUERIES["violin.txt"], QUERIES["bitcoin.txt"]], max_num_results=2
    )
    assert set(filenames(both)) == {"violin.txt", "bitcoin.txt"}


async def test_a_query_of_stop_words_finds_nothing_by_keywords_and_hybrid_ranks_by_nearness(
    stores: VectorStores, store_id: str
) -> None:
    assert (await stores.search(ALICE, store_id, "the of and", search_mode="keyword")).hits == []
    vector = await stores.search(ALICE, store_id, "the of and")
    hybrid = await stores.search(ALICE, store_id, "the of and", search_mode="hybrid")
    assert [(h.filename, h.score / 2) for h in vector.hits] == [(h.filename, h.score) for h in hybrid.hits]


async def test_filters_narrow_and_the_threshold_drops_weak_hits(stores: VectorStores, store_id: str) -> None:
    geology = {"type": "eq", "key": "topic", "value": "geology"}
    page = await stores.search(ALICE, store_id, "magma", filters=geology, max_num_results=50)
    assert sorted(filenames(page)) == ["granite.txt", "volcano.txt"]
    everything = await stores.search(ALICE, store_id, QUERIES["tennis.txt"], max_num_results=50)
    assert len(everything.hits) == len(CORPUS)
    cut = (everything.hits[0].score + everything.hits[1].score) / 2
    strong = await stores.search(
        ALICE, store_id, QUERIES["tennis.txt"], max_num_results=50, ranking_options={"score_threshold": cut}
    )
    assert filenames(strong) == ["tennis.txt"]


async def test_pages_walk_every_result_once(stores: VectorStores, store_id: str) -> None:
    for mode in ("vector", "hybrid"):
        seen: list[tuple[str, str]] = []
        token = None
        pages = 0
        while True:
            page = await stores.search(
                ALICE, store_id, "nature", search_mode=mode, max_num_results=3, page=token
            )
            seen += [(h.filename, h.text) for h in page.hits]
            pages += 1
            if not page.has_more:
                assert page.next_page is None
                break
            token = page.next_page
        assert len(seen) == len(set(seen)) == len(CORPUS) and pages == 3
        whole = await stores.search(ALICE, store_id, "nature", search_mode=mode, max_num_results=50)
        assert [(h.filename, h.text) for h in whole.hits] == seen


async def test_a_token_of_another_search_and_bad_inputs_are_refused(
    stores: VectorStores, store_id: str
) -> None:
    first = await stores.search(ALICE, store_id, "rock", max_num_results=1)
    assert first.has_more and first.next_page
    bad = [
        ({"query": "lava", "page": first.next_page}, "page"),
        ({"query": "rock", "page": first.next_page, "search_mode": "keyword"}, "page"),
        ({"query": "rock", "page": "not a token"}, "page"),
        ({"query": "rock", "max_num_results": 0}, "max_num_results"),
        ({"query": "rock", "max_num_results": 51}, "max_num_results"),
        ({"query": ""}, "query"),
        ({"query": []}, "query"),
        ({"query": ["rock"] * 17}, "query"),
        ({"query": "rock", "ranking_options": {"ranker": "best"}}, "ranking_options.ranker"),
        ({"query": "rock", "ranking_options": {"score_threshold": 2}}, "ranking_options.score_threshold"),
        ({"query": "rock", "search_mode": "fuzzy"}, "search_mode"),
        ({"query": "rock", "filters": {"type": "eq", "key": "topic"}}, "filters.value"),
    ]
    for arguments, param in bad:
        query = arguments.pop("query")
        with pytest.raises(InvalidInput) as raised:
            await stores.search(ALICE, store_id, query, **arguments)  # type: ignore[arg-type]
        assert raised.value.param == param, arguments
    second = await stores.search(ALICE, store_id, "rock", max_num_results=1, page=first.next_page)
    assert second.hits[0].text != first.hits[0].text


async def test_a_search_is_activity_and_another_tenant_finds_no_store(
    stores: VectorStores, store_id: str
) -> None:
    before = (await stores.get(ALICE, store_id)).record.last_active_at
    await stores.rows.touch_store(ALICE, store_id, before - 3600)
    await stores.search(ALICE, store_id, "rock")
    assert (await stores.get(ALICE, store_id)).record.last_active_at >= before
    with pytest.raises(NotFound):
        await stores.search(BOB, store_id, "rock")


async def test_a_rewritten_query_is_reported(stores: VectorStores, store_id: str) -> None:
    question = "Which musical instrument has four strings tuned in fifths?"
    page = await stores.search(ALICE, store_id, question, rewrite_query=True)
    assert len(page.search_query) == 1 and page.search_query[0].strip()
    again = await stores.search(ALICE, store_id, question, rewrite_query=True)
    assert again.search_query == page.search_query
