"""The Vector Stores API through the official ``openai`` client on the embedded embedding model: stores,
files attached and polled, batches, search with filters, modes and pages, the parsed text, and the
errors the client maps. A handful of short documents: lean and deterministic."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import openai
import pytest

DOCS = {
    "cats.md": "# Cats\n\nCats are small carnivorous mammals. A cat sleeps most of the day and purrs.",
    "rockets.txt": "A rocket engine burns propellant to produce thrust; orbital launch needs staging.",
    "bread.html": "<html><body><h1>Bread</h1><p>Knead the dough, let it rise, bake.</p></body></html>",
}


@pytest.fixture(scope="module")
def oai(model_server, model_tenant) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=model_server.url + "/v1", api_key=model_tenant.key, max_retries=0, timeout=120
    ) as client:
        yield client


def named(name: str, text: str) -> tuple[str, io.BytesIO]:
    return name, io.BytesIO(text.encode())


@pytest.fixture(scope="module")
def store(oai):
    """A store with the three documents, each with attributes, attached one by one and polled."""
    created = oai.vector_stores.create(
        name="kitchen and sky", description="Pets and weather", metadata={"team": "docs"}
    )
    for at, (name, text) in enumerate(DOCS.items()):
        attached = oai.vector_stores.files.upload_and_poll(
            vector_store_id=created.id,
            file=named(name, text),
            attributes={"kind": name.rsplit(".", 1)[1], "rank": at, "public": at != 1},
            poll_interval_ms=50,
        )
        assert attached.status == "completed", attached.last_error
    return oai.vector_stores.retrieve(created.id)


def test_store_counts_its_files_and_their_bytes(store):
    assert store.object == "vector_store" and store.name == "kitchen and sky"
    assert store.status == "completed" and store.metadata == {"team": "docs"}
    assert store.model_extra == {"description": "Pets and weather"}  # kept, though OpenAI's type lacks it
    counts = store.file_counts
    assert (counts.completed, counts.in_progress, counts.failed, counts.total) == (3, 0, 0, 3)
    assert store.usage_bytes > 0 and store.last_active_at >= store.created_at


def test_search_finds_the_document_that_answers(oai, store):
    page = oai.vector_stores.search(store.id, query="Which animal purrs and sleeps all day?")
    best = page.data[0]
    assert best.filename == "cats.md" and "purrs" in best.content[0].text
    assert best.attributes == {"kind": "md", "rank": 0, "public": True}
    assert all(0 <= hit.score <= 1 for hit in page.data)
    assert [hit.score for hit in page.data] == sorted((hit.score for hit in page.data), reverse=True)


def test_filters_choose_among_the_files_by_attributes(oai, store):
    query = "Which animal purrs and sleeps all day?"
    public = oai.vector_stores.search(
        store.id, query=query, filters={"type": "eq", "key": "public", "value": False}
    )
    assert {hit.filename for hit in public.data} == {"rockets.txt"}
    compound = oai.vector_stores.search(
        store.id,
        query=query,
        filters={
            "type": "and",
            "filters": [
                {"type": "gte", "key": "rank", "value": 1},
                {"type": "in", "key": "kind", "value": ["html", "md"]},
            ],
        },
    )
    assert {hit.filename for hit in compound.data} == {"bread.html"}


def test_keyword_and_hybrid_modes_and_a_score_threshold(oai, store):
    keyword = oai.vector_stores.search(
        store.id, query="propellant thrust", extra_body={"search_mode": "keyword"}
    )
    assert [hit.filename for hit in keyword.data] == ["rockets.txt"]
    hybrid = oai.vector_stores.search(
        store.id,
        query="dough",
        ranking_options={"ranker": "auto", "score_threshold": 0.3},
        extra_body={"search_mode": "hybrid"},
    )
    assert hybrid.data[0].filename == "bread.html"
    assert all(hit.score >= 0.3 for hit in hybrid.data)


def test_search_pages_follow_next_page(oai, model_server, model_tenant, store):
    with httpx.Client(
        base_url=model_server.url, headers={"Authorization": f"Bearer {model_tenant.key}"}
    ) as http:
        url = f"/v1/vector_stores/{store.id}/search"
        whole = http.post(url, json={"query": "bake", "max_num_results": 3}).json()
        first = http.post(url, json={"query": "bake", "max_num_results": 2}).json()
        assert first["object"] == "vector_store.search_results.page" and first["search_query"] == ["bake"]
        assert first["has_more"] is True and first["next_page"]
        second = http.post(
            url, json={"query": "bake", "max_num_results": 2, "page": first["next_page"]}
        ).json()
        assert second["has_more"] is False and second["next_page"] is None
        assert [hit["file_id"] for hit in first["data"] + second["data"]] == [
            hit["file_id"] for hit in whole["data"]
        ]
        other = http.post(url, json={"query": "rise", "max_num_results": 2, "page": first["next_page"]})
        assert other.status_code == 400 and other.json()["error"]["param"] == "page"


def test_file_content_is_the_extracted_text(oai, store):
    file_id = next(f.id for f in oai.vector_stores.files.list(store.id) if f.attributes["kind"] == "html")
    page = oai.vector_stores.files.content(file_id, vector_store_id=store.id)
    text = "".join(part.text for part in page)
    assert "Knead the dough" in text and "<p>" not in text


def test_batch_of_files_with_one_that_cannot_be_read(oai):
    store = oai.vector_stores.create(name="batch")
    batch = oai.vector_stores.file_batches.upload_and_poll(
        store.id,
        files=[
            named("a.txt", "alpha beta"),
            named("b.md", "gamma delta"),
            named("c.pdf", "not a pdf at all"),
        ],
        poll_interval_ms=50,
    )
    assert batch.object == "vector_store.files_batch" and batch.status == "completed"
    assert (batch.file_counts.completed, batch.file_counts.failed, batch.file_counts.total) == (2, 1, 3)
    failed = list(
        oai.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id, filter="failed")
    )
    assert len(failed) == 1 and failed[0].last_error.code and failed[0].last_error.message
    assert oai.vector_stores.retrieve(store.id).file_counts.failed == 1


def test_batch_files_each_with_its_own_attributes(oai):
    store = oai.vector_stores.create(name="each")
    ids = [oai.files.create(file=named(f"{n}.txt", f"note {n}"), purpose="assistants").id for n in range(2)]
    batch = oai.vector_stores.file_batches.create_and_poll(
        store.id,
        extra_body={
            "files": [
                {"file_id": ids[0], "attributes": {"n": 0}},
                {"file_id": ids[1], "attributes": {"n": 1}},
            ]
        },
        poll_interval_ms=50,
    )
    assert batch.file_counts.completed == 2
    assert {f.id: f.attributes["n"] for f in oai.vector_stores.files.list(store.id)} == {ids[0]: 0, ids[1]: 1}


def test_update_list_and_delete_stores(oai):
    made = [
        oai.vector_stores.create(name=f"s{n}", expires_after={"anchor": "last_active_at", "days": 7})
        for n in range(3)
    ]
    assert made[0].expires_after.days == 7 and made[0].expires_at == made[0].last_active_at + 7 * 86400
    updated = oai.vector_stores.update(made[0].id, name="renamed", expires_after=None)
    assert updated.name == "renamed" and updated.expires_after is None and updated.expires_at is None
    newest = oai.vector_stores.list(limit=2)
    assert [s.id for s in newest.data] == [made[2].id, made[1].id] and newest.has_more
    after = oai.vector_stores.list(limit=2, after=made[1].id)
    assert after.data[0].id == made[0].id
    deleted = oai.vector_stores.delete(made[2].id)
    assert deleted.deleted and deleted.object == "vector_store.deleted"
    with pytest.raises(openai.NotFoundError):
        oai.vector_stores.retrieve(made[2].id)


def test_file_attributes_detach_and_delete_everywhere(oai):
    store = oai.vector_stores.create(name="lifecycle")
    file = oai.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=named("x.txt", "xylophones are loud"), poll_interval_ms=50
    )
    updated = oai.vector_stores.files.update(file.id, vector_store_id=store.id, attributes={"genre": "music"})
    assert updated.attributes == {"genre": "music"}
    hits = oai.vector_stores.search(
        store.id, query="xylophone", filters={"type": "eq", "key": "genre", "value": "music"}
    )
    assert [hit.file_id for hit in hits.data] == [file.id]
    other = oai.vector_stores.create(name="second", file_ids=[file.id])
    assert oai.vector_stores.files.delete(file.id, vector_store_id=store.id).deleted
    assert oai.vector_stores.search(store.id, query="xylophone").data == []
    oai.files.delete(file.id)  # the file itself goes: it leaves every store it was in
    assert list(oai.vector_stores.files.list(other.id)) == []
    with pytest.raises(openai.NotFoundError):
        oai.vector_stores.files.retrieve(file.id, vector_store_id=other.id)


def test_errors_name_what_is_wrong(oai, model_server):
    with pytest.raises(openai.NotFoundError):
        oai.vector_stores.retrieve("vs_missing")
    with pytest.raises(openai.NotFoundError):
        oai.vector_stores.create(file_ids=["file-missing"])
    with pytest.raises(openai.BadRequestError) as caught:
        oai.vector_stores.create(
            chunking_strategy={
                "type": "static",
                "static": {"max_chunk_size_tokens": 50, "chunk_overlap_tokens": 0},
            }
        )
    assert "chunking_strategy" in caught.value.body["param"]
    with pytest.raises(openai.BadRequestError) as caught:
        oai.vector_stores.create(extra_body={"provider_id": "faiss"})
    assert caught.value.body["param"] == "provider_id"
    store = oai.vector_stores.create()
    with pytest.raises(openai.BadRequestError) as caught:
        oai.vector_stores.search(store.id, query="q", filters={"type": "near", "key": "a", "value": 1})
    assert caught.value.body["param"].startswith("filters")
    with pytest.raises(openai.BadRequestError):
        oai.vector_stores.search(store.id, query="q", max_num_results=51)
    with pytest.raises(openai.BadRequestError):
        oai.vector_stores.create(extra_body={"colour": "blue"})


def test_another_tenant_sees_nothing(oai, model_server, store):
    stranger = model_server.new_tenant()
    with openai.OpenAI(base_url=model_server.url + "/v1", api_key=stranger.key, max_retries=0) as theirs:
        assert theirs.vector_stores.list().data == []
        with pytest.raises(openai.NotFoundError):
            theirs.vector_stores.retrieve(store.id)
        with pytest.raises(openai.NotFoundError):
            theirs.vector_stores.search(store.id, query="cats")
        own = theirs.vector_stores.create(name="theirs")
        with pytest.raises(openai.NotFoundError):  # our files are not theirs to attach
            theirs.vector_stores.files.create(
                own.id, file_id=oai.vector_stores.files.list(store.id).data[0].id
            )
