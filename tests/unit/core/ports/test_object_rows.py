"""The ``ObjectRows`` contract (``core/ports/objects.py``), on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools

import pytest
from _adapters import on

from cairn.core.errors import Conflict
from cairn.core.paths import WORKSPACE_BUCKET
from cairn.core.ports.objects import ObjectRows
from cairn.core.records import ObjectRecord

pytestmark = [pytest.mark.anyio, on("sqlite", "postgres")]

NOW = 1_800_000_000
_serial = itertools.count(1)


def record(
    key: str,
    *,
    tenant: str = "t",
    bucket: str = "b",
    n: int | None = None,
    created_at: int = NOW,
    expires_at: int | None = None,
    purpose: str = "p",
) -> ObjectRecord:
    n = next(_serial) if n is None else n
    return ObjectRecord(
        id=f"file-{n:032x}",
        tenant=tenant,
        bucket=bucket,
        key=key,
        filename=key.rsplit("/", 1)[-1] or "folder",
        mime_type="text/plain",
        bytes=10 * n,
        sha256="0" * 64,
        purpose=purpose,
        created_at=created_at,
        expires_at=expires_at,
    )


async def test_rows_are_scoped_by_tenant_and_bucket(object_rows: ObjectRows) -> None:
    mine = record("k", tenant="alice")
    await object_rows.insert_object(mine)
    for tenant, bucket in (("bob", "b"), ("alice", "other")):
        assert await object_rows.get_object(tenant, bucket, mine.id, NOW) is None
        assert await object_rows.get_object_by_key(tenant, bucket, "k", NOW) is None
        assert await object_rows.delete_object(tenant, bucket, mine.id, NOW) is None
        assert await object_rows.delete_object_by_key(tenant, bucket, "k", NOW) is None
        page = await object_rows.list_objects(
            tenant, bucket, purpose=None, after=None, limit=10, order="asc", now=NOW
        )
        assert page.items == []
    assert await object_rows.get_object("bob", None, mine.id, NOW) is None
    assert await object_rows.list_buckets("bob", NOW) == []
    assert await object_rows.get_object("alice", None, mine.id, NOW) == mine
    assert await object_rows.get_object_by_key("alice", "b", "k", NOW) == mine


async def test_pages_by_id_never_skip_or_repeat_within_one_second(object_rows: ObjectRows) -> None:
    created = [record(f"k{i}", n=1000 + i * 7919 % 25) for i in range(25)]  # inserted out of id order
    for r in created:
        await object_rows.insert_object(r)
    await object_rows.insert_object(record("other", purpose="q"))
    for order in ("asc", "desc"):
        seen: list[str] = []
        after = None
        while True:
            page = await object_rows.list_objects(
                "t", "b", purpose="p", after=after, limit=7, order=order, now=NOW
            )
            seen += [r.id for r in page.items]
            if not page.has_more:
                break
            after = page.items[-1].id
        expected = sorted(r.id for r in created)
        assert seen == (expected if order == "asc" else expected[::-1])


async def test_pages_by_key_are_in_byte_order_and_never_skip_or_repeat(object_rows: ObjectRows) -> None:
    keys = ["p/a", "p/B", "p/a/b", "p/a-", "p/é", "p/z", "p/~", "p/\U0001f600", "p/ab", "q/x"]
    for key in keys:
        await object_rows.insert_object(record(key))
    expected = sorted((k for k in keys if k.startswith("p/")), key=str.encode)
    for limit in (1, 3, 100):
        seen: list[str] = []
        after = None
        while True:
            page = await object_rows.list_objects_by_key(
                "t", "b", prefix="p/", start_after=after, limit=limit, now=NOW
            )
            seen += [r.key for r in page.items]
            if not page.has_more:
                break
            after = page.items[-1].key
        assert seen == expected, limit


async def test_key_sizes_are_the_key_listing_narrowed_to_key_size_and_time(
    object_rows: ObjectRows,
) -> None:
    listed = ["p/", "p/x", "p/y/1", "p/y/2", "p/z", "p/é"]
    records = [record(key, n=n, created_at=NOW - n) for n, key in enumerate(["a", *listed, "q"], start=1)]
    records += [
        record("p/other-tenant", n=20, tenant="u"),
        record("p/other-bucket", n=21, bucket="c"),
        record("p/expired", n=22, created_at=NOW - 22, expires_at=NOW),
        record("p/w", n=23, created_at=NOW - 23, expires_at=NOW + 1),
    ]
    for r in records:
        await object_rows.insert_object(r)

    rows = await object_rows.list_key_sizes("t", "b", prefix="p/", start_after=None, limit=100, now=NOW)
    assert [tuple(row) for row in rows] == [
        ("p/", 20, NOW - 2),
        ("p/w", 230, NOW - 23),
        ("p/x", 30, NOW - 3),
        ("p/y/1", 40, NOW - 4),
        ("p/y/2", 50, NOW - 5),
        ("p/z", 60, NOW - 6),
        ("p/é", 70, NOW - 7),
    ]
    for start_after, start_at, limit in [
        ("p/", None, 100),
        ("p/x", None, 2),
        (None, "p/y0", 100),
        ("p/y/1", "p/y/", 1),
        ("p/é", None, 100),
    ]:
        window = {"start_after": start_after, "start_at": start_at, "limit": limit, "now": NOW}
        page = await object_rows.list_objects_by_key("t", "b", prefix="p/", **window)
        rows = await object_rows.list_key_sizes("t", "b", prefix="p/", **window)
        assert [tuple(row) for row in rows] == [(r.key, r.bytes, r.created_at) for r in page.items]


async def test_expired_rows_are_not_found_until_taken_once(object_rows: ObjectRows) -> None:
    going = record("going", expires_at=NOW)
    kept = record("kept", expires_at=NOW + 60)
    for r in (going, kept):
        await object_rows.insert_object(r)
    assert await object_rows.get_object("t", "b", going.id, NOW) is None
    assert await object_rows.get_object_by_key("t", "b", "going", NOW) is None
    assert await object_rows.get_object("t", "b", kept.id, NOW) == kept
    assert await object_rows.existing_ids([going.id, kept.id, "file-" + "f" * 32]) == {going.id, kept.id}
    assert await object_rows.take_expired(NOW, limit=10) == [going]
    assert await object_rows.take_expired(NOW, limit=10) == []
    assert await object_rows.existing_ids([going.id]) == set()


async def test_replace_returns_what_held_the_key(object_rows: ObjectRows) -> None:
    old, new = record("k"), record("k")
    assert await object_rows.replace_object(old) is None
    assert await object_rows.replace_object(new) == old
    assert await object_rows.get_object_by_key("t", "b", "k", NOW) == new
    assert await object_rows.delete_object_by_key("t", "b", "k", NOW) == new
    assert await object_rows.delete_object_by_key("t", "b", "k", NOW) is None


async def test_buckets_are_those_with_live_objects_in_byte_order(object_rows: ObjectRows) -> None:
    for bucket in ("b", "B", "é", "a"):
        await object_rows.insert_object(record("k", bucket=bucket))
    await object_rows.insert_object(record("k", bucket="gone", expires_at=NOW))
    assert await object_rows.list_buckets("t", NOW) == ["B", "a", "b", "é"]


@pytest.mark.parametrize(("first", "second"), [("a", "a/b"), ("a/b", "a"), ("a", "a/")])
async def test_a_workspace_path_is_never_both_a_file_and_a_folder(
    object_rows: ObjectRows, first: str, second: str
) -> None:
    await object_rows.insert_object(record(first, bucket=WORKSPACE_BUCKET))
    with pytest.raises(Conflict):
        await object_rows.insert_object(record(second, bucket=WORKSPACE_BUCKET))
    with pytest.raises(Conflict):
        await object_rows.replace_object(record(second, bucket=WORKSPACE_BUCKET))
    await object_rows.insert_object(record(first, bucket="elsewhere"))
    await object_rows.insert_object(record(second, bucket="elsewhere"))  # the rule is the workspace's
