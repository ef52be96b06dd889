"""The ``BlobStore`` contract (``core/ports/blobs.py``), on the local disk and on S3."""

from __future__ import annotations

import os
import time

import pytest
from _adapters import on

from cairn.core.errors import NotFound
from cairn.core.objects import new_object_id
from cairn.core.ports.blobs import BlobStore

pytestmark = [pytest.mark.anyio, on("local", "s3")]


def blob_id() -> str:
    return new_object_id(int(time.time() * 1000))


async def read(blobs: BlobStore, blob_id: str, start: int, end: int) -> bytes:
    return b"".join([chunk async for chunk in blobs.read(blob_id, start, end)])


async def committed(blobs: BlobStore, data: bytes) -> str:
    writer = await blobs.stage()
    for start in range(0, len(data), 100_000):
        await writer.write(data[start : start + 100_000])
    name = blob_id()
    await writer.commit(name)
    return name


async def test_a_blob_is_invisible_until_commit(blobs: BlobStore) -> None:
    writer = await blobs.stage()
    await writer.write(b"not yet")
    await writer.write(bytearray(b", now"))
    name = blob_id()
    with pytest.raises(NotFound):
        await read(blobs, name, 0, 7)
    await writer.commit(name)
    assert await read(blobs, name, 0, 12) == b"not yet, now"


async def test_read_yields_exactly_the_bytes_start_to_end(blobs: BlobStore) -> None:
    data = os.urandom(300_001)
    name = await committed(blobs, data)
    for start, end in [(0, len(data)), (0, 1), (99_999, 100_001), (123, 250_000), (len(data) - 1, len(data))]:
        assert await read(blobs, name, start, end) == data[start:end], (start, end)


async def test_abort_discards_and_is_safe_to_repeat(blobs: BlobStore) -> None:
    writer = await blobs.stage()
    await writer.write(b"never")
    await writer.abort()
    await writer.abort()


async def test_a_missing_blob_is_not_found(blobs: BlobStore) -> None:
    with pytest.raises(NotFound):
        await read(blobs, blob_id(), 0, 1)


async def test_delete_reclaims_and_deleting_a_missing_blob_is_fine(blobs: BlobStore) -> None:
    name = await committed(blobs, b"bye")
    await blobs.delete(name)
    with pytest.raises(NotFound):
        await read(blobs, name, 0, 3)
    await blobs.delete(name)
    await blobs.delete(blob_id())


async def test_the_sweep_spares_every_blob_that_is_live(blobs: BlobStore) -> None:
    names = [await committed(blobs, bytes([n]) * 10) for n in range(3)]

    async def all_live(ids: list[str]) -> set[str]:
        return set(ids)

    await blobs.sweep(all_live)
    for n, name in enumerate(names):
        assert await read(blobs, name, 0, 10) == bytes([n]) * 10
    await blobs.ping()
