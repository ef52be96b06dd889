"""The vector store service (``core/vectors/stores.py``) and its ingestion job, through the real
composition on SQLite and on PostgreSQL with the embedded MiniLM: files of every face are ingested and
found, a file of an unreadable kind fails alone, attributes reach the filters, detaching, deleting and
cancelling leave no chunks, a deleted Cairn object is detached everywhere, tenants stay apart, an
ingestion that a closed runner left half done completes in the next process and one out of attempts
fails, a PDF whose text holds NULs is ingested, and an expired store is read but not used, its chunks
reclaimed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from _composition import Upload, settings, settled, uploader
from _documents import pdf

from cairn.adapters.packaged_models import packaged_embedding_model
from cairn.adapters.tokenizer_hf import HuggingFaceTokenOffsets
from cairn.compose import Composition, composed
from cairn.core.errors import InvalidInput, ModelNotFound, NotFound, VectorStoreExpired
from cairn.core.ports.vectors import Comparison
from cairn.core.records import JobStatus, VectorFileStatus
from cairn.core.vectors.ingest import JOB_KIND
from cairn.core.vectors.stores import DAY, FileSpec, VectorStores, ingestion_job_id

pytestmark = pytest.mark.anyio

ALICE, BOB = "alice", "bob"
MODEL = "onnx/all-MiniLM-L6-v2"
TEXT = (
    "Granite is a coarse-grained igneous rock composed mostly of quartz, alkali feldspar and plagioclase. "
    "It forms from magma with a high content of silica that cools slowly underground."
)
MARKDOWN = "# Sourdough\n\nA sourdough starter is flour and water fermented by wild yeast and lactobacilli.\n"
HTML = (
    "<html><head><style>p {color: red}</style></head><body><h1>Comets</h1>"
    "<p>A comet is an icy body that releases gas when it passes close to the Sun.</p></body></html>"
)


@pytest.fixture(scope="module")
def upload(composition: Composition) -> Upload:
    return uploader(composition)


async def query_vector(composition: Composition, text: str) -> list[float]:
    _, embedded = await composition.services.inference.embed(MODEL, [text], ALICE)
    return embedded.vectors[0]


async def test_files_of_any_face_are_ingested_and_found_and_an_unreadable_one_fails_alone(
    composition: Composition, stores: VectorStores, upload: Upload
) -> None:
    txt = await upload(ALICE, "granite.txt", TEXT.encode())
    md = await upload(ALICE, "bread.md", MARKDOWN.encode(), bucket="artifacts")
    html = await upload(ALICE, "comets.html", HTML.encode())
    binary = await upload(ALICE, "noise.bin", bytes(range(256)) * 4)
    store = await stores.create(ALICE, name="notes", metadata={"team": "geo"}, file_ids=[txt.id, md.id])
    assert (store.record.embedding_model, store.record.embedding_dimension) == (MODEL, 384)
    assert store.record.id.startswith("vs_") and store.status == "in_progress"
    assert store.file_counts.total == 2
    await stores.attach_file(ALICE, store.record.id, html.id, attributes={"kind": "web"})
    await stores.attach_file(ALICE, store.record.id, binary.id)

    ended = {f.id: await settled(stores, ALICE, store.record.id, f.id) for f in (txt, md, html, binary)}
    assert ended[binary.id].status is VectorFileStatus.FAILED
    assert (
        ended[binary.id].last_error is not None and ended[binary.id].last_error["code"] == "unsupported_file"
    )
    for each in (txt, md, html):
        assert ended[each.id].status is VectorFileStatus.COMPLETED and ended[each.id].usage_bytes > 0
        assert ended[each.id].chunking_strategy == {
            "type": "static",
            "static": {"max_chunk_size_tokens": 254, "chunk_overlap_tokens": 127},
        }
    shown = await stores.get(ALICE, store.record.id)
    assert shown.status == "completed"
    assert (shown.file_counts.completed, shown.file_counts.failed, shown.file_counts.total) == (3, 1, 4)
    assert shown.usage_bytes == sum(ended[f.id].usage_bytes for f in (txt, md, html))

    index = stores.index
    hits = await index.keyword(store.record.id, "feldspar", limit=3)
    assert [h.file_id for h in hits] == [txt.id]
    hits = await index.nearest(
        store.record.id, await query_vector(composition, "baking bread with yeast"), limit=3
    )
    assert hits[0].file_id == md.id and len(hits) == 3
    hits = await index.nearest(
        store.record.id,
        await query_vector(composition, "ice"),
        limit=3,
        filters=Comparison("kind", "eq", "web"),
    )
    assert [h.file_id for h in hits] == [html.id]
    content = await stores.file_content(ALICE, store.record.id, html.id)
    assert content.startswith("Comets\nA comet is") and "color" not in content

    # attributes reach the filters; a detached file leaves no chunk behind
    await stores.update_file_attributes(ALICE, store.record.id, txt.id, {"kind": "web", "year": 2024})
    hits = await index.nearest(
        store.record.id,
        await query_vector(composition, "rock"),
        limit=3,
        filters=Comparison("kind", "eq", "web"),
    )
    assert {h.file_id for h in hits} == {txt.id, html.id}
    assert hits[0].attributes == {"kind": "web", "year": 2024}
    detached = await stores.detach_file(ALICE, store.record.id, txt.id)
    assert detached.file_id == txt.id
    assert await index.keyword(store.record.id, "feldspar", limit=3) == []
    with pytest.raises(NotFound):
        await stores.get_file(ALICE, store.record.id, txt.id)
    page = await stores.list_files(ALICE, store.record.id, status=VectorFileStatus.COMPLETED, order="asc")
    assert [f.file_id for f in page.items] == [md.id, html.id]

    # a Cairn object that goes is detached from every store
    other = await stores.create(ALICE, file_ids=[md.id])
    await settled(stores, ALICE, other.record.id, md.id)
    await composition.services.objects.delete(ALICE, None, md.id)
    for each in (store, other):
        with pytest.raises(NotFound):
            await stores.get_file(ALICE, each.record.id, md.id)
        assert await index.keyword(each.record.id, "sourdough", limit=3) == []

    # deleting a store drops its partition
    await stores.delete(ALICE, store.record.id)
    assert await index.keyword(store.record.id, "comet", limit=3) == []
    with pytest.raises(NotFound):
        await stores.get(ALICE, store.record.id)


async def test_a_batch_attaches_files_with_their_own_attributes_and_a_cancel_stops_it(
    composition: Composition, stores: VectorStores, upload: Upload
) -> None:
    one = await upload(ALICE, "one.txt", b"Basalt is a fine-grained volcanic rock.")
    two = await upload(ALICE, "two.txt", b"Obsidian is volcanic glass.")
    store = await stores.create(ALICE, name="rocks")
    with pytest.raises(InvalidInput):
        await stores.create_batch(ALICE, store.record.id, file_ids=[one.id], files=[FileSpec(two.id)])
    batch = await stores.create_batch(
        ALICE,
        store.record.id,
        files=[FileSpec(one.id, {"n": 1}), FileSpec(two.id, {"n": 2}, {"type": "auto"})],
    )
    assert batch.record.id.startswith("vsfb_") and batch.file_counts.total == 2
    for each in (one, two):
        await settled(stores, ALICE, store.record.id, each.id)
    done = await stores.get_batch(ALICE, store.record.id, batch.record.id)
    assert (done.status, done.file_counts.completed) == ("completed", 2)
    listed = await stores.list_batch_files(ALICE, store.record.id, batch.record.id, order="asc")
    assert {f.file_id: f.attributes for f in listed.items} == {one.id: {"n": 1}, two.id: {"n": 2}}
    hits = await stores.index.keyword(store.record.id, "volcanic", limit=5, filters=Comparison("n", "gt", 1))
    assert [h.file_id for h in hits] == [two.id]

    long = await upload(ALICE, "long.txt", (TEXT + "\n\n").encode() * 400)
    slow = await stores.create_batch(ALICE, store.record.id, file_ids=[long.id], attributes={"n": 3})
    cancelled = await stores.cancel_batch(ALICE, store.record.id, slow.record.id)
    assert (cancelled.status, cancelled.file_counts.cancelled) == ("cancelled", 1)
    file = await stores.get_file(ALICE, store.record.id, long.id)
    assert file.status is VectorFileStatus.CANCELLED
    job_id = ingestion_job_id(file)
    deadline = time.monotonic() + 30
    while (job := await composition.services.jobs.get(ALICE, job_id)) is not None and job.status not in (
        JobStatus.CANCELLED,
        JobStatus.SUCCEEDED,
    ):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert await stores.index.keyword(store.record.id, "granite", limit=3) == []
    assert (await stores.get_file(ALICE, store.record.id, long.id)).status is VectorFileStatus.CANCELLED


async def test_tenants_stay_apart_and_inputs_are_checked(stores: VectorStores, upload: Upload) -> None:
    mine = await upload(ALICE, "mine.txt", b"private notes")
    store = await stores.create(ALICE)
    theirs = await stores.create(BOB)
    with pytest.raises(NotFound) as found:
        await stores.attach_file(BOB, theirs.record.id, mine.id)
    assert found.value.param == "file_id"
    for call in (stores.get(BOB, store.record.id), stores.attach_file(BOB, store.record.id, mine.id)):
        with pytest.raises(NotFound):
            await call
    assert store.record.id not in [s.record.id for s in (await stores.list(BOB)).items]
    assert store.record.id in [s.record.id for s in (await stores.list(ALICE)).items]
    with pytest.raises(ModelNotFound):
        await stores.create(ALICE, embedding_model="SmolLM2-135M-Instruct")
    with pytest.raises(InvalidInput) as wrong:
        await stores.create(ALICE, embedding_dimension=768)
    assert wrong.value.param == "embedding_dimension"
    with pytest.raises(InvalidInput):
        await stores.attach_file(
            ALICE,
            store.record.id,
            mine.id,
            chunking_strategy={
                "type": "static",
                "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
            },
        )
    with pytest.raises(InvalidInput):
        await stores.attach_file(ALICE, store.record.id, mine.id, attributes={f"k{n}": n for n in range(17)})
    updated = await stores.update(
        ALICE, store.record.id, name="renamed", expires_after={"anchor": "last_active_at", "days": 2}
    )
    assert updated.record.name == "renamed"
    assert updated.record.expires_at == updated.record.last_active_at + 2 * 86400
    assert (await stores.update(ALICE, store.record.id, expires_after=None)).record.expires_at is None


async def test_an_ingestion_a_closed_runner_left_completes_in_the_next_process(
    tmp_path: Path, fresh_database_url: str
) -> None:
    text = ((TEXT + "\n\n") * 40).encode()
    short_leases = settings(tmp_path, fresh_database_url, job_lease_seconds=1)
    async with composed(short_leases) as first:
        first_stores = first.services.vector_stores
        assert first_stores is not None
        record = await uploader(first)(ALICE, "long.txt", text)
        store = await first_stores.create(ALICE, file_ids=[record.id])
        file = await first_stores.get_file(ALICE, store.record.id, record.id)
        first.services.jobs.start()
        deadline = time.monotonic() + 30
        while (job := await first.job_rows.get(ALICE, ingestion_job_id(file))) is None or (
            job.status is not JobStatus.RUNNING
        ):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        await first.services.jobs.close(timeout=0)
        assert (
            await first_stores.get_file(ALICE, store.record.id, record.id)
        ).status is VectorFileStatus.IN_PROGRESS
        assert await first_stores.index.keyword(store.record.id, "granite", limit=1) == []
    async with composed(short_leases) as second:  # takes the job over once its lease ends
        second.services.jobs.start()
        try:
            second_stores = second.services.vector_stores
            assert second_stores is not None
            done = await settled(second_stores, ALICE, store.record.id, record.id)
            assert done.status is VectorFileStatus.COMPLETED
            assert [
                h.file_id for h in await second_stores.index.keyword(store.record.id, "granite", limit=1)
            ] == [record.id]
        finally:
            await second.services.jobs.close()


async def test_an_ingestion_out_of_attempts_fails_with_the_reason(
    tmp_path: Path, fresh_database_url: str
) -> None:
    """A worker took the last attempt and vanished: the next claim abandons the job, and its file ends
    failed, not in progress for ever."""
    async with composed(settings(tmp_path, fresh_database_url, job_max_attempts=1)) as built:
        stores = built.services.vector_stores
        assert stores is not None
        record = await uploader(built)(ALICE, "granite.txt", TEXT.encode())
        store = await stores.create(ALICE, file_ids=[record.id])
        file = await stores.get_file(ALICE, store.record.id, record.id)
        crashed = await built.job_rows.claim([JOB_KIND], "a worker that crashed", 0, time.time())
        assert crashed is not None and crashed.attempts == crashed.max_attempts == 1
        built.services.jobs.start()
        try:
            deadline = time.monotonic() + 30
            while (job := await built.job_rows.get(ALICE, ingestion_job_id(file))) is not None and (
                job.status is JobStatus.RUNNING
            ):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
        finally:
            await built.services.jobs.close()
        assert job is not None and job.status is JobStatus.FAILED
        failed = await stores.get_file(ALICE, store.record.id, record.id)
    assert failed.status is VectorFileStatus.FAILED
    assert failed.last_error == {"code": "server_error", "message": job.error["message"]}
    assert "abandoned" in failed.last_error["message"]


async def test_a_pdf_whose_text_holds_nul_characters_is_ingested(
    stores: VectorStores, upload: Upload
) -> None:
    record = await upload(ALICE, "nul.pdf", pdf("Basalt\x00 is a volcanic\x00\x00 rock."))
    store = await stores.create(ALICE, file_ids=[record.id])
    done = await settled(stores, ALICE, store.record.id, record.id)
    assert done.status is VectorFileStatus.COMPLETED, done.last_error
    hits = await stores.index.keyword(store.record.id, "basalt", limit=1)
    assert [h.text for h in hits] == ["Basalt is a volcanic rock."]


def clocked(composition: Composition, clock: Callable[[], float]) -> VectorStores:
    """The composition's vector stores on ``clock`` (its ingestion keeps the real one)."""
    services, options = composition.services, composition.services.settings.vector_stores
    packaged = packaged_embedding_model()
    assert packaged is not None
    tokenizer = HuggingFaceTokenOffsets(packaged.tokenizer)
    return VectorStores(
        composition.vector_store_rows,
        composition.vector_index,
        services.objects,
        services.inference,
        services.jobs,
        lambda model: tokenizer,
        default_embedding_model=options.default_embedding_model,
        max_file_bytes=options.max_file_bytes,
        rewrite_model=options.rewrite_model,
        clock=clock,
    )


async def test_an_expired_store_is_read_not_used_and_the_maintenance_reclaims_its_chunks(
    composition: Composition, upload: Upload, clock
) -> None:
    clock.now = time.time()
    stores = clocked(composition, clock)
    granite = await upload(ALICE, "granite.txt", TEXT.encode())
    one_day = {"anchor": "last_active_at", "days": 1}
    store = await stores.create(ALICE, expires_after=one_day, file_ids=[granite.id])
    store_id = store.record.id
    await settled(stores, ALICE, store_id, granite.id)
    assert await stores.reclaim_expired() == 0
    clock.now = time.time() + DAY  # a day after the ingestion's last touch
    expired = await stores.get(ALICE, store_id)
    assert expired.status == "expired" and expired.file_counts.completed == 1
    refused = {
        "vector_store_id": [
            stores.search(ALICE, store_id, "granite"),
            stores.attach_file(ALICE, store_id, granite.id),
            stores.create_batch(ALICE, store_id, file_ids=[granite.id]),
        ],
        "expires_after": [stores.update(ALICE, store_id, expires_after=None)],
    }
    for param, calls in refused.items():
        for call in calls:
            with pytest.raises(VectorStoreExpired) as raised:
                await call
            assert (raised.value.code, raised.value.param) == ("vector_store_expired", param)
    await stores.rows.touch_store(ALICE, store_id, int(clock()))  # activity does not revive it
    renamed = await stores.update(ALICE, store_id, name="old notes")
    assert (renamed.record.name, renamed.record.expires_at) == ("old notes", expired.record.expires_at)
    assert renamed.status == "expired"
    assert await stores.index.keyword(store_id, "granite", limit=1) != []  # until the maintenance runs

    assert await stores.reclaim_expired() == 1
    assert await stores.index.keyword(store_id, "granite", limit=1) == []
    assert await stores.reclaim_expired() == 0  # once
    listed = {s.record.id: s.status for s in (await stores.list(ALICE, limit=100)).items}
    assert listed[store_id] == "expired"
    assert [f.file_id for f in (await stores.list_files(ALICE, store_id)).items] == [granite.id]
    await stores.delete(ALICE, store_id)
    with pytest.raises(NotFound):
        await stores.get(ALICE, store_id)

    # an ingestion that starts once its store has expired does nothing but end the file cancelled
    clock.now = time.time() - 2 * DAY
    late = await stores.create(ALICE, expires_after=one_day, file_ids=[granite.id])
    ended = await settled(stores, ALICE, late.record.id, granite.id)
    assert ended.status is VectorFileStatus.CANCELLED
    assert await stores.index.keyword(late.record.id, "granite", limit=1) == []
