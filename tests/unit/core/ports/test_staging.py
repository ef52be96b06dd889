"""The ``SessionStaging`` contract (``core/ports/staging.py``), on the local disk and on S3."""

from __future__ import annotations

import time

import pytest
from _adapters import on, session_id

from cairn.core.errors import NotFound
from cairn.core.objects import new_object_id
from cairn.core.ports.blobs import BlobStore
from cairn.core.ports.staging import SessionStaging

pytestmark = [pytest.mark.anyio, on("local", "s3")]


def blob_id() -> str:
    return new_object_id(int(time.time() * 1000))


async def append(staging: SessionStaging, session: str, *pieces: bytes) -> int:
    appender = await staging.acquire(session, wait=5)
    try:
        for piece in pieces:
            await appender.write(piece)
        await appender.sync()
        return appender.offset
    finally:
        await appender.release()


async def read(blobs: BlobStore, name: str, size: int) -> bytes:
    return b"".join([chunk async for chunk in blobs.read(name, 0, size)])


async def test_staged_size_is_what_was_written(staging: SessionStaging) -> None:
    session = session_id()
    assert await staging.staged_size(session) == 0
    assert await append(staging, session, b"abc", bytearray(b"de")) == 5
    assert await staging.staged_size(session) == 5
    assert await append(staging, session, b"fgh") == 8
    appender = await staging.acquire(session, wait=5)
    try:
        assert appender.offset == appender.settled_offset == 8
    finally:
        await appender.release()
    assert await staging.staged_size(session) == 8


async def test_truncate_drops_an_append_that_must_not_count(staging: SessionStaging) -> None:
    session = session_id()
    await append(staging, session, b"kept")
    appender = await staging.acquire(session, wait=5)
    try:
        await appender.write(b"dropped")
        await appender.truncate(4)
        await appender.sync()
        assert appender.offset == 4
    finally:
        await appender.release()
    assert await staging.staged_size(session) == 4


async def test_publish_reads_back_the_staged_bytes_and_retire_keeps_them(
    staging: SessionStaging, blobs: BlobStore
) -> None:
    session, name = session_id(), blob_id()
    await append(staging, session, b"hello ", b"world")
    appender = await staging.acquire(session, wait=5)
    try:
        assert b"".join([chunk async for chunk in appender.read_staged()]) == b"hello world"
        await appender.publish(name)
    finally:
        await appender.release()
    await staging.retire(session)
    assert await read(blobs, name, 11) == b"hello world"


async def test_unpublish_removes_the_blob_and_keeps_the_staging(
    staging: SessionStaging, blobs: BlobStore
) -> None:
    session, name = session_id(), blob_id()
    await append(staging, session, b"retry me")
    appender = await staging.acquire(session, wait=5)
    try:
        await appender.publish(name)
    finally:
        await appender.release()
    await staging.unpublish(session, name)
    with pytest.raises(NotFound):
        await read(blobs, name, 8)
    assert await staging.staged_size(session) == 8


async def test_parts_join_in_the_order_given(staging: SessionStaging, blobs: BlobStore) -> None:
    session, name = session_id(), blob_id()
    for part, data in [("part-b", b"BB"), ("part-a", b"A"), ("part-c", b"CCC"), ("part-x", b"dropped")]:
        writer = await staging.stage_part(session, part)
        await writer.write(data)
        await writer.commit(part)
    await staging.drop_part(session, "part-x")
    assert await staging.part_sizes(session) == {"part-a": 1, "part-b": 2, "part-c": 3}
    order = ["part-c", "part-a", "part-b"]
    assert b"".join([chunk async for chunk in staging.read_parts(session, order)]) == b"CCCABB"
    await staging.publish_parts(session, order, name)
    assert await read(blobs, name, 6) == b"CCCABB"
    assert await staging.part_sizes(session) == {"part-a": 1, "part-b": 2, "part-c": 3}  # until discarded


async def test_discard_drops_the_staged_bytes_and_parts(staging: SessionStaging) -> None:
    session = session_id()
    await append(staging, session, b"some bytes")
    writer = await staging.stage_part(session, "part-1")
    await writer.write(b"part")
    await writer.commit("part-1")
    await staging.discard(session)
    assert await staging.staged_size(session) == 0
    assert await staging.part_sizes(session) == {}
    await staging.discard(session)  # the expiry of every replica may drop it: twice is fine
