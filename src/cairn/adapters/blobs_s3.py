"""Blobs in an S3-compatible object store (AWS S3, SeaweedFS, MinIO, ...), through aiobotocore (D16).

Layout under ``s3://<bucket>/<prefix>``::

    blobs/<id>       a committed blob, named by object id only: its bytes, or, for a blob that went up
                     in parts, an empty pointer whose metadata ``cairn-data`` names its data object
    data/<random>    the bytes of a blob that went up in parts

The engine learns a blob's id only at commit, and a multipart upload's key is fixed when it starts, so a
large blob goes up under ``data/<random>`` and its id becomes a pointer to it (copying the bytes to
``blobs/<id>`` would cost a second pass over every large object). Up to one part (8 MiB) goes up as one
PutObject at commit, straight to ``blobs/<id>``. Parts are sent while the next fills, so at most two
parts are in memory; they grow from 8 MiB as the object grows, to stay inside S3's 10,000 parts.

Commit of a large blob is: put the pointer, then CompleteMultipartUpload; both are atomic, and the blob
is readable only once its metadata row exists, after both. Delete removes the data before the pointer,
so a data object never outlives its pointer. Crash behaviour: a pointer or blob without a metadata row
(crash before the row insert, or after the row delete) is deleted by the sweep once it is older than
``STRAY_GRACE_SECONDS``, data first; a multipart upload nobody completed or aborted is aborted by the
sweep once it is older than ``MULTIPART_GRACE_SECONDS`` (S3 cannot tell whether its writer still lives).
Several replicas may sweep at once: every step is idempotent.

Upload sessions still stage on the local disk (``LocalStagingToS3``) and their completed bytes go to
S3; that serves one replica, not several (issue 5, item 3).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from ..core.errors import NotFound, Unavailable
from ..core.ports import BlobWriter, LiveCheck
from .blobs_local import LocalBlobStore, LocalSessionAppender

log = logging.getLogger("cairn.blobs")

PART_BYTES = 8 << 20
PARTS_PER_SIZE = 2000  # the part size doubles every 2,000 parts: 8 MiB parts up to ~16 GiB, ...
READ_CHUNK_BYTES = 1 << 20
STRAY_GRACE_SECONDS = 15 * 60
MULTIPART_GRACE_SECONDS = 24 * 3600
SWEEP_BATCH = 1000  # ListObjectsV2's page limit
POINTER_META = "cairn-data"
REPORTED_FREE_BYTES = 1 << 62  # S3 has no notion of free space; the engine's reserve check always passes
_MISSING = {"NoSuchKey", "404", "NotFound"}


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # "" or ends with "/"

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """``s3://bucket`` or ``s3://bucket/some/prefix``."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"{url!r} is not an s3://bucket/prefix URL")
        prefix = parts.path.strip("/")
        return cls(parts.netloc, f"{prefix}/" if prefix else "")


@dataclass(frozen=True)
class S3Client:
    """How to reach the store. ``None`` fields fall back to botocore's usual chain: the ``AWS_*``
    environment variables, ``~/.aws/config`` and credentials, or an instance role."""

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None

    def __post_init__(self) -> None:
        # botocore reads AWS_ENDPOINT_URL(_S3) itself, but path-style addressing depends on it; and it
        # knows only AWS_DEFAULT_REGION, not the AWS_REGION that the other AWS SDKs read
        env = os.environ
        endpoint = self.endpoint_url or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
        object.__setattr__(self, "endpoint_url", endpoint or None)
        object.__setattr__(self, "region", self.region or env.get("AWS_REGION") or None)


def _part_size(part_number: int) -> int:
    return PART_BYTES << ((part_number - 1) // PARTS_PER_SIZE)


@contextlib.contextmanager
def _translate_errors() -> Iterator[None]:
    """Any failure but a missing key → ``Unavailable``: the client cannot fix it, the operator can."""
    try:
        yield
    except BotoCoreError as exc:
        log.error("s3.unreachable error=%s", exc)
        raise Unavailable("The object store cannot be reached; retry shortly.") from exc
    except ClientError as exc:
        if _error_code(exc) in _MISSING:
            raise
        log.error("s3.failed error=%s", exc)  # refused credentials, a missing bucket, a server error
        raise Unavailable("The object store refused or failed the request; retry shortly.") from exc


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3BlobWriter:
    def __init__(self, store: S3BlobStore) -> None:
        self._store = store
        self._buffer = bytearray()
        self._data_key: str | None = None  # set once the multipart upload started
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._in_flight: asyncio.Task[dict[str, Any]] | None = None
        self._done = False

    def _next_part_number(self) -> int:
        return len(self._parts) + (self._in_flight is not None) + 1

    async def write(self, data: bytes | bytearray) -> None:
        assert not self._done, "write after commit or abort"
        self._buffer += data
        if len(self._buffer) >= _part_size(self._next_part_number()):
            await self._send_buffer()

    async def _send_buffer(self) -> None:
        """Hand the buffer to a part upload once the previous part has gone."""
        if self._upload_id is None:
            self._data_key = self._store.new_data_key()
            with _translate_errors():
                created = await (await self._store.client()).create_multipart_upload(
                    Bucket=self._store.bucket, Key=self._data_key
                )
            self._upload_id = created["UploadId"]
        await self._collect_in_flight()
        body, self._buffer = bytes(self._buffer), bytearray()
        self._in_flight = asyncio.create_task(self._upload_part(self._next_part_number(), body))

    async def _upload_part(self, number: int, body: bytes) -> dict[str, Any]:
        with _translate_errors():
            response = await (await self._store.client()).upload_part(
                Bucket=self._store.bucket,
                Key=self._data_key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=body,
            )
        return {"PartNumber": number, "ETag": response["ETag"]}

    async def _collect_in_flight(self) -> None:
        if self._in_flight is not None:
            task, self._in_flight = self._in_flight, None
            self._parts.append(await task)

    async def commit(self, blob_id: str) -> None:
        assert not self._done, "commit after commit or abort"
        self._done = True
        try:
            await self._commit(blob_id)
        except BaseException:
            await self._abort()
            raise

    async def _commit(self, blob_id: str) -> None:
        client = await self._store.client()
        key = self._store.blob_key(blob_id)
        if self._upload_id is None:
            body, self._buffer = bytes(self._buffer), bytearray()
            with _translate_errors():
                await client.put_object(Bucket=self._store.bucket, Key=key, Body=body)
            return
        if self._buffer:
            await self._send_buffer()
        await self._collect_in_flight()
        with _translate_errors():
            await client.put_object(
                Bucket=self._store.bucket, Key=key, Body=b"", Metadata={POINTER_META: self._data_key}
            )
            await client.complete_multipart_upload(
                Bucket=self._store.bucket,
                Key=self._data_key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        self._upload_id = None

    async def abort(self) -> None:
        self._done = True
        await self._abort()

    async def _abort(self) -> None:
        self._buffer = bytearray()
        if self._in_flight is not None:
            self._in_flight.cancel()
            with contextlib.suppress(BaseException):
                await self._in_flight
            self._in_flight = None
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is not None:
            with contextlib.suppress(ClientError, BotoCoreError):  # else the sweep aborts it later
                await (await self._store.client()).abort_multipart_upload(
                    Bucket=self._store.bucket, Key=self._data_key, UploadId=upload_id
                )


class S3BlobStore:
    """One aiobotocore client per store, opened on first use in the running event loop."""

    def __init__(
        self,
        location: S3Location,
        access: S3Client,
        *,
        stray_grace: float = STRAY_GRACE_SECONDS,
        multipart_grace: float = MULTIPART_GRACE_SECONDS,
    ) -> None:
        self.bucket = location.bucket
        self._stray_grace = stray_grace
        self._multipart_grace = multipart_grace
        self._prefix = location.prefix
        self._access = access
        self._exit_stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self._opening = asyncio.Lock()

    async def client(self) -> Any:
        if self._client is None:
            async with self._opening:
                if self._client is None:
                    self._client = await self._exit_stack.enter_async_context(self._create_client())
        return self._client

    def _create_client(self) -> Any:
        config = AioConfig(
            # the portable subset: S3-compatible stores do not all take the newer default checksums
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": "path"} if self._access.endpoint_url else None,
            retries={"max_attempts": 3, "mode": "standard"},
            max_pool_connections=64,
        )
        return get_session().create_client(
            "s3",
            endpoint_url=self._access.endpoint_url,
            region_name=self._access.region,
            aws_access_key_id=self._access.access_key_id,
            aws_secret_access_key=self._access.secret_access_key,
            config=config,
        )

    async def close(self) -> None:
        self._client = None
        await self._exit_stack.aclose()

    def blob_key(self, blob_id: str) -> str:
        return f"{self._prefix}blobs/{blob_id}"

    def new_data_key(self) -> str:
        return f"{self._prefix}data/{secrets.token_hex(16)}"

    async def put(self, blob_id: str, chunks: AsyncIterator[bytes]) -> None:
        """Stream ``chunks`` into the blob ``blob_id`` (a copy of bytes staged elsewhere)."""
        writer = await self.stage()
        try:
            async for data in chunks:
                await writer.write(data)
            await writer.commit(blob_id)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await writer.abort()
            raise

    async def stage(self) -> S3BlobWriter:
        return S3BlobWriter(self)

    async def _data_key(self, blob_id: str) -> str | None:
        """Where a blob's bytes are: its own key, or the data object its pointer names; None if absent."""
        key = self.blob_key(blob_id)
        try:
            with _translate_errors():
                head = await (await self.client()).head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in _MISSING:
                return None
            raise
        return head.get("Metadata", {}).get(POINTER_META, key)

    async def read(self, blob_id: str, start: int, end: int) -> AsyncIterator[bytes]:
        key = await self._data_key(blob_id)
        if key is None:
            log.error("blob.missing id=%s", blob_id)
            raise NotFound(f"No such file: '{blob_id}'.", param="file_id")
        if start >= end:
            return
        try:
            with _translate_errors():
                response = await (await self.client()).get_object(
                    Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end - 1}"
                )
        except ClientError as exc:
            if _error_code(exc) in _MISSING:
                log.error("blob.missing id=%s", blob_id)
                raise NotFound(f"No such file: '{blob_id}'.", param="file_id") from exc
            raise
        position = start
        async with response["Body"] as body:
            with _translate_errors():
                async for data in body.iter_chunks(READ_CHUNK_BYTES):
                    position += len(data)
                    yield data
        if position != end:
            raise OSError(f"blob {blob_id} is shorter than its recorded size")

    async def delete(self, blob_id: str) -> None:
        key = self.blob_key(blob_id)
        data_key = await self._data_key(blob_id)
        client = await self.client()
        with _translate_errors():
            if data_key is not None and data_key != key:
                await client.delete_object(Bucket=self.bucket, Key=data_key)
            await client.delete_object(Bucket=self.bucket, Key=key)

    async def free_bytes(self) -> int:
        return REPORTED_FREE_BYTES

    async def sweep(self, is_live: LiveCheck) -> int:
        removed = await self._abort_abandoned_uploads()
        client = await self.client()
        cutoff = time.time() - self._stray_grace
        prefix = self.blob_key("")
        with _translate_errors():
            async for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": SWEEP_BATCH}
            ):
                old = [
                    item["Key"][len(prefix) :]
                    for item in page.get("Contents", [])
                    if item["LastModified"].timestamp() < cutoff
                ]
                live = await is_live(old) if old else set()
                for blob_id in old:
                    if blob_id not in live:
                        await self.delete(blob_id)
                        removed += 1
        return removed

    async def _abort_abandoned_uploads(self) -> int:
        client = await self.client()
        cutoff = time.time() - self._multipart_grace
        removed = 0
        with _translate_errors():
            async for page in client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=f"{self._prefix}data/"
            ):
                for upload in page.get("Uploads", []):
                    if upload["Initiated"].timestamp() < cutoff:
                        with contextlib.suppress(ClientError):  # completed or aborted meanwhile
                            await client.abort_multipart_upload(
                                Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                            )
                            removed += 1
        return removed


class _PublishToS3:
    """A local session appender whose ``publish`` puts the staged bytes into S3."""

    def __init__(
        self, local: LocalSessionAppender, staging: LocalBlobStore, session_id: str, blobs: S3BlobStore
    ):
        self.local = local
        self._staging = staging
        self._session_id = session_id
        self._blobs = blobs

    @property
    def offset(self) -> int:
        return self.local.offset

    async def write(self, data: bytes | bytearray) -> None:
        await self.local.write(data)

    async def truncate(self, offset: int) -> None:
        await self.local.truncate(offset)

    async def sync(self) -> None:
        await self.local.sync()

    async def publish(self, blob_id: str) -> None:
        await self.local.sync()
        await self._blobs.put(blob_id, self._staging.read_staged(self._session_id))

    def release_requested(self) -> bool:
        return self.local.release_requested()

    async def release(self) -> None:
        await self.local.release()


class LocalStagingToS3:
    """Upload sessions staged on this replica's disk, published to S3 when they complete. Until
    sessions stage in S3 (issue 5, item 3), a session must be continued on the replica that started it."""

    def __init__(self, local: LocalBlobStore, blobs: S3BlobStore) -> None:
        self.local = local
        self._blobs = blobs

    async def acquire(self, session_id: str, wait: float) -> _PublishToS3:
        return _PublishToS3(await self.local.acquire(session_id, wait), self.local, session_id, self._blobs)

    async def staged_size(self, session_id: str) -> int:
        return await self.local.staged_size(session_id)

    def read_staged(self, session_id: str) -> AsyncIterator[bytes]:
        return self.local.read_staged(session_id)

    async def stage_part(self, session_id: str) -> BlobWriter:
        return await self.local.stage_part(session_id)

    async def drop_part(self, session_id: str, part_id: str) -> None:
        await self.local.drop_part(session_id, part_id)

    async def part_sizes(self, session_id: str) -> dict[str, int]:
        return await self.local.part_sizes(session_id)

    def read_parts(self, session_id: str, part_ids: list[str]) -> AsyncIterator[bytes]:
        return self.local.read_parts(session_id, part_ids)

    async def publish_parts(self, session_id: str, part_ids: list[str], blob_id: str) -> None:
        await self._blobs.put(blob_id, self.local.read_parts(session_id, part_ids))

    async def discard(self, session_id: str) -> None:
        await self.local.discard(session_id)
