"""The ``VectorStoreRows`` contract (``core/ports/vector_stores.py``), on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import secrets

import pytest
from _adapters import on

from cairn.core.errors import Conflict
from cairn.core.ports.vector_stores import VectorStoreRows
from cairn.core.records import (
    FileCounts,
    StoreTally,
    VectorFileStatus,
    VectorStoreBatchRecord,
    VectorStoreFileRecord,
    VectorStoreRecord,
)

pytestmark = [pytest.mark.anyio, on("sqlite", "postgres")]

NOW = 1_800_000_000
STATIC = {"type": "static", "static": {"max_chunk_size_tokens": 254, "chunk_overlap_tokens": 127}}


def store(tenant: str = "alice", n: int = 0, **changes: object) -> VectorStoreRecord:
    record = VectorStoreRecord(
        id=f"vs_{NOW + n:012x}{secrets.token_hex(10)}",
        tenant=tenant,
        name=f"store {n}",
        created_at=NOW + n,
        last_active_at=NOW + n,
        metadata={"team": "a"},
        expires_after_days=None,
        expires_at=None,
        embedding_model="onnx/all-MiniLM-L6-v2",
        embedding_dimension=384,
        description=f"the {n}th store",
    )
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


def attached(
    store_id: str, file_id: str, tenant: str = "alice", *, at: int = NOW, batch_id: str | None = None
) -> VectorStoreFileRecord:
    return VectorStoreFileRecord(
        store_id=store_id,
        file_id=file_id,
        tenant=tenant,
        status=VectorFileStatus.IN_PROGRESS,
        last_error=None,
        attributes={"lang": "en", "year": 2024, "draft": False, "score": 0.5},
        chunking_strategy=STATIC,
        usage_bytes=0,
        created_at=at,
        batch_id=batch_id,
        generation=1,
    )


async def test_a_store_is_its_tenants_and_updates_and_touches_keep_its_expiry(
    vector_store_rows: VectorStoreRows,
) -> None:
    rows = vector_store_rows
    mine = store()
    await rows.insert_store(mine)
    with pytest.raises(Conflict):
        await rows.insert_store(dataclasses.replace(mine, tenant="bob"))
    assert await rows.get_store("alice", mine.id) == mine
    assert await rows.get_store("bob", mine.id) is None
    assert await rows.update_store(dataclasses.replace(mine, tenant="bob", name="x")) is None
    changed = dataclasses.replace(
        mine, name="renamed", metadata={}, expires_after_days=2, expires_at=NOW + 2 * 86400
    )
    assert await rows.update_store(changed) == changed
    await rows.touch_store("alice", mine.id, NOW + 100)
    touched = await rows.get_store("alice", mine.id)
    assert touched is not None and (touched.last_active_at, touched.expires_at) == (
        NOW + 100,
        NOW + 100 + 2 * 86400,
    )
    await rows.touch_store("bob", mine.id, NOW + 999)
    assert await rows.get_store("alice", mine.id) == touched


async def test_expiry_is_for_good_and_expired_stores_are_listed_until_reclaimed(
    vector_store_rows: VectorStoreRows,
) -> None:
    rows = vector_store_rows
    day = 86400
    later = store(n=1, expires_after_days=1, expires_at=NOW + 2 * day)
    sooner = store("bob", n=2, expires_after_days=1, expires_at=NOW + day)
    for each in (later, sooner, store(n=3), store(n=4, expires_after_days=5, expires_at=NOW + 5 * day)):
        await rows.insert_store(each)
    assert await rows.expired_stores(NOW, 10) == []
    assert [s.id for s in await rows.expired_stores(NOW + 3 * day, 10)] == [sooner.id, later.id]
    assert [s.id for s in await rows.expired_stores(NOW + 3 * day, 1)] == [sooner.id]
    await rows.touch_store("bob", sooner.id, NOW + 3 * day)  # activity does not revive an expired store
    assert await rows.get_store("bob", sooner.id) == sooner
    await rows.mark_reclaimed("alice", sooner.id, NOW + 3 * day)  # another tenant's: nothing
    await rows.mark_reclaimed("bob", sooner.id, NOW + 3 * day)
    reclaimed = await rows.get_store("bob", sooner.id)
    assert reclaimed == dataclasses.replace(sooner, reclaimed_at=NOW + 3 * day)
    assert reclaimed.expired(NOW) and not later.expired(NOW + day) and later.expired(NOW + 2 * day)
    assert [s.id for s in await rows.expired_stores(NOW + 3 * day, 10)] == [later.id]


async def test_stores_page_by_id_both_ways_and_per_tenant(vector_store_rows: VectorStoreRows) -> None:
    rows = vector_store_rows
    made = [store(n=n) for n in range(5)]
    for each in made:
        await rows.insert_store(each)
    await rows.insert_store(store("bob", 9))
    ids = [s.id for s in made]
    page = await rows.list_stores("alice", after=None, before=None, limit=2, order="desc")
    assert [s.id for s in page.items] == ids[::-1][:2] and page.has_more
    page = await rows.list_stores("alice", after=ids[3], before=None, limit=10, order="desc")
    assert [s.id for s in page.items] == ids[2::-1] and not page.has_more
    page = await rows.list_stores("alice", after=ids[1], before=None, limit=2, order="asc")
    assert [s.id for s in page.items] == ids[2:4] and page.has_more
    page = await rows.list_stores("alice", after=None, before=ids[3], limit=2, order="asc")
    assert [s.id for s in page.items] == ids[1:3] and page.has_more
    page = await rows.list_stores("alice", after=None, before=ids[1], limit=2, order="desc")
    assert [s.id for s in page.items] == ids[3:1:-1] and page.has_more
    page = await rows.list_stores("alice", after=None, before=ids[3], limit=5, order="desc")
    assert [s.id for s in page.items] == [ids[4]] and not page.has_more


async def test_attaching_is_idempotent_and_a_failed_file_is_attached_anew(
    vector_store_rows: VectorStoreRows,
) -> None:
    rows = vector_store_rows
    mine = store()
    await rows.insert_store(mine)
    first = attached(mine.id, "file-1")
    assert await rows.attach_file(first) == first
    again = dataclasses.replace(first, attributes={}, created_at=NOW + 5, batch_id="vsfb_1")
    assert await rows.attach_file(again) == dataclasses.replace(first, batch_id="vsfb_1")
    # an ingestion ends once per generation
    error = {"code": "invalid_file", "message": "bad"}
    failed = await rows.finish_file("alice", mine.id, "file-1", 1, VectorFileStatus.FAILED, last_error=error)
    assert failed is not None and failed.status is VectorFileStatus.FAILED and failed.last_error == error
    assert await rows.finish_file("alice", mine.id, "file-1", 1, VectorFileStatus.COMPLETED) is None
    renewed = await rows.attach_file(again)
    assert renewed == dataclasses.replace(again, generation=2)
    assert await rows.finish_file("alice", mine.id, "file-1", 1, VectorFileStatus.COMPLETED) is None
    assert await rows.finish_file("bob", mine.id, "file-1", 2, VectorFileStatus.COMPLETED) is None
    done = await rows.finish_file("alice", mine.id, "file-1", 2, VectorFileStatus.COMPLETED, usage_bytes=70)
    assert done == dataclasses.replace(renewed, status=VectorFileStatus.COMPLETED, usage_bytes=70)
    assert await rows.get_file("alice", mine.id, "file-1") == done
    assert await rows.get_file("bob", mine.id, "file-1") is None


async def test_tallies_count_files_by_status_per_store_and_per_batch(
    vector_store_rows: VectorStoreRows,
) -> None:
    rows = vector_store_rows
    one, two = store(n=1), store(n=2)
    for each in (one, two):
        await rows.insert_store(each)
    await rows.insert_batch(VectorStoreBatchRecord("vsfb_a", one.id, "alice", NOW, False))
    for n in range(4):
        await rows.attach_file(attached(one.id, f"file-{n}", batch_id="vsfb_a" if n < 3 else None))
    await rows.attach_file(attached(two.id, "file-0"))
    await rows.finish_file("alice", one.id, "file-0", 1, VectorFileStatus.COMPLETED, usage_bytes=10)
    await rows.finish_file("alice", one.id, "file-3", 1, VectorFileStatus.COMPLETED, usage_bytes=5)
    await rows.finish_file("alice", one.id, "file-1", 1, VectorFileStatus.FAILED)
    tallies = await rows.tally("alice", "store", [one.id, two.id, "vs_none"])
    assert tallies == {
        one.id: StoreTally(FileCounts(in_progress=1, completed=2, failed=1), 15),
        two.id: StoreTally(FileCounts(in_progress=1), 0),
        "vs_none": StoreTally(FileCounts(), 0),
    }
    assert tallies[one.id].file_counts.total == 4
    assert (await rows.tally("alice", "batch", ["vsfb_a"]))["vsfb_a"] == StoreTally(
        FileCounts(in_progress=1, completed=1, failed=1), 10
    )
    assert (await rows.tally("bob", "store", [one.id]))[one.id] == StoreTally(FileCounts(), 0)

    cancelled = await rows.cancel_batch("alice", one.id, "vsfb_a")
    assert [f.file_id for f in cancelled or []] == ["file-2"]
    assert await rows.cancel_batch("bob", one.id, "vsfb_a") is None
    batch = await rows.get_batch("alice", one.id, "vsfb_a")
    assert batch is not None and batch.cancelled
    assert await rows.get_batch("bob", one.id, "vsfb_a") is None
    assert (await rows.tally("alice", "batch", ["vsfb_a"]))["vsfb_a"].file_counts == FileCounts(
        completed=1, failed=1, cancelled=1
    )


async def test_files_page_by_attachment_time_filter_by_status_and_batch(
    vector_store_rows: VectorStoreRows,
) -> None:
    rows = vector_store_rows
    mine = store()
    await rows.insert_store(mine)
    for n in range(5):  # two share a second: the file id breaks the tie
        await rows.attach_file(
            attached(mine.id, f"file-{n}", at=NOW + n // 2 * 2, batch_id="b" if n % 2 else None)
        )
    await rows.finish_file("alice", mine.id, "file-4", 1, VectorFileStatus.COMPLETED)
    names = [f"file-{n}" for n in range(5)]

    async def listed(**options: object) -> tuple[list[str], bool]:
        arguments: dict[str, object] = {"after": None, "before": None, "limit": 10, "order": "asc"} | options
        page = await rows.list_files("alice", mine.id, **arguments)  # type: ignore[arg-type]
        return [f.file_id for f in page.items], page.has_more

    assert await listed() == (names, False)
    assert await listed(order="desc", limit=2) == (names[::-1][:2], True)
    assert await listed(after="file-1", limit=2) == (names[2:4], True)
    assert await listed(after="file-3", order="desc") == (names[2::-1], False)
    assert await listed(before="file-3", limit=2) == (names[1:3], True)
    assert await listed(before="file-1", order="desc") == (names[:1:-1], False)
    assert await listed(after="file-nope") == ([], False)
    assert await listed(status=VectorFileStatus.COMPLETED) == (["file-4"], False)
    assert await listed(batch_id="b") == (["file-1", "file-3"], False)
    assert (await rows.list_files("bob", mine.id, after=None, before=None, limit=10, order="asc")).items == []


async def test_attributes_detach_attachments_of_an_object_and_deleting_a_store(
    vector_store_rows: VectorStoreRows,
) -> None:
    rows = vector_store_rows
    one, two = store(n=1), store(n=2)
    for each in (one, two):
        await rows.insert_store(each)
    for each in (one, two):
        await rows.attach_file(attached(each.id, "file-x"))
    await rows.attach_file(attached(one.id, "file-y"))
    await rows.insert_batch(VectorStoreBatchRecord("vsfb_b", one.id, "alice", NOW, False))
    changed = await rows.set_attributes("alice", one.id, "file-x", {"k": True})
    assert changed is not None and changed.attributes == {"k": True}
    assert await rows.set_attributes("bob", one.id, "file-x", {}) is None
    assert sorted(f.store_id for f in await rows.files_of_object("alice", "file-x")) == sorted(
        [one.id, two.id]
    )
    assert await rows.files_of_object("bob", "file-x") == []
    assert await rows.delete_file("bob", two.id, "file-x") is None
    gone = await rows.delete_file("alice", two.id, "file-x")
    assert gone is not None and gone.file_id == "file-x"
    assert await rows.get_file("alice", two.id, "file-x") is None

    assert await rows.delete_store("bob", one.id) is None
    dropped = await rows.delete_store("alice", one.id)
    assert sorted(f.file_id for f in dropped or []) == ["file-x", "file-y"]
    assert await rows.get_store("alice", one.id) is None
    assert await rows.get_batch("alice", one.id, "vsfb_b") is None
    assert await rows.files_of_object("alice", "file-x") == []


async def test_a_completed_file_is_put_whole_only_while_its_store_exists(
    vector_store_rows: VectorStoreRows,
) -> None:
    rows = vector_store_rows
    mine = store()
    await rows.insert_store(mine)
    done = dataclasses.replace(
        attached(mine.id, "vsdoc_1"),
        status=VectorFileStatus.COMPLETED,
        attributes={"document_id": "d"},
        chunking_strategy={"type": "other"},
        usage_bytes=12,
    )
    assert await rows.put_completed_file(done) == done
    again = dataclasses.replace(done, usage_bytes=30, created_at=NOW + 9, attributes={"document_id": "e"})
    assert await rows.put_completed_file(again) == dataclasses.replace(again, created_at=NOW, generation=2)
    assert (await rows.tally("alice", "store", [mine.id]))[mine.id] == StoreTally(FileCounts(completed=1), 30)
    assert await rows.put_completed_file(dataclasses.replace(done, tenant="bob")) is None
    assert await rows.get_file("bob", mine.id, "vsdoc_1") is None
    await rows.delete_store("alice", mine.id)
    assert await rows.put_completed_file(done) is None
    assert await rows.get_file("alice", mine.id, "vsdoc_1") is None
