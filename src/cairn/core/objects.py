"""Objects: the one way bytes come in (a stream into staging), are stored, and go out (a ranged read).

A put is two steps so that a face can stream the bytes before it knows every attribute (a multipart
form may send ``purpose`` after the file): ``stage`` hashes and stages the stream, ``commit`` makes the
blob durable under a fresh id and then writes the metadata row. Until that row exists no reader can see
the object; if anything fails in between, the staged or committed bytes are removed, and the startup
sweep removes what a crash left behind.

An object that goes (deleted by any face, replaced under its key, expired) is reclaimed in one place,
``reclaim``: its bytes, then every ``on_deleted`` listener (a room that keeps something for the object,
such as its chunks in vector stores), each called once, after the row is gone. A listener that fails
is logged and does not undo or fail the deletion.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import logging
import re
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import anyio

from .errors import InsufficientStorage, InvalidInput, NotFound, TooLarge
from .keys import OBJECT_ID_PREFIX, prefix_end
from .ports.blobs import BlobStore, BlobWriter, ReportsFreeSpace
from .ports.objects import ObjectRows, Order
from .records import ListPage, ObjectRecord

log = logging.getLogger("cairn.objects")

_OBJECT_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
STAGE_BATCH_BYTES = 1 << 20
INLINE_HASH_BYTES = 256 << 10
FREE_SPACE_RECHECK_SECONDS = 1.0
EXPIRY_BATCH = 500
LIST_SCAN_BATCH = 1000
Row = TypeVar("Row")
DeletionListener = Callable[[ObjectRecord], Awaitable[None]]


def _not_found(object_id: str) -> NotFound:
    shown = object_id if len(object_id) <= 80 else object_id[:80] + "…"
    return NotFound(f"No such file: '{shown}'.", param="file_id")


def new_object_id(now_ms: int) -> str:
    """``file-`` + 12 hex digits of milliseconds + 20 random hex digits: ids sort by creation time."""
    return f"{OBJECT_ID_PREFIX}{now_ms:012x}{secrets.token_hex(10)}"


def new_object_record(
    *,
    now: float,
    tenant: str,
    bucket: str,
    key: str | None,
    filename: str,
    mime_type: str,
    size: int,
    sha256: str,
    purpose: str,
    expires_after: int | None,
) -> ObjectRecord:
    """The record of an object about to be committed, created at ``now`` (seconds) under a fresh id;
    ``key`` None or empty: the object is keyed by its id. ``expires_after``: seconds it lives (None: until
    deleted). The one place an object's record is built, whichever way its bytes arrived."""
    now_ms = int(now * 1000)
    object_id = new_object_id(now_ms)
    created_at = now_ms // 1000
    return ObjectRecord(
        id=object_id,
        tenant=tenant,
        bucket=bucket,
        key=key or object_id,
        filename=filename,
        mime_type=mime_type,
        bytes=size,
        sha256=sha256,
        purpose=purpose,
        created_at=created_at,
        expires_at=None if expires_after is None else created_at + expires_after,
    )


@dataclass(frozen=True, slots=True)
class Folded(Generic[Row]):
    """Keys folded into one common prefix (a folder), with the first row under it in key order."""

    prefix: str
    first: Row


@dataclass(frozen=True, slots=True)
class KeyListing:
    entries: list[ObjectRecord | Folded[ObjectRecord]]
    """Objects and folded prefixes, in key order."""
    has_more: bool

    @property
    def objects(self) -> list[ObjectRecord]:
        return [entry for entry in self.entries if isinstance(entry, ObjectRecord)]

    @property
    def prefixes(self) -> list[str]:
        return [entry.prefix for entry in self.entries if isinstance(entry, Folded)]


@dataclass(slots=True)
class StagedBlob:
    writer: BlobWriter
    bytes: int
    sha256: str


class ObjectEngine:
    def __init__(
        self,
        rows: ObjectRows,
        blobs: BlobStore,
        *,
        max_object_bytes: int,
        free_space: ReportsFreeSpace | None = None,
        min_free_bytes: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``free_space``: the blob store's volume when it has a limited one (None: S3, no reserve)."""
        self.rows = rows
        self.blobs = blobs
        self._free_space = free_space
        self.max_object_bytes = max_object_bytes
        self.min_free_bytes = min_free_bytes
        self._clock = clock
        self._free = 0
        self._free_checked_at = float("-inf")
        self._deletion_listeners: builtins.list[DeletionListener] = []

    def on_deleted(self, listener: DeletionListener) -> None:
        """Call ``listener`` with every object that goes from now on."""
        self._deletion_listeners.append(listener)

    async def reclaim(self, record: ObjectRecord) -> None:
        """What a deleted object held: its bytes, and what the listeners keep for it."""
        await self.blobs.delete(record.id)
        for listener in self._deletion_listeners:
            try:
                await listener(record)
            except Exception:
                log.exception("object.deletion_listener_failed id=%s tenant=%s", record.id, record.tenant)

    def now(self) -> int:
        return int(self._clock())

    async def ensure_capacity(self, incoming_bytes: int) -> None:
        """Refuse early what could never be stored: over the size cap, or more than the free space
        (re-read at most every ``FREE_SPACE_RECHECK_SECONDS``; the reserve absorbs the difference)."""
        if incoming_bytes > self.max_object_bytes:
            raise TooLarge(
                f"{incoming_bytes} bytes exceed the maximum object size of {self.max_object_bytes} bytes."
            )
        if self._free_space is None:
            return
        now = time.monotonic()
        if now - self._free_checked_at >= FREE_SPACE_RECHECK_SECONDS:
            self._free = await self._free_space.free_bytes()
            self._free_checked_at = now
        free = self._free
        if free - incoming_bytes < self.min_free_bytes:
            raise InsufficientStorage(
                f"Not enough free storage for {incoming_bytes} bytes ({free} bytes free, "
                f"{self.min_free_bytes} kept in reserve)."
            )

    async def stage(self, chunks: AsyncIterator[bytes]) -> StagedBlob:
        """Hash and stage a byte stream in large batches; hashing and writing run in worker threads,
        overlapping with the receipt of the next batch. Memory stays at about two batches."""
        writer = await self.blobs.stage()
        hasher = hashlib.sha256()
        size = 0
        batch = bytearray()
        pending: asyncio.Future[None] | None = None
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > self.max_object_bytes:
                    raise TooLarge(
                        f"The upload exceeds the maximum object size of {self.max_object_bytes} bytes."
                    )
                batch += chunk
                if len(batch) >= STAGE_BATCH_BYTES:
                    if pending is not None:
                        await pending
                    pending = asyncio.ensure_future(_absorb(writer, hasher, batch))
                    batch = bytearray()
            if pending is not None:
                await pending
                pending = None
            if batch:
                await _absorb(writer, hasher, batch)
        except BaseException:
            with anyio.CancelScope(shield=True):
                if pending is not None:
                    await asyncio.gather(pending, return_exceptions=True)
                await writer.abort()
            raise
        return StagedBlob(writer=writer, bytes=size, sha256=hasher.hexdigest())

    async def commit(
        self,
        staged: StagedBlob,
        *,
        tenant: str,
        bucket: str,
        filename: str,
        mime_type: str,
        purpose: str,
        expires_after: int | None = None,
        key: str | None = None,
        replace: bool = False,
    ) -> ObjectRecord:
        """Make the staged bytes an object. ``replace=True``: the object takes ``key`` over, atomically
        replacing the one that held it (a reader sees the old object or the new one, never neither),
        and the old bytes are reclaimed."""
        record = new_object_record(
            now=self._clock(),
            tenant=tenant,
            bucket=bucket,
            key=key,
            filename=filename,
            mime_type=mime_type,
            size=staged.bytes,
            sha256=staged.sha256,
            purpose=purpose,
            expires_after=expires_after,
        )
        object_id = record.id
        replaced = None
        try:
            await staged.writer.commit(object_id)
            if replace:
                replaced = await self.rows.replace_object(record)
            else:
                await self.rows.insert_object(record)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await staged.writer.abort()
                await self.blobs.delete(object_id)
            raise
        if replaced is not None:
            await self.reclaim(replaced)
        log.info(
            "object.committed id=%s tenant=%s bucket=%s bytes=%d replaced=%s",
            object_id,
            tenant,
            bucket,
            staged.bytes,
            None if replaced is None else replaced.id,
        )
        return record

    async def get(self, tenant: str, bucket: str | None, object_id: str) -> ObjectRecord:
        """An object by id; with ``bucket=None`` in any of the tenant's buckets (every object is a file)."""
        record = None
        if _OBJECT_ID.fullmatch(object_id):
            record = await self.rows.get_object(tenant, bucket, object_id, self.now())
        if record is None:
            raise _not_found(object_id)
        return record

    def read(
        self, record: ObjectRecord, start: int = 0, end: int | None = None
    ) -> AsyncGenerator[bytes, None]:
        return self.blobs.read(record.id, start, record.bytes if end is None else end)

    async def list(
        self,
        tenant: str,
        bucket: str,
        *,
        purpose: str | None = None,
        after: str | None = None,
        limit: int,
        order: Order = "desc",
    ) -> ListPage:
        if limit < 1:
            raise InvalidInput("limit must be at least 1.", param="limit")
        if after is not None and not _OBJECT_ID.fullmatch(after):
            raise InvalidInput("after must be an object id such as 'file-…'.", param="after")
        return await self.rows.list_objects(
            tenant, bucket, purpose=purpose, after=after, limit=limit, order=order, now=self.now()
        )

    async def get_by_key(self, tenant: str, bucket: str, key: str) -> ObjectRecord:
        record = await self.rows.get_object_by_key(tenant, bucket, key, self.now())
        if record is None:
            raise NotFound(f"No such object: '{key[:80]}'.", param="key")
        return record

    async def delete_by_key(self, tenant: str, bucket: str, key: str) -> ObjectRecord:
        record = await self.rows.delete_object_by_key(tenant, bucket, key, self.now())
        if record is None:
            raise NotFound(f"No such object: '{key[:80]}'.", param="key")
        await self.reclaim(record)
        log.info("object.deleted id=%s tenant=%s", record.id, tenant)
        return record

    async def list_buckets(self, tenant: str) -> builtins.list[str]:  # ``list`` is a method here
        return await self.rows.list_buckets(tenant, self.now())

    async def list_keys(
        self,
        tenant: str,
        bucket: str,
        *,
        prefix: str,
        delimiter: str,
        limit: int,
        start_index: int = 0,
        after: str | None = None,
    ) -> KeyListing:
        """Objects under ``prefix`` in key order; with a delimiter, keys that continue past the next
        delimiter are folded into one common prefix each (S3's CommonPrefixes). ``start_index`` counts
        entries (objects and prefixes) to skip; ``after`` continues after an entry: a key, or a folded
        prefix (then after everything under it)."""

        async def rows(
            start_after: str | None, start_at: str | None, count: int
        ) -> builtins.list[ObjectRecord]:
            page = await self.rows.list_objects_by_key(
                tenant,
                bucket,
                prefix=prefix,
                start_after=start_after,
                start_at=start_at,
                limit=count,
                now=self.now(),
            )
            return page.items

        wanted = start_index + limit + 1
        entries = await scan_folded(
            rows, _record_key, prefix=prefix, delimiter=delimiter, wanted=wanted, after=after
        )
        window = entries[start_index : start_index + limit]
        return KeyListing(entries=window, has_more=len(entries) > start_index + limit)

    async def delete(self, tenant: str, bucket: str | None, object_id: str) -> ObjectRecord:
        record = None
        if _OBJECT_ID.fullmatch(object_id):
            record = await self.rows.delete_object(tenant, bucket, object_id, self.now())
        if record is None:
            raise _not_found(object_id)
        await self.reclaim(record)
        log.info("object.deleted id=%s tenant=%s", record.id, tenant)
        return record

    async def expire_due(self) -> int:
        """Delete expired objects (rows first, then bytes). Returns how many went."""
        removed = 0
        while batch := await self.rows.take_expired(self.now(), EXPIRY_BATCH):
            for record in batch:
                await self.reclaim(record)
            removed += len(batch)
            if len(batch) < EXPIRY_BATCH:
                break
        if removed:
            log.info("object.expired count=%d", removed)
        return removed

    async def sweep(self) -> int:
        """Remove what a crash left behind: abandoned staging files and blobs without a row."""
        removed = await self.blobs.sweep(self.rows.existing_ids)
        if removed:
            log.info("blobs.swept count=%d", removed)
        return removed


async def _absorb(writer: BlobWriter, hasher: hashlib._Hash, batch: bytearray) -> None:
    if len(batch) < INLINE_HASH_BYTES:  # cheaper than a thread hop
        hasher.update(batch)
        await writer.write(batch)
    else:
        await asyncio.gather(anyio.to_thread.run_sync(hasher.update, batch), writer.write(batch))


def _record_key(record: ObjectRecord) -> str:
    return record.key


async def scan_folded(
    rows: Callable[[str | None, str | None, int], Awaitable[Sequence[Row]]],
    key_of: Callable[[Row], str],
    *,
    prefix: str,
    delimiter: str,
    wanted: int,
    after: str | None,
) -> list[Row | Folded[Row]]:
    """Up to ``wanted`` entries under ``prefix`` in key order, read through ``rows(start_after,
    start_at, limit)`` (any row shape whose key ``key_of`` gives); with a delimiter, keys that continue
    past the next delimiter fold into one ``Folded`` each. ``after``: a key, or a folded prefix (then
    after everything under it).

    A folded prefix is never read through: when a scan batch ends inside one, the next batch starts at
    the first key past it, so a subfolder with a million objects costs its parent's listing at most one
    batch of ``LIST_SCAN_BATCH`` rows. Batches that need no skip double in size, so a long listing takes
    few queries."""
    entries: list[Row | Folded[Row]] = []
    folded: str | None = None  # the last folded prefix, delimiter included
    start_after, start_at = after, None
    if after is not None and delimiter and len(after) > len(prefix) and after.endswith(delimiter):
        start_after, start_at = None, prefix_end(after)
        if start_at is None:
            return entries
    batch = LIST_SCAN_BATCH
    while len(entries) < wanted:
        asked = min(batch, wanted - len(entries))
        page = await rows(start_after, start_at, asked)
        for row in page:
            key = key_of(row)
            cut = key.find(delimiter, len(prefix)) if delimiter else -1
            if cut < 0:
                entries.append(row)
            elif folded is None or not key.startswith(folded):
                folded = key[: cut + 1]
                entries.append(Folded(prefix=folded, first=row))
        if len(page) < asked:
            break
        last = key_of(page[-1])
        if folded is not None and last.startswith(folded):
            start_after, start_at = None, prefix_end(folded)
            if start_at is None:
                break
            batch = LIST_SCAN_BATCH
        else:
            start_after, start_at = last, None
            batch *= 2
    return entries
