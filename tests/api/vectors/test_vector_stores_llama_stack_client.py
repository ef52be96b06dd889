"""Vector stores through Llama Stack's own client (``llama-stack-client``): a store made with its model
and provider, a file uploaded, attached and polled, the store searched (its OpenAI routes under
``/v1/openai/v1``), and Llama Stack's vector-io: chunks inserted (embedded by Cairn or given their
embedding) and queried by nearness, keywords or both, their metadata back as given."""

from __future__ import annotations

import time

import llama_stack_client
import pytest

EMBED = "onnx/all-MiniLM-L6-v2"
CATS = "Cats are small carnivorous mammals. A cat sleeps most of the day and purrs."
ROCKET = "A rocket engine burns propellant to produce thrust; orbital launch needs staging."
BREAD = "Knead the dough, let it rise in a warm place, then bake the bread until golden."


def new_store(llama, name: str):
    return llama.vector_stores.create(
        name=name, embedding_model=EMBED, embedding_dimension=384, provider_id="sqlite-vec"
    )


@pytest.fixture(scope="module")
def store(llama):
    """A store with one uploaded file, attached and polled until done, and two inserted documents: the
    rocket one embedded by Cairn, the bread one with its embedding given."""
    created = new_store(llama, "mixed")
    uploaded = llama.files.create(file=("cats.md", CATS.encode()), purpose="assistants")
    assert llama.vector_stores.files.create(created.id, file_id=uploaded.id).status == "in_progress"
    deadline = time.monotonic() + 60
    while (polled := llama.vector_stores.retrieve(created.id)).file_counts.in_progress:
        assert time.monotonic() < deadline, "the ingestion did not end"
        time.sleep(0.05)
    assert polled.file_counts.completed == 1
    bread = llama.embeddings.create(model=EMBED, input=[BREAD]).data[0].embedding
    llama.vector_io.insert(
        vector_db_id=created.id,
        chunks=[
            {"content": ROCKET, "metadata": {"document_id": "rockets", "tags": ["space", 1], "n": None}},
            {
                "content": [
                    {"type": "text", "text": "Knead the dough,"},
                    {"type": "text", "text": "then bake."},
                ],
                "metadata": {"document_id": "bread"},
                "chunk_id": "bread-1",
            },
            {"content": BREAD, "metadata": {"document_id": "bread", "page": 2}, "embedding": bread},
        ],
    )
    return created


def test_providers_list_the_vector_io_provider(llama):
    vector_io = [provider for provider in llama.providers.list() if provider.api == "vector_io"]
    assert [(p.provider_id, p.provider_type) for p in vector_io] == [("sqlite-vec", "inline::sqlite-vec")]


def test_a_store_counts_its_file_and_its_inserted_documents(llama, model_server, model_tenant, store):
    shown = llama.vector_stores.retrieve(store.id)
    assert shown.file_counts.completed == shown.file_counts.total == 3
    assert shown.usage_bytes >= len(CATS) + len(ROCKET) + len(BREAD)
    with model_server.client(model_tenant) as http:  # the client of 0.2.12 lists no store files
        listed = http.get(f"/v1/openai/v1/vector_stores/{store.id}/files").json()["data"]
    documents = {f["attributes"]["document_id"]: f for f in listed if f["id"].startswith("vsdoc_")}
    assert set(documents) == {"rockets", "bread"}
    rockets = documents["rockets"]
    assert (rockets["status"], rockets["usage_bytes"], rockets["chunking_strategy"]) == (
        "completed",
        len(ROCKET),
        {"type": "other"},
    )


def test_query_by_vector_finds_inserted_chunks_and_file_chunks(llama, store):
    found = llama.vector_io.query(
        vector_db_id=store.id, query="How do I bake bread?", params={"max_chunks": 5}
    )
    assert len(found.chunks) == len(found.scores) == 4
    assert found.scores == sorted(found.scores, reverse=True) and all(0 <= s <= 1 for s in found.scores)
    assert [chunk.metadata["document_id"] for chunk in found.chunks[:2]] == ["bread", "bread"]
    by_text = {chunk.content: chunk for chunk in found.chunks}
    assert by_text[BREAD].metadata == {"document_id": "bread", "page": 2}
    parts = by_text["Knead the dough, then bake."]
    assert parts.metadata == {"document_id": "bread"} and parts.to_dict()["chunk_id"] == "bread-1"
    assert by_text[ROCKET].metadata == {"document_id": "rockets", "tags": ["space", 1], "n": None}
    cat = by_text[CATS].metadata
    assert cat["filename"] == "cats.md" and cat["document_id"].startswith("file-")


def test_query_by_keyword_and_hybrid(llama, store):
    keyword = llama.vector_io.query(
        vector_db_id=store.id, query="propellant thrust", params={"mode": "keyword", "max_chunks": 5}
    )
    assert [chunk.content for chunk in keyword.chunks] == [ROCKET]
    hybrid = llama.vector_io.query(
        vector_db_id=store.id,
        query=[{"type": "text", "text": "sleepy purring"}, {"type": "text", "text": "mammals"}],
        params={"mode": "hybrid", "ranker": {"type": "weighted", "alpha": 0.7}, "score_threshold": 0.2},
    )
    assert hybrid.chunks[0].content == CATS and all(score >= 0.2 for score in hybrid.scores)
    rrf = llama.vector_io.query(
        vector_db_id=store.id, query="dough", params={"mode": "hybrid", "ranker": {"type": "rrf"}}
    )
    assert rrf.chunks[0].metadata["document_id"] == "bread" and len(rrf.chunks) == 3


def test_store_search_names_a_documents_hits_by_its_id(llama, store):
    page = llama.vector_stores.search(store.id, query="propellant", extra_body={"search_mode": "keyword"})
    assert [(hit.filename, hit.content[0].text) for hit in page.data] == [("rockets", ROCKET)]
    assert page.data[0].attributes == {"document_id": "rockets"}


def test_inserting_a_document_again_replaces_its_chunks(llama):
    store = new_store(llama, "replace")
    first = [{"content": f"old note {n}", "metadata": {"document_id": "notes"}} for n in range(3)]
    llama.vector_io.insert(vector_db_id=store.id, chunks=first)
    llama.vector_io.insert(
        vector_db_id=store.id, chunks=[{"content": "new note", "metadata": {"document_id": "notes"}}]
    )
    found = llama.vector_io.query(vector_db_id=store.id, query="note", params={"mode": "keyword"})
    assert [chunk.content for chunk in found.chunks] == ["new note"]
    shown = llama.vector_stores.retrieve(store.id)
    assert (shown.file_counts.total, shown.usage_bytes) == (1, len("new note"))


def test_errors_name_what_is_wrong(llama, store, model_server):
    note = {"content": "a note", "metadata": {"document_id": "d"}}
    with pytest.raises(llama_stack_client.NotFoundError):
        llama.vector_io.insert(vector_db_id="vs_missing", chunks=[note])
    with pytest.raises(llama_stack_client.NotFoundError):
        llama.vector_io.query(vector_db_id="vs_missing", query="note")
    with pytest.raises(llama_stack_client.BadRequestError) as caught:
        llama.vector_io.insert(vector_db_id=store.id, chunks=[{**note, "embedding": [0.5] * 3}])
    assert caught.value.body["error"]["param"] == "chunks[0].embedding"
    with pytest.raises(llama_stack_client.BadRequestError) as caught:
        llama.vector_io.insert(
            vector_db_id=store.id,
            chunks=[{**note, "content": [{"type": "image", "image": {"url": {"uri": "https://x/a.png"}}}]}],
        )
    assert "Images are not supported" in caught.value.body["error"]["message"]
    with pytest.raises(llama_stack_client.BadRequestError) as caught:
        llama.vector_io.insert(vector_db_id=store.id, chunks=[note], ttl_seconds=60)
    assert caught.value.body["error"]["param"] == "ttl_seconds"
    with pytest.raises(llama_stack_client.BadRequestError) as caught:
        llama.vector_io.insert(vector_db_id=store.id, chunks=[{"content": "x", "metadata": {}}])
    assert caught.value.body["error"]["param"] == "chunks[0].metadata.document_id"
    stranger = model_server.new_tenant()
    with llama_stack_client.LlamaStackClient(
        base_url=model_server.url, api_key=stranger.key, max_retries=0
    ) as other:
        with pytest.raises(llama_stack_client.NotFoundError):
            other.vector_io.insert(vector_db_id=store.id, chunks=[note])
        with pytest.raises(llama_stack_client.NotFoundError):
            other.vector_io.query(vector_db_id=store.id, query="note")


def test_vector_store_id_is_a_synonym_of_vector_db_id(model_server, model_tenant, store):
    with model_server.client(model_tenant) as http:
        body = {"vector_store_id": store.id, "query": "propellant", "params": {"mode": "keyword"}}
        found = http.post("/v1/vector-io/query", json=body).json()
        assert [chunk["content"] for chunk in found["chunks"]] == [ROCKET]
        both = http.post("/v1/vector-io/query", json={**body, "vector_db_id": "vs_other"})
        assert both.status_code == 400 and both.json()["error"]["param"] == "vector_db_id"
