"""Blobs in an S3-compatible object store (AWS S3, SeaweedFS, MinIO, ...), through aiobotocore (D16).

Layout under ``s3://<bucket>/<prefix>``::

    blobs/<id>       a committed blob, named by object id only: its bytes, or, for a blob that went up
                     in parts, an empty pointer whose metadata ``cairn-data`` names its data object
    data/<random>    the bytes of a blob that went up in parts
    sessions/<id>/   an upload session's staging (``sessions_s3.py``); a completed session's
                     ``data`` is named by its object's pointer

The engine learns a blob's id only at commit, and a multipart upload's key is fixed when it starts, so a
large blob goes up under ``data/<random>`` and its id becomes a pointer to it (copying the bytes to
``blobs/<id>`` would cost a second pass over every large object). Up to one part (8 MiB) goes up as one
PutObject at commit, straight to ``blobs/<id>``. Two parts are sent at once while the next fills, so at
most three parts are in memory; they grow from 8 MiB as the object grows, to stay inside S3's 10,000
parts.

Commit of a large blob is: put the pointer, then CompleteMultipartUpload; both are atomic, and the blob
is readable only once its metadata row exists, after both. Delete removes the data before the pointer,
so a data object never outlives its pointer. Crash behaviour: a pointer or blob without a metadata row
(crash before the row insert, or after the row delete) is deleted by the sweep once it is older than
``STRAY_GRACE_SECONDS``, data first (bytes an upload session still owns stay with the session); a
multipart upload nobody completed or aborted is aborted by the sweep once it is older than
``MULTIPART_GRACE_SECONDS`` (S3 cannot tell whether its writer still lives).
Several replicas may sweep at once: every step is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Collection, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import anyio
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from ..core.errors import NotFound, Unavailable
from ..core.ports.blobs import LiveCheck

log = logging.getLogger("cairn.blobs")

PART_BYTES = 8 << 20
PARTS_IN_FLIGHT = 2  # part uploads at once: SeaweedFS took 1 GiB ~15% faster than with one (D16)
PARTS_PER_SIZE = 2000  # the part size doubles every 2,000 parts: 8 MiB parts up to ~16 GiB, ...
READ_CHUNK_BYTES = 1 << 20
STRAY_GRACE_SECONDS = 15 * 60
MULTIPART_GRACE_SECONDS = 24 * 3600
SWEEP_BATCH = 1000  # ListObjectsV2's page limit
POINTER_META = "cairn-data"
MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
UNSATISFIABLE_RANGE = "InvalidRange"


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


def part_size(part_number: int) -> int:
    return PART_BYTES << ((part_number - 1) // PARTS_PER_SIZE)


@contextlib.contextmanager
def translate_errors(passing: Collection[str] = MISSING_CODES) -> Iterator[None]:
    """Any failure but a missing key (or another of the ``passing`` error codes) → ``Unavailable``: the
    client cannot fix it, the operator can."""
    try:
        yield
    except (BotoCoreError, aiohttp.ClientError) as exc:  # aiohttp's: a connection lost while a body streams
        log.error("s3.unreachable error=%s", exc)
        raise Unavailable("The object store cannot be reached; retry shortly.") from exc
    except ClientError as exc:
        if error_code(exc) in passing:
            raise
        log.error("s3.failed error=%s", exc)  # refused credentials, a missing bucket, a server error
        raise Unavailable("The object store refused or failed the request; retry shortly.") from exc


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3BlobWriter:
    """``data_key=None``: the bytes go to a fresh ``data/<random>`` (or, if they fit in one part, to
    ``blobs/<id>`` itself). A given ``data_key`` receives the bytes wherever they fit; ``commit(id)`` then
    points ``blobs/<id>`` at it, unless ``pointer=False`` (the data key is the name: a session's part)."""

    def __init__(self, store: S3BlobStore, data_key: str | None = None, *, pointer: bool = True) -> None:
        self._store = store
        self._buffer = bytearray()
        self._fixed_key = data_key
        self._pointer = pointer
        self._data_key: str | None = None  # set once the multipart upload started
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._in_flight: list[asyncio.Task[dict[str, Any]]] = []
        self._done = False

    def _next_part_number(self) -> int:
        return len(self._parts) + len(self._in_flight) + 1

    async def write(self, data: bytes | bytearray) -> None:
        assert not self._done, "write after commit or abort"
        self._buffer += data
        if len(self._buffer) >= part_size(self._next_part_number()):
            await self._send_buffer()

    async def _send_buffer(self) -> None:
        """Hand the buffer to a part upload once the previous part has gone."""
        if self._upload_id is None:
            self._data_key = self._fixed_key or self._store.new_data_key()
            with translate_errors():
                created = await (await self._store.client()).create_multipart_upload(
                    Bucket=self._store.bucket, Key=self._data_key
                )
            self._upload_id = created["UploadId"]
        await self._collect_in_flight(keep=PARTS_IN_FLIGHT - 1)
        # A file object goes out in chunks as the socket drains; plain bytes would be copied whole
        # into the connection's write buffer while the store is slower than the client.
        body, self._buffer = io.BytesIO(bytes(self._buffer)), bytearray()
        self._in_flight.append(asyncio.create_task(self._upload_part(self._next_part_number(), body)))

    async def _upload_part(self, number: int, body: io.BytesIO) -> dict[str, Any]:
        with translate_errors():
            response = await (await self._store.client()).upload_part(
                Bucket=self._store.bucket,
                Key=self._data_key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=body,
            )
        return {"PartNumber": number, "ETag": response["ETag"]}

    async def _collect_in_flight(self, keep: int = 0) -> None:
        """Wait for the oldest part uploads until at most ``keep`` are in flight."""
        while len(self._in_flight) > keep:
            self._parts.append(await self._in_flight.pop(0))

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
            with translate_errors():
                await client.put_object(Bucket=self._store.bucket, Key=self._fixed_key or key, Body=body)
            if self._fixed_key is not None and self._pointer:
                await self._store.put_pointer(blob_id, self._fixed_key)
            return
        if self._buffer:
            await self._send_buffer()
        await self._collect_in_flight()
        assert self._data_key is not None
        if self._pointer:
            await self._store.put_pointer(blob_id, self._data_key)
        with translate_errors():
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
        for task in self._in_flight:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        self._in_flight = []
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

    def session_prefix(self, session_id: str) -> str:
        return f"{self._prefix}sessions/{session_id}/"

    async def put_pointer(self, blob_id: str, data_key: str) -> None:
        """Make ``blobs/<blob_id>`` name the bytes at ``data_key``."""
        with translate_errors():
            await (await self.client()).put_object(
                Bucket=self.bucket, Key=self.blob_key(blob_id), Body=b"", Metadata={POINTER_META: data_key}
            )

    async def delete_pointer(self, blob_id: str) -> None:
        """Drop ``blobs/<blob_id>`` but not the bytes it names (they belong to an upload session)."""
        with translate_errors():
            await (await self.client()).delete_object(Bucket=self.bucket, Key=self.blob_key(blob_id))

    async def put(self, blob_id: str, chunks: AsyncIterator[bytes], *, data_key: str | None = None) -> None:
        """Stream ``chunks`` (bytes staged elsewhere) into the blob ``blob_id``, its bytes at
        ``data_key`` if given (see ``S3BlobWriter``)."""
        writer = S3BlobWriter(self, data_key)
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

    async def head(self, key: str) -> dict[str, Any] | None:
        """The object's HEAD response, or None if there is no object at ``key``."""
        try:
            with translate_errors():
                return await (await self.client()).head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in MISSING_CODES:
                return None
            raise

    async def _data_key(self, blob_id: str) -> str | None:
        """Where a blob's bytes are: its own key, or the data object its pointer names; None if absent."""
        key = self.blob_key(blob_id)
        head = await self.head(key)
        return None if head is None else head.get("Metadata", {}).get(POINTER_META, key)

    async def read(self, blob_id: str, start: int, end: int) -> AsyncGenerator[bytes, None]:
        """One ranged GET of ``blobs/<blob_id>``. A pointer is an empty object, so no range of it can
        be served (416): only then a HEAD finds the data it names, and that is read instead."""
        try:
            try:
                passing = MISSING_CODES | {UNSATISFIABLE_RANGE}
                async for data in self.read_key(self.blob_key(blob_id), start, end, passing=passing):
                    yield data
                return
            except ClientError as exc:
                if error_code(exc) != UNSATISFIABLE_RANGE:
                    raise
            data_key = await self._data_key(blob_id)
            if data_key is not None:
                async for data in self.read_key(data_key, start, end):
                    yield data
                return
        except ClientError as exc:
            if error_code(exc) not in MISSING_CODES:
                raise
        log.error("blob.missing id=%s", blob_id)
        raise NotFound(f"No such file: '{blob_id}'.", param="file_id")

    async def read_key(
        self, key: str, start: int, end: int, *, passing: Collection[str] = MISSING_CODES
    ) -> AsyncIterator[bytes]:
        """Bytes ``[start, end)`` of the object at ``key``. A missing key (or another of the ``passing``
        error codes) raises botocore's ``ClientError``; the caller names what is missing."""
        if start >= end:
            return
        with translate_errors(passing):
            response = await (await self.client()).get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end - 1}"
            )
        position = start
        async with response["Body"] as body:
            with translate_errors():
                async for data in body.iter_chunks(READ_CHUNK_BYTES):
                    position += len(data)
                    yield data
        if position != end:
            raise OSError(f"{key} is shorter than its recorded size")

    async def delete(self, blob_id: str) -> None:
        key = self.blob_key(blob_id)
        data_key = await self._data_key(blob_id)
        client = await self.client()
        with translate_errors():
            if data_key is not None and data_key != key:
                await client.delete_object(Bucket=self.bucket, Key=data_key)
            await client.delete_object(Bucket=self.bucket, Key=key)

    async def _delete_stray(self, blob_id: str) -> None:
        """A blob without a row: a crash came between its commit and the row. Bytes an upload session
        still owns (its completion may be retried) stay with the session, which drops them itself."""
        data_key = await self._data_key(blob_id)
        if data_key is not None and data_key.startswith(f"{self._prefix}sessions/"):
            await self.delete_pointer(blob_id)
        else:
            await self.delete(blob_id)

    async def ping(self) -> None:
        try:
            with translate_errors():
                await (await self.client()).head_bucket(Bucket=self.bucket)
        except ClientError as exc:  # 404: the bucket is gone
            raise Unavailable(f"The bucket '{self.bucket}' does not exist.") from exc

    async def sweep(self, is_live: LiveCheck) -> int:
        removed = await self._abort_abandoned_uploads()
        client = await self.client()
        cutoff = time.time() - self._stray_grace
        prefix = self.blob_key("")
        with translate_errors():
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
                        await self._delete_stray(blob_id)
                        removed += 1
        return removed

    async def _abort_abandoned_uploads(self) -> int:
        client = await self.client()
        cutoff = time.time() - self._multipart_grace
        removed = 0
        with translate_errors():
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
