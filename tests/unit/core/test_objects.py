"""The engine, on every backend set, with real adapters."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest

from cairn.adapters.blobs_local import LocalBlobStore
from cairn.compose import Composition
from cairn.core.errors import InsufficientStorage, InvalidInput, NotFound, TooLarge
from cairn.core.objects import STAGE_BATCH_BYTES, ObjectEngine, new_object_id
from cairn.core.records import ObjectRecord

pytestmark = pytest.mark.anyio


async def stream(data: bytes, piece: int = 65536) -> AsyncIterator[bytes]:
    for i in range(0, len(data), piece):
        yield data[i : i + piece]


async def put(engine: ObjectEngine, data: bytes, *, tenant: str = "t1", **kwargs: object) -> object:
    staged = await engine.stage(stream(data))
    return await engine.commit(
        staged,
        tenant=tenant,
        bucket="files",
        filename="a.bin",
        mime_type="application/octet-stream",
        purpose=str(kwargs.pop("purpose", "assistants")),
        **kwargs,  # type: ignore[arg-type]
    )


async def read_all(engine: ObjectEngine, record, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in engine.read(record, start, end)])


def staging_files(engine: ObjectEngine) -> list[str]:
    return os.listdir(engine.blobs.staging_dir)  # type: ignore[attr-defined]


async def test_put_then_read_round_trips_bytes_and_sha256(engine: ObjectEngine) -> None:
    data = os.urandom(3 * STAGE_BATCH_BYTES + 12345)
    record = await put(engine, data)
    assert record.bytes == len(data)
    assert record.sha256 == hashlib.sha256(data).hexdigest()
    assert await read_all(engine, record) == data
    assert await read_all(engine, record, 10, 2_000_000) == data[10:2_000_000]
    assert staging_files(engine) == []


async def test_put_empty_object(engine: ObjectEngine) -> None:
    record = await put(engine, b"")
    assert (record.bytes, record.sha256) == (0, hashlib.sha256(b"").hexdigest())
    assert await read_all(engine, record) == b""


async def test_stage_over_the_cap_is_refused_and_leaves_nothing(engine: ObjectEngine) -> None:
    engine.max_object_bytes = 100_000
    with pytest.raises(TooLarge):
        await engine.stage(stream(os.urandom(100_001), piece=7000))
    assert staging_files(engine) == []


async def test_stream_that_breaks_leaves_no_staging_file(engine: ObjectEngine) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield os.urandom(STAGE_BATCH_BYTES * 2)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await engine.stage(broken())
    assert staging_files(engine) == []


async def test_aborted_stage_is_never_visible(engine: ObjectEngine) -> None:
    staged = await engine.stage(stream(b"x" * 1000))
    await staged.writer.abort()
    assert staging_files(engine) == []
    page = await engine.list("t1", "files", limit=10)
    assert page.items == []


async def test_ensure_capacity_refuses_over_cap_and_over_free_space(
    engine: ObjectEngine, composition: Composition
) -> None:
    with pytest.raises(TooLarge):
        await engine.ensure_capacity(engine.max_object_bytes + 1)
    engine.min_free_bytes = 1 << 62
    if composition.free_space is None:  # S3: no volume to fill, no reserve to keep
        await engine.ensure_capacity(1)
        return
    with pytest.raises(InsufficientStorage):
        await engine.ensure_capacity(1)


async def test_get_is_scoped_by_tenant_and_bucket(engine: ObjectEngine) -> None:
    record = await put(engine, b"secret", tenant="alice")
    assert (await engine.get("alice", "files", record.id)).id == record.id
    for tenant, bucket in (("bob", "files"), ("alice", "other")):
        with pytest.raises(NotFound):
            await engine.get(tenant, bucket, record.id)
        with pytest.raises(NotFound):
            await engine.delete(tenant, bucket, record.id)
    assert (await engine.list("bob", "files", limit=10)).items == []


@pytest.mark.parametrize("odd", ["", "x" * 500, "file-\x00", "../etc/passwd", "file-ü", "a b"])
async def test_odd_ids_are_not_found(engine: ObjectEngine, odd: str) -> None:
    with pytest.raises(NotFound):
        await engine.get("t1", "files", odd)
    with pytest.raises(NotFound):
        await engine.delete("t1", "files", odd)


async def test_delete_reclaims_bytes_and_second_delete_is_not_found(engine: ObjectEngine) -> None:
    record = await put(engine, b"bye")
    path = engine.blobs.blob_path(record.id)  # type: ignore[attr-defined]
    assert path.exists()
    await engine.delete("t1", "files", record.id)
    assert not path.exists()
    with pytest.raises(NotFound):
        await engine.delete("t1", "files", record.id)


async def test_expired_objects_vanish_and_their_bytes_are_reclaimed(engine: ObjectEngine, clock) -> None:
    keep = await put(engine, b"keep")
    going = await put(engine, b"going", expires_after=3600)
    assert going.expires_at == going.created_at + 3600
    clock.now += 3600
    with pytest.raises(NotFound):
        await engine.get("t1", "files", going.id)
    assert [r.id for r in (await engine.list("t1", "files", limit=10)).items] == [keep.id]
    with pytest.raises(NotFound):
        await engine.delete("t1", "files", going.id)
    assert engine.blobs.blob_path(going.id).exists()  # type: ignore[attr-defined]
    assert await engine.expire_due() == 1
    assert not engine.blobs.blob_path(going.id).exists()  # type: ignore[attr-defined]
    assert (await engine.get("t1", "files", keep.id)).id == keep.id


async def test_deletion_listeners_hear_of_every_object_that_goes_and_cannot_fail_a_delete(
    engine: ObjectEngine, clock
) -> None:
    heard: list[str] = []

    async def listener(record: ObjectRecord) -> None:
        heard.append(record.id)

    async def failing(record: ObjectRecord) -> None:
        raise RuntimeError("a listener's own trouble")

    engine.on_deleted(failing)
    engine.on_deleted(listener)
    deleted, by_key = await put(engine, b"d"), await put(engine, b"b")
    await engine.delete("t1", None, deleted.id)
    await engine.delete_by_key("t1", "files", by_key.key)
    kept = await put(engine, b"k", key="k")
    replacement = await engine.commit(
        await engine.stage(stream(b"k2")),
        tenant="t1",
        bucket="files",
        filename="k",
        mime_type="text/plain",
        purpose="assistants",
        key="k",
        replace=True,
    )
    going = await put(engine, b"e", expires_after=60)
    clock.now += 60
    assert await engine.expire_due() == 1
    assert heard == [deleted.id, by_key.id, kept.id, going.id]
    assert (await engine.get("t1", None, replacement.id)).id == replacement.id


async def test_list_filters_by_purpose(engine: ObjectEngine) -> None:
    a = await put(engine, b"a", purpose="batch")
    await put(engine, b"b", purpose="assistants")
    page = await engine.list("t1", "files", limit=10, purpose="batch")
    assert [r.id for r in page.items] == [a.id]


async def test_list_rejects_bad_limit_and_cursor(engine: ObjectEngine) -> None:
    with pytest.raises(InvalidInput):
        await engine.list("t1", "files", limit=0)
    with pytest.raises(InvalidInput):
        await engine.list("t1", "files", limit=10, after="file-\x00")


def test_object_ids_sort_by_creation_time() -> None:
    ids = [new_object_id(ms) for ms in (1, 2, 1000, 10**12, 2 * 10**12)]
    assert ids == sorted(ids)
    assert all(i.startswith("file-") and len(i) == 37 for i in ids)


async def test_sweep_removes_abandoned_staging_and_orphan_blobs(engine: ObjectEngine) -> None:
    blobs = engine.blobs
    live = await put(engine, b"live")
    orphan = new_object_id(1)
    orphan_path = blobs.blob_path(orphan)  # type: ignore[attr-defined]
    orphan_path.parent.mkdir(parents=True, exist_ok=True)
    orphan_path.write_bytes(b"left by a crash between rename and row insert")
    abandoned = blobs.staging_dir / "dead.part"  # type: ignore[attr-defined]
    abandoned.write_bytes(b"left by a crashed writer")
    half_joined = blobs.staging_dir / "dead.join"  # type: ignore[attr-defined]
    half_joined.mkdir()
    (half_joined / "00000").write_bytes(b"a part linked in before a crash")
    in_flight = await blobs.stage()
    await in_flight.write(b"still being written")
    old = 1_000_000_000
    for path in (orphan_path, blobs.blob_path(live.id)):  # type: ignore[attr-defined]
        os.utime(path, (old, old))

    assert await engine.sweep() == 3  # staging no writer holds goes however young it is
    assert not orphan_path.exists() and not abandoned.exists() and not half_joined.exists()
    assert await read_all(engine, live) == b"live"
    assert len(staging_files(engine)) == 1  # the writer holding its lock is left alone
    await in_flight.abort()


LIVE_WRITER = """
import asyncio, sys
from pathlib import Path
from cairn.adapters.blobs_local import LocalBlobStore

async def main():
    writer = await LocalBlobStore(Path(sys.argv[1])).stage()
    await writer.write(b"x" * 1_000_000)
    print("staged", flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


async def test_staging_of_a_live_process_is_spared_and_goes_the_moment_it_is_killed(tmp_path) -> None:
    """Another process sharing the data directory stages an upload: a sweep (another process's start)
    leaves it alone, however young; once that process is killed (SIGKILL: no cleanup of its own), the
    next sweep removes its staging at once, with no grace period to wait out."""
    store = LocalBlobStore(tmp_path / "data")
    with subprocess.Popen(
        [sys.executable, "-c", LIVE_WRITER, str(store.root)], stdout=subprocess.PIPE, text=True
    ) as child:
        try:
            assert child.stdout is not None and child.stdout.readline() == "staged\n"
            assert await store.sweep(_no_rows) == 0
            assert [p.stat().st_size for p in store.staging_dir.iterdir()] == [1_000_000]
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
    assert await store.sweep(_no_rows) == 1
    assert list(store.staging_dir.iterdir()) == []


async def test_sweeps_without_pause_never_take_a_starting_writer_s_staging(tmp_path) -> None:
    """With no grace period, a sweep may open a staging file between its writer's create and flock: the
    writer must notice and start afresh, never lose its bytes. 2,000 uploads against sweeps in a loop
    (without that check, dozens were lost)."""
    store = LocalBlobStore(tmp_path / "data")
    done = asyncio.Event()

    async def sweep_until_done() -> None:
        while not done.is_set():
            await store.sweep(_no_rows)

    async def upload(n: int) -> bytes:
        writer = await store.stage()
        await writer.write(b"%d" % n)
        blob_id = new_object_id(n)
        await writer.commit(blob_id)
        return store.blob_path(blob_id).read_bytes()

    sweeping = asyncio.ensure_future(sweep_until_done())
    stored = []
    try:
        for batch in range(40):
            stored += await asyncio.gather(*(upload(batch * 50 + i) for i in range(50)))
    finally:
        done.set()
        await sweeping
    assert stored == [b"%d" % n for n in range(2000)]
    assert list(store.staging_dir.iterdir()) == []


async def _no_rows(blob_ids: list[str]) -> set[str]:
    return set()
