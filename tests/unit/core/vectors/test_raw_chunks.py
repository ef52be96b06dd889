"""Llama Stack's vector-io on vector stores (``core/vectors/raw_chunks.py``) through the real composition
on SQLite with the embedded MiniLM: documents live as whole files of the index and rows of the store,
chunks are embedded in batches, an insert checks everything before it writes, the embedder's errors
name the chunk, detaching or deleting takes the chunks away, and another tenant's store is not found."""

from __future__ import annotations

import pytest

from cairn.compose import Composition
from cairn.core.errors import ContextLengthExceeded, InvalidInput, NotFound
from cairn.core.vectors.ingest import EMBED_BATCH
from cairn.core.vectors.raw_chunks import RawChunk, RawChunks, chunk_id, document_file_id
from cairn.core.vectors.stores import VectorStores

pytestmark = pytest.mark.anyio

ALICE, BOB = "alice", "bob"


@pytest.fixture(scope="module")
def vector_io(composition: Composition) -> RawChunks:
    return composition.services.vector_io


def note(text: str, document_id: str = "notes", **given: object) -> RawChunk:
    return RawChunk(text=text, metadata={"document_id": document_id}, **given)  # type: ignore[arg-type]


async def test_a_document_is_one_file_of_the_index_and_one_row_of_the_store(
    stores: VectorStores, vector_io: RawChunks
) -> None:
    store = (await stores.create(ALICE, name="documents")).record.id
    many = [note(f"entry number {n}") for n in range(EMBED_BATCH + 3)]  # two batches of embeddings
    await vector_io.insert(ALICE, store, [*many, note("lonely entry", "other")])
    hits = await stores.index.keyword(store, "entry", limit=200)
    assert {hit.file_id for hit in hits} == {document_file_id("notes"), document_file_id("other")}
    assert len(hits) == EMBED_BATCH + 4
    row = await stores.get_file(ALICE, store, document_file_id("notes"))
    assert row.usage_bytes == sum(len(chunk.text) for chunk in many)
    assert row.attributes == {"document_id": "notes"}
    shown = await stores.get(ALICE, store)
    assert (shown.file_counts.completed, shown.file_counts.total) == (2, 2)

    await stores.detach_file(ALICE, store, document_file_id("other"))
    assert [hit.text for hit in await stores.index.keyword(store, "lonely", limit=5)] == []
    await stores.delete(ALICE, store)
    assert await stores.index.keyword(store, "entry", limit=5) == []


async def test_chunks_of_one_id_are_one_and_ids_are_made_from_document_and_text(
    stores: VectorStores, vector_io: RawChunks
) -> None:
    store = (await stores.create(ALICE)).record.id
    await vector_io.insert(
        ALICE,
        store,
        [note("first draft", chunk_id="c1"), note("plain words"), note("second draft", chunk_id="c1")],
    )
    found = await vector_io.query(ALICE, store, "draft words", mode="keyword", max_chunks=10)
    assert sorted((chunk.chunk_id, chunk.text) for chunk in found) == sorted(
        [("c1", "second draft"), (chunk_id("notes", "plain words"), "plain words")]
    )
    assert (
        chunk_id("notes", "plain words") == chunk_id("notes", "plain words") != chunk_id("x", "plain words")
    )


async def test_an_insert_checks_every_chunk_before_it_writes(
    stores: VectorStores, vector_io: RawChunks
) -> None:
    store = (await stores.create(ALICE)).record.id
    long = " ".join(["word"] * 400)  # over MiniLM's 256 tokens
    with pytest.raises(ContextLengthExceeded) as caught:
        await vector_io.insert(ALICE, store, [note("fine"), note("given", embedding=[0.1] * 384), note(long)])
    assert caught.value.param == "chunks[2].content" and "'chunks[2].content'" in caught.value.message
    with pytest.raises(InvalidInput) as refused:
        await vector_io.insert(ALICE, store, [note("fine", "a"), note("zero", "b", embedding=[0.0] * 384)])
    assert refused.value.param == "chunks[1].embedding"
    with pytest.raises(InvalidInput) as refused:
        await vector_io.insert(ALICE, store, [RawChunk("text", {"document_id": "d", "n": float("nan")})])
    assert refused.value.param == "chunks[0]"
    assert await stores.index.keyword(store, "fine given", limit=5) == []
    assert (await stores.get(ALICE, store)).file_counts.total == 0


async def test_queries_check_their_ranker_and_stores_are_their_tenants(
    stores: VectorStores, vector_io: RawChunks
) -> None:
    store = (await stores.create(ALICE)).record.id
    await vector_io.insert(ALICE, store, [note("shared secret")])
    with pytest.raises(InvalidInput) as refused:
        await vector_io.query(ALICE, store, "secret", mode="hybrid", impact_factor=10)
    assert refused.value.param == "params.ranker.impact_factor"
    weighted = await vector_io.query(ALICE, store, "secret", mode="hybrid", ranker="weighted", alpha=0.0)
    keyword = await vector_io.query(ALICE, store, "secret", mode="keyword")
    assert [chunk.score for chunk in weighted] == pytest.approx([chunk.score for chunk in keyword])
    with pytest.raises(NotFound):
        await vector_io.insert(BOB, store, [note("intruder")])
    with pytest.raises(NotFound):
        await vector_io.query(BOB, store, "secret")
