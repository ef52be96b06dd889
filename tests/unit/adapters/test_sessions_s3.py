"""Upload sessions staged in S3 under PostgreSQL advisory locks, as two replicas see them: two stagings
with their own S3 clients and lock pools, on one real SeaweedFS and one real PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import asyncpg
import pytest

from cairn.adapters.blobs_s3 import PART_BYTES, S3BlobStore, S3Client, S3Location
from cairn.adapters.locks_pg import PgSessionLocks
from cairn.adapters.sessions_s3 import S3SessionStaging

pytestmark = pytest.mark.anyio

SESSION = "upload-" + "ab" * 16


@pytest.fixture
async def replicas(s3_bucket: Any, postgres_url: str) -> AsyncIterator[list[S3SessionStaging]]:
    stagings, locks = [], []
    for _ in range(2):
        access = S3Client(
            endpoint_url=s3_bucket.endpoint,
            region=s3_bucket.region,
            access_key_id=s3_bucket.access_key_id,
            secret_access_key=s3_bucket.secret_access_key,
        )
        blobs = S3BlobStore(S3Location.parse(f"s3://{s3_bucket.name}/cairn"), access, stray_grace=0)
        locks.append(PgSessionLocks(postgres_url))
        stagings.append(S3SessionStaging(blobs, locks[-1]))
    yield stagings
    for staging, lock in zip(stagings, locks, strict=True):
        await lock.close()
        await staging.blobs.close()


async def _keys(staging: S3SessionStaging) -> list[str]:
    client = await staging.blobs.client()
    listing = await client.list_objects_v2(
        Bucket=staging.blobs.bucket, Prefix=staging.blobs.session_prefix(SESSION)
    )
    return sorted(item["Key"].rsplit(f"{SESSION}/", 1)[1] for item in listing.get("Contents", []))


async def _uploads(staging: S3SessionStaging) -> int:
    client = await staging.blobs.client()
    listing = await client.list_multipart_uploads(
        Bucket=staging.blobs.bucket, Prefix=staging.blobs.session_prefix(SESSION)
    )
    return len(listing.get("Uploads", []))


async def _append(staging: S3SessionStaging, data: bytes) -> int:
    appender = await staging.acquire(SESSION, wait=5)
    try:
        for start in range(0, len(data), 1 << 20):
            await appender.write(data[start : start + (1 << 20)])
        await appender.sync()
        return appender.offset
    finally:
        await appender.release()


async def test_appends_from_two_replicas_join_and_publish_whole(replicas: list[S3SessionStaging]) -> None:
    a, b = replicas
    data = os.urandom(2 * PART_BYTES + 12345)
    assert await _append(a, data[: PART_BYTES + 5]) == PART_BYTES + 5
    assert await b.staged_size(SESSION) == PART_BYTES + 5
    assert await _append(b, data[PART_BYTES + 5 :]) == len(data)
    appender = await a.acquire(SESSION, wait=5)
    try:
        assert appender.offset == len(data)
        staged = b"".join([chunk async for chunk in appender.read_staged()])
        await appender.publish("file-joined")
    finally:
        await appender.release()
    assert hashlib.sha256(staged).digest() == hashlib.sha256(data).digest()
    read = b"".join([chunk async for chunk in b.blobs.read("file-joined", 0, len(data))])
    assert read == data
    await b.retire(SESSION)
    assert await _keys(a) == ["data"]  # the object's bytes: its pointer names them
    await a.blobs.delete("file-joined")
    assert await _keys(a) == []


async def test_bytes_sent_but_never_recorded_do_not_count(replicas: list[S3SessionStaging]) -> None:
    """A replica that dies mid-append has sent whole parts but not rewritten the tail: those parts are
    past the record, and the next append overwrites them."""
    a, b = replicas
    data = os.urandom(PART_BYTES + 1000)
    assert await _append(a, data[:1000]) == 1000
    appender = await a.acquire(SESSION, wait=5)
    await appender.write(os.urandom(PART_BYTES + 50))  # a whole part goes up, then the holder dies
    assert appender.offset == PART_BYTES + 1050
    await appender.release()  # released without sync: what a killed process leaves
    assert await b.staged_size(SESSION) == 1000
    assert await _append(b, data[1000:]) == len(data)
    appender = await b.acquire(SESSION, wait=5)
    try:
        staged = b"".join([chunk async for chunk in appender.read_staged()])
    finally:
        await appender.release()
    assert staged == data


async def test_a_truncated_append_returns_to_its_start(replicas: list[S3SessionStaging]) -> None:
    a, _ = replicas
    await _append(a, b"kept")
    appender = await a.acquire(SESSION, wait=5)
    try:
        await appender.write(os.urandom(PART_BYTES + 3))
        await appender.truncate(4)
        await appender.sync()
        assert appender.offset == 4
    finally:
        await appender.release()
    assert await a.staged_size(SESSION) == 4


async def test_a_dead_holder_frees_the_session_at_once(
    replicas: list[S3SessionStaging], postgres_url: str
) -> None:
    a, b = replicas
    holder = await a.acquire(SESSION, wait=5)
    admin = await asyncpg.connect(postgres_url)
    try:  # what PostgreSQL does when a replica's process dies: its connections end
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
    finally:
        await admin.close()
    started = time.monotonic()
    newcomer = await b.acquire(SESSION, wait=10)
    assert time.monotonic() - started < 5  # not the 10 s a live holder that never lets go would cost
    assert await holder.release_requested()  # a holder that lost its lock stops as if asked
    await holder.release()
    assert not await newcomer.release_requested()
    await newcomer.release()


async def test_a_failed_completion_keeps_the_staged_bytes(replicas: list[S3SessionStaging]) -> None:
    """Published, then the object row could not be written: the pointer goes, the bytes stay for the
    retry, and the sweep spares bytes a session still owns."""
    a, b = replicas
    data = os.urandom(PART_BYTES + 77)
    await _append(a, data)
    appender = await a.acquire(SESSION, wait=5)
    try:
        await appender.publish("file-first")
    finally:
        await appender.release()
    await a.unpublish(SESSION, "file-first")
    assert await b.staged_size(SESSION) == len(data)
    appender = await b.acquire(SESSION, wait=5)
    try:
        await appender.publish("file-stray")  # a crash before its row: the sweep finds the pointer
        await appender.publish("file-second")
    finally:
        await appender.release()

    async def only_second(ids: list[str]) -> set[str]:
        return {i for i in ids if i == "file-second"}

    assert await a.blobs.sweep(only_second) == 1
    read = b"".join([chunk async for chunk in a.blobs.read("file-second", 0, len(data))])
    assert read == data


async def test_discard_removes_everything_the_session_staged(replicas: list[S3SessionStaging]) -> None:
    a, _ = replicas
    await _append(a, os.urandom(PART_BYTES + 9))
    writer = await a.stage_part(SESSION, "part-1")
    await writer.write(b"part")
    await writer.commit("part-1")
    assert await a.part_sizes(SESSION) == {"part-1": 4}
    assert await _uploads(a) == 1
    assert await _keys(a) == ["parts/part-1", "tail"]
    await a.discard(SESSION)
    assert await _keys(a) == []
    assert await _uploads(a) == 0


async def test_two_replicas_dropping_one_session_at_once_both_succeed(
    replicas: list[S3SessionStaging],
) -> None:
    """Every replica runs the expiry, so two may drop the same session together: the second finds the
    multipart upload or the objects already gone, and that is not an error."""
    a, b = replicas
    for _ in range(5):
        await _append(a, os.urandom(PART_BYTES + 9))  # a multipart upload and a tail
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(a.discard, SESSION)
            tasks.start_soon(b.discard, SESSION)
        assert await _keys(a) == []
        assert await _uploads(a) == 0
