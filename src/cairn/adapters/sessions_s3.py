"""Upload sessions staged in S3, so that any replica can append to any session (D17).

Layout under ``s3://<bucket>/<prefix>sessions/<session id>/``::

    data             the session's multipart upload while bytes arrive; once the session is whole,
                     the completed object (sealed), which its object's pointer then names
    tail             the bytes past the last whole part, with metadata: how many parts of which
                     multipart upload count. Written last in every append: the append's commit record
    parts/<part id>  the parts of an upload that arrives in parts (OpenAI Uploads)

The offset is the size of the parts that count (part sizes follow a fixed schedule) plus the tail's.
An append sends whole parts while bytes arrive and rewrites the tail when it ends, so a crash before
that leaves the previous record, and the parts sent since are overwritten by the next append (parts
past the record never count). One appender at a time, across processes: ``SessionLocks`` (``locks_pg.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
from botocore.exceptions import ClientError

from ..core.ports.locks import SessionLock, SessionLocks
from .blobs_s3 import S3BlobStore, S3BlobWriter, error_code, part_size, translate_errors

PARTS_META = "cairn-parts"
UPLOAD_META = "cairn-upload"
NO_SUCH_UPLOAD = "NoSuchUpload"  # AWS's answer to aborting an upload already aborted or completed


class S3SessionAppender:
    def __init__(
        self,
        staging: S3SessionStaging,
        session_id: str,
        lock: SessionLock,
        head_data: dict[str, Any] | None,
        head_tail: dict[str, Any] | None,
    ) -> None:
        self._blobs = staging.blobs
        self._prefix = staging.blobs.session_prefix(session_id)
        self._lock = lock
        self._sealed = head_data is not None
        meta = {} if head_tail is None else head_tail.get("Metadata", {})
        self._parts = int(meta.get(PARTS_META, 0))  # parts that count, as the tail records
        self._upload_id: str | None = meta.get(UPLOAD_META) or None
        self._tail_size = 0 if head_tail is None else head_tail["ContentLength"]
        self._sent = self._parts  # parts sent, counted or not yet
        self._buffer: bytearray | None = None  # the tail and what arrived since; loaded on first use
        if head_data is not None:
            self.offset = head_data["ContentLength"]
        else:
            self.offset = sum(part_size(n) for n in range(1, self._parts + 1)) + self._tail_size
        self._recorded_offset = self.offset

    @property
    def data_key(self) -> str:
        return f"{self._prefix}data"

    async def _loaded_buffer(self) -> bytearray:
        if self._buffer is None:
            self._buffer = bytearray()
            async for data in self._blobs.read_key(f"{self._prefix}tail", 0, self._tail_size):
                self._buffer += data
        return self._buffer

    async def write(self, data: bytes | bytearray) -> None:
        assert not self._sealed, "write to a sealed session"
        buffer = await self._loaded_buffer()
        buffer += data
        self.offset += len(data)
        while len(buffer) >= (size := part_size(self._sent + 1)):
            await self._send_part(self._sent + 1, bytes(buffer[:size]))
            del buffer[:size]
            self._sent += 1

    async def _send_part(self, number: int, body: bytes) -> str:
        client = await self._blobs.client()
        with translate_errors():
            if self._upload_id is None:
                created = await client.create_multipart_upload(Bucket=self._blobs.bucket, Key=self.data_key)
                self._upload_id = created["UploadId"]
            response = await client.upload_part(
                Bucket=self._blobs.bucket,
                Key=self.data_key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=body,
            )
        return str(response["ETag"])

    @property
    def settled_offset(self) -> int:
        return self._recorded_offset

    async def truncate(self, offset: int) -> None:
        """Back to the last record: parts sent since then stop counting."""
        assert offset == self._recorded_offset, "an S3 session truncates only to where the append began"
        self._sent, self._buffer, self.offset = self._parts, None, offset

    async def sync(self) -> None:
        """Record the parts sent and the new tail: the append's bytes now count."""
        if self._sealed or self.offset == self._recorded_offset:
            return
        buffer = await self._loaded_buffer()
        with translate_errors():
            await (await self._blobs.client()).put_object(
                Bucket=self._blobs.bucket,
                Key=f"{self._prefix}tail",
                Body=bytes(buffer),
                Metadata={PARTS_META: str(self._sent), UPLOAD_META: self._upload_id or ""},
            )
        self._parts, self._tail_size, self._recorded_offset = self._sent, len(buffer), self.offset

    async def _seal(self) -> None:
        """Turn the staged bytes into one object at ``data``: complete the multipart upload with the
        tail as its last part (or put the tail alone, if no part was ever sent)."""
        if self._sealed:
            return
        await self.sync()
        buffer = await self._loaded_buffer()
        client = await self._blobs.client()
        if self._upload_id is None or self._parts == 0:
            with translate_errors():
                await client.put_object(Bucket=self._blobs.bucket, Key=self.data_key, Body=bytes(buffer))
        else:
            parts = await self._counted_parts()
            if buffer:
                etag = await self._send_part(self._parts + 1, bytes(buffer))
                parts.append({"PartNumber": self._parts + 1, "ETag": etag})
            with translate_errors():
                await client.complete_multipart_upload(
                    Bucket=self._blobs.bucket,
                    Key=self.data_key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": parts},
                )
        self._sealed, self._buffer = True, None

    async def _counted_parts(self) -> list[dict[str, Any]]:
        client = await self._blobs.client()
        parts: list[dict[str, Any]] = []
        with translate_errors():
            async for page in client.get_paginator("list_parts").paginate(
                Bucket=self._blobs.bucket, Key=self.data_key, UploadId=self._upload_id
            ):
                parts += (
                    {"PartNumber": p["PartNumber"], "ETag": p["ETag"]}
                    for p in page.get("Parts", [])
                    if p["PartNumber"] <= self._parts
                )
        if len(parts) != self._parts:
            raise OSError(f"{self.data_key}: {len(parts)} parts found, {self._parts} recorded")
        return sorted(parts, key=lambda part: part["PartNumber"])

    async def read_staged(self) -> AsyncIterator[bytes]:
        await self._seal()
        async for data in self._blobs.read_key(self.data_key, 0, self.offset):
            yield data

    async def publish(self, blob_id: str) -> None:
        await self._seal()
        await self._blobs.put_pointer(blob_id, self.data_key)

    async def release_requested(self) -> bool:
        return await self._lock.release_requested()

    async def release(self) -> None:
        self._buffer = None
        await self._lock.release()


class S3SessionStaging:
    def __init__(self, blobs: S3BlobStore, locks: SessionLocks) -> None:
        self.blobs = blobs
        self._locks = locks

    async def acquire(self, session_id: str, wait: float) -> S3SessionAppender:
        lock = await self._locks.acquire(session_id, wait)
        try:
            head_data, head_tail = await self._heads(session_id)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await lock.release()
            raise
        return S3SessionAppender(self, session_id, lock, head_data, head_tail)

    async def _heads(self, session_id: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        prefix = self.blobs.session_prefix(session_id)
        return await self.blobs.head(f"{prefix}data"), await self.blobs.head(f"{prefix}tail")

    async def staged_size(self, session_id: str) -> int:
        head_data, head_tail = await self._heads(session_id)
        if head_data is not None:
            return int(head_data["ContentLength"])
        if head_tail is None:
            return 0
        parts = int(head_tail.get("Metadata", {}).get(PARTS_META, 0))
        return sum(part_size(n) for n in range(1, parts + 1)) + int(head_tail["ContentLength"])

    def _part_key(self, session_id: str, part_id: str) -> str:
        return f"{self.blobs.session_prefix(session_id)}parts/{part_id}"

    async def stage_part(self, session_id: str, part_id: str) -> S3BlobWriter:
        return S3BlobWriter(self.blobs, self._part_key(session_id, part_id), pointer=False)

    async def drop_part(self, session_id: str, part_id: str) -> None:
        with translate_errors():
            await (await self.blobs.client()).delete_object(
                Bucket=self.blobs.bucket, Key=self._part_key(session_id, part_id)
            )

    async def part_sizes(self, session_id: str) -> dict[str, int]:
        prefix = self._part_key(session_id, "")
        return {key[len(prefix) :]: size async for key, size in self._objects(prefix)}

    async def read_parts(self, session_id: str, part_ids: list[str]) -> AsyncIterator[bytes]:
        sizes = await self.part_sizes(session_id)
        for part_id in part_ids:
            async for data in self.blobs.read_key(self._part_key(session_id, part_id), 0, sizes[part_id]):
                yield data

    async def publish_parts(self, session_id: str, part_ids: list[str], blob_id: str) -> None:
        data_key = f"{self.blobs.session_prefix(session_id)}data"
        await self.blobs.put(blob_id, self.read_parts(session_id, part_ids), data_key=data_key)

    async def unpublish(self, session_id: str, blob_id: str) -> None:
        await self.blobs.delete_pointer(blob_id)  # the sealed bytes stay the session's

    async def retire(self, session_id: str) -> None:
        await self._drop(session_id, keep_data=True)

    async def discard(self, session_id: str) -> None:
        await self._drop(session_id, keep_data=False)

    async def _drop(self, session_id: str, *, keep_data: bool) -> None:
        prefix = self.blobs.session_prefix(session_id)
        client = await self.blobs.client()
        with translate_errors():
            async for page in client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.blobs.bucket, Prefix=prefix
            ):
                for upload in page.get("Uploads", []):
                    try:
                        await client.abort_multipart_upload(
                            Bucket=self.blobs.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                    except ClientError as exc:  # another replica's expiry dropped it first
                        if error_code(exc) != NO_SUCH_UPLOAD:
                            raise
            async for key, _size in self._objects(prefix):
                if not (keep_data and key == f"{prefix}data"):
                    await client.delete_object(Bucket=self.blobs.bucket, Key=key)

    async def _objects(self, prefix: str) -> AsyncIterator[tuple[str, int]]:
        client = await self.blobs.client()
        with translate_errors():
            async for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=self.blobs.bucket, Prefix=prefix
            ):
                for item in page.get("Contents", []):
                    yield item["Key"], int(item["Size"])
