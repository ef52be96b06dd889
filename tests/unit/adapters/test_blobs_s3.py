"""The S3 blob store against a real SeaweedFS (SigV4 checked): streaming multipart staging, atomic
commit, ranged reads, delete, the sweep, and the local session staging that publishes to S3."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from cairn.adapters.blobs_s3 import PART_BYTES, S3BlobStore, S3Client, S3Location
from cairn.core.errors import NotFound, Unavailable
from cairn.core.ports.blobs import ReportsFreeSpace

pytestmark = pytest.mark.anyio


@pytest.fixture
def bucket(s3_bucket: Any) -> Any:
    return s3_bucket


def _store(bucket: Any, secret: str | None = None, **grace: float) -> S3BlobStore:
    access = S3Client(
        endpoint_url=bucket.endpoint,
        region=bucket.region,
        access_key_id=bucket.access_key_id,
        secret_access_key=secret or bucket.secret_access_key,
    )
    return S3BlobStore(S3Location.parse(f"s3://{bucket.name}/pre/fix"), access, **grace)


@pytest.fixture
async def store(bucket: Any) -> AsyncIterator[S3BlobStore]:
    s3 = _store(bucket)
    yield s3
    await s3.close()


def _keys(bucket: Any) -> list[str]:
    listing = bucket.seaweed.client.list_objects_v2(Bucket=bucket.name)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def _multipart_uploads(bucket: Any) -> list[str]:
    listing = bucket.seaweed.client.list_multipart_uploads(Bucket=bucket.name)
    return [upload["Key"] for upload in listing.get("Uploads", [])]


async def _read(store: S3BlobStore, blob_id: str, start: int, end: int) -> bytes:
    return b"".join([chunk async for chunk in store.read(blob_id, start, end)])


def test_location_parses_bucket_and_prefix() -> None:
    assert S3Location.parse("s3://b") == S3Location("b", "")
    assert S3Location.parse("s3://b/a/b/") == S3Location("b", "a/b/")
    for bad in ("http://b/x", "s3:///x", "s3://b/x?y=1"):
        with pytest.raises(ValueError):
            S3Location.parse(bad)


async def test_small_blob_is_one_object_under_its_id_and_reads_by_range(store, bucket) -> None:
    writer = await store.stage()
    await writer.write(b"hello ")
    await writer.write(b"world")
    assert _keys(bucket) == []  # nothing visible before commit
    await writer.commit("file-small")
    assert _keys(bucket) == ["pre/fix/blobs/file-small"]
    assert await _read(store, "file-small", 0, 11) == b"hello world"
    assert await _read(store, "file-small", 6, 9) == b"wor"
    assert await _read(store, "file-small", 3, 3) == b""


async def test_large_blob_streams_in_parts_and_commits_atomically(store, bucket) -> None:
    data = os.urandom(2 * PART_BYTES + 12345)
    writer = await store.stage()
    for i in range(0, len(data), 1 << 20):
        await writer.write(data[i : i + (1 << 20)])
    assert _multipart_uploads(bucket), "parts go up while the blob is staged"
    assert _keys(bucket) == []
    await writer.commit("file-large")
    assert _multipart_uploads(bucket) == []
    keys = _keys(bucket)
    assert "pre/fix/blobs/file-large" in keys and len(keys) == 2  # the pointer and its data object
    whole = await _read(store, "file-large", 0, len(data))
    assert hashlib.sha256(whole).digest() == hashlib.sha256(data).digest()
    start, end = PART_BYTES - 10, PART_BYTES + 20  # across a part boundary
    assert await _read(store, "file-large", start, end) == data[start:end]


async def test_a_read_is_one_request_and_a_pointer_costs_two_more(store, bucket) -> None:
    for blob_id, size in (("file-direct", 10), ("file-pointer", PART_BYTES + 10)):
        writer = await store.stage()
        await writer.write(b"x" * size)
        await writer.commit(blob_id)
    sent: list[str] = []

    def count(request: Any, **_: Any) -> None:
        sent.append(request.method)

    (await store.client()).meta.events.register("before-send.s3", count)
    assert await _read(store, "file-direct", 2, 5) == b"xxx"
    assert sent == ["GET"]
    sent.clear()
    assert await _read(store, "file-pointer", PART_BYTES, PART_BYTES + 10) == b"x" * 10
    assert sent == ["GET", "HEAD", "GET"]  # the empty pointer cannot serve the range (416)
    sent.clear()
    with pytest.raises(NotFound):
        await _read(store, "file-missing", 0, 1)
    assert sent == ["GET"]


async def test_abort_leaves_nothing_behind(store, bucket) -> None:
    writer = await store.stage()
    await writer.write(os.urandom(PART_BYTES + 1))
    assert _multipart_uploads(bucket)
    await writer.abort()
    await writer.abort()
    assert _multipart_uploads(bucket) == []
    assert _keys(bucket) == []


async def test_a_failed_part_fails_the_blob_and_abort_cleans_up_the_parts_in_flight(store, bucket) -> None:
    def fail_part_two(params: dict[str, Any], **_: Any) -> None:
        if params["PartNumber"] == 2:
            raise EndpointConnectionError(endpoint_url="part 2")

    (await store.client()).meta.events.register("provide-client-params.s3.UploadPart", fail_part_two)
    writer = await store.stage()
    chunk = os.urandom(1 << 20)
    with pytest.raises(Unavailable):
        for _ in range(8 * PART_BYTES >> 20):  # up to 8 parts: part 2's failure surfaces on the way
            await writer.write(chunk)
        await writer.commit("file-never")
    await writer.abort()
    assert _multipart_uploads(bucket) == []
    assert _keys(bucket) == []


async def test_delete_removes_pointer_and_data_and_is_idempotent(store, bucket) -> None:
    for blob_id, size in (("file-a", 10), ("file-b", PART_BYTES + 10)):
        writer = await store.stage()
        await writer.write(os.urandom(size))
        await writer.commit(blob_id)
    await store.delete("file-a")
    await store.delete("file-b")
    await store.delete("file-b")
    assert _keys(bucket) == []
    with pytest.raises(NotFound):
        await _read(store, "file-b", 0, 1)


async def test_sweep_removes_rowless_blobs_and_abandoned_uploads_only(bucket) -> None:
    store = _store(bucket, stray_grace=0, multipart_grace=0)
    try:
        for blob_id, size in (("file-live", 5), ("file-stray", 5), ("file-stray-big", PART_BYTES + 1)):
            writer = await store.stage()
            await writer.write(os.urandom(size))
            await writer.commit(blob_id)
        abandoned = await store.stage()
        await abandoned.write(os.urandom(PART_BYTES + 1))  # a writer that died mid-upload

        async def is_live(ids: list[str]) -> set[str]:
            return {blob_id for blob_id in ids if blob_id == "file-live"}

        assert await store.sweep(is_live) == 3
        assert _keys(bucket) == ["pre/fix/blobs/file-live"]
        assert _multipart_uploads(bucket) == []
    finally:
        await store.close()


async def test_sweep_spares_young_blobs(store, bucket) -> None:
    writer = await store.stage()
    await writer.write(b"x")
    await writer.commit("file-young")

    async def nothing_is_live(ids: list[str]) -> set[str]:
        return set()

    assert await store.sweep(nothing_is_live) == 0
    assert _keys(bucket) == ["pre/fix/blobs/file-young"]


async def test_wrong_secret_is_refused_as_unavailable(bucket) -> None:
    store = _store(bucket, secret="not-the-secret")
    try:
        writer = await store.stage()
        await writer.write(b"x")
        with pytest.raises(Unavailable):
            await writer.commit("file-x")
        with pytest.raises(Unavailable):
            await _read(store, "file-x", 0, 1)
    finally:
        await store.close()
    assert _keys(bucket) == []


async def test_unreachable_store_is_unavailable(tmp_path: Path) -> None:
    access = S3Client(
        endpoint_url="http://127.0.0.1:9", region="us-east-1", access_key_id="k", secret_access_key="s"
    )
    store = S3BlobStore(S3Location.parse("s3://nowhere"), access)
    try:
        with pytest.raises(Unavailable):
            await _read(store, "file-x", 0, 1)
    finally:
        await store.close()


async def test_s3_claims_no_free_space_to_report(store) -> None:
    """S3 has no volume that fills up: the store does not pretend to a figure, and the composer gives
    the engine no free-space reserve to check for it."""
    assert not isinstance(store, ReportsFreeSpace)
