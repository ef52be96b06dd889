"""Upload sessions: create → append bytes at an offset (as often as needed, from any process) →
the object appears whole. One engine behind every resumable face: artifacts and buckets (appends at an
offset), tus (the same appends, tus headers outside) and OpenAI Uploads (parts joined at completion).

Invariants, all enforced here and not in the faces:
- The offset is the number of bytes staged, read from the staging itself, never a counter.
- One appender per session: a new request asks the current holder to let go and waits a bounded time.
- An append at the wrong offset changes nothing and reports the current offset.
- Bytes beyond the declared size are refused; an append cut short by the client keeps what arrived.
- Completion is atomic: staged bytes → durable blob → object row and session state in one transaction.
  A declared sha256 that does not match keeps the staged bytes so the client can fix and retry.
- A cancelled or expired session's staging goes before its row, so no staging outlives the row that
  names it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import anyio

from .errors import (
    ChecksumMismatch,
    Conflict,
    InvalidInput,
    NotFound,
    OffsetMismatch,
    TooLarge,
    UploadCompleted,
    UploadInterrupted,
)
from .objects import STAGE_BATCH_BYTES, ObjectEngine, new_object_record
from .ports.sessions import UploadSessionRows
from .ports.staging import SessionAppender, SessionStaging
from .records import ObjectRecord, UploadSession

log = logging.getLogger("cairn.uploads")

SESSION_ID_PREFIX = "upload-"
_SESSION_ID = re.compile(r"upload-[0-9a-f]{32}")
PART_ID_PREFIX = "part-"
LOCK_WAIT_SECONDS = 10.0
RELEASE_POLL_SECONDS = 0.25
MAX_CACHED_HASHERS = 10_000
EXPIRY_BATCH = 500


@dataclass(frozen=True, slots=True)
class ChunkDigest:
    """A digest one append's body must match (tus ``Upload-Checksum``)."""

    algorithm: str  # a hashlib name
    digest: bytes


@dataclass(frozen=True, slots=True)
class AppendResult:
    session: UploadSession
    offset: int
    completed: ObjectRecord | None


class UploadEngine:
    def __init__(
        self,
        objects: ObjectEngine,
        staging: SessionStaging,
        rows: UploadSessionRows,
        *,
        expires_after: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._objects = objects
        self._rows = rows
        self.staging = staging
        self._expires_after = expires_after
        self._clock = clock
        # sha256 state per session, valid while its offset matches the staged size (same process only)
        self._hashers: dict[str, tuple[int, hashlib._Hash]] = {}

    async def create(
        self,
        *,
        tenant: str,
        bucket: str,
        key: str | None,
        mime_type: str,
        size: int,
        filename: str | None = None,
        sha256: str | None = None,
        purpose: str | None = None,
        object_expires_after: int | None = None,
        client_metadata: str | None = None,
        in_parts: bool = False,
    ) -> AppendResult:
        """``key=None``: the object will be keyed by its own id, like a file of the Files API.
        ``in_parts``: the bytes arrive as parts (``add_part``, ``complete_parts``), never as appends."""
        if size < 0:
            raise InvalidInput("size must not be negative.", param="size")
        if sha256 is not None and (len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256)):
            raise InvalidInput("sha256 must be 64 lowercase hex digits.", param="sha256")
        await self._objects.ensure_capacity(size)
        now = int(self._clock())
        session = UploadSession(
            id=f"{SESSION_ID_PREFIX}{secrets.token_hex(16)}",
            tenant=tenant,
            bucket=bucket,
            key=key or "",
            filename=filename or (key or "").rsplit("/", 1)[-1] or "upload",
            mime_type=mime_type,
            size=size,
            sha256=sha256,
            purpose=purpose or bucket,
            created_at=now,
            expires_at=now + self._expires_after,
            object_id=None,
            object_expires_after=object_expires_after,
            client_metadata=client_metadata,
            in_parts=in_parts,
        )
        await self._rows.insert_session(session)
        log.info("upload.created id=%s tenant=%s bucket=%s size=%d", session.id, tenant, bucket, size)
        if size == 0 and not in_parts:
            try:
                return await self.append(tenant, bucket, session.id, _empty(), expected_offset=0)
            except (ChecksumMismatch, Conflict):  # the caller never learns this session: leave none
                await self.cancel(tenant, bucket, session.id)
                raise
        return AppendResult(session=session, offset=0, completed=None)

    async def get(self, tenant: str, bucket: str | None, session_id: str) -> tuple[UploadSession, int]:
        """The session and its offset. ``bucket=None``: whichever bucket the session targets."""
        session = await self._live(tenant, bucket, session_id)
        offset = session.size if session.object_id else await self.staging.staged_size(session_id)
        return session, offset

    async def append(
        self,
        tenant: str,
        bucket: str | None,
        session_id: str,
        chunks: AsyncIterator[bytes],
        *,
        expected_offset: int | None = None,
        expected_size: int | None = None,
        length: int | None = None,
        chunk_digest: ChunkDigest | None = None,
    ) -> AppendResult:
        """Append ``chunks`` at the staged offset. With ``chunk_digest`` the append counts only if the
        whole body arrived and hashes to it; otherwise nothing of it is kept."""
        session = await self._pending(tenant, bucket, session_id, in_parts=False)
        if expected_size is not None and expected_size != session.size:
            raise InvalidInput(
                f"This upload's size is {session.size}, not {expected_size}.", param="Content-Range"
            )
        appender = await self._acquire_pending(session)
        try:
            start = appender.offset
            if expected_offset is not None and expected_offset != start:
                raise OffsetMismatch(current=start, sent=expected_offset)
            remaining = session.size - start
            if length is not None and length > remaining:
                raise TooLarge(f"{length} bytes sent, but only {remaining} remain of the declared size.")
            await self._receive(session, appender, chunks, remaining, chunk_digest)
            if appender.offset < session.size:
                return AppendResult(session=session, offset=appender.offset, completed=None)
            record = await self._complete(session, appender)
            return AppendResult(session=session, offset=session.size, completed=record)
        finally:
            with anyio.CancelScope(shield=True):
                await appender.release()

    async def _receive(
        self,
        session: UploadSession,
        appender: SessionAppender,
        chunks: AsyncIterator[bytes],
        remaining: int,
        chunk_digest: ChunkDigest | None = None,
    ) -> None:
        """Write the body in large batches; keep what arrived if it breaks off, drop it all if it
        overruns the declared size or does not match ``chunk_digest``."""
        start = appender.offset
        hasher = self._hasher_at(session.id, start)
        checker = None if chunk_digest is None else hashlib.new(chunk_digest.algorithm)
        received = 0
        batch = bytearray()
        discard = checker is not None  # until the whole body arrived and matched
        failure: Exception | None = None
        superseded = anyio.Event()
        try:
            async with anyio.create_task_group() as watch:
                watch.start_soon(_stop_when_release_requested, appender, watch.cancel_scope, superseded)
                try:  # errors stay out of the task group, which would wrap them in an ExceptionGroup
                    async for chunk in chunks:
                        received += len(chunk)
                        if received > remaining:
                            discard = True
                            raise TooLarge(
                                f"More than the {remaining} remaining bytes of the declared size arrived."
                            )
                        batch += chunk
                        if len(batch) >= STAGE_BATCH_BYTES:
                            with anyio.CancelScope(shield=True):  # a release stops the reading, not a write
                                await _stage(appender, (hasher, checker), batch)
                            batch = bytearray()
                    if checker is not None and chunk_digest is not None:
                        await anyio.to_thread.run_sync(checker.update, batch)
                        if checker.digest() != chunk_digest.digest:
                            raise ChecksumMismatch(
                                f"The bytes do not match their {chunk_digest.algorithm} checksum.",
                                param=chunk_digest.algorithm,
                            )
                        discard = False
                except Exception as exc:
                    failure = exc
                watch.cancel_scope.cancel()
            if failure is not None:
                raise failure
            if superseded.is_set():
                # What others already see staged stays; the rest was never acknowledged and goes, so
                # the offset a client reads before it resumes is the offset its resumed request meets.
                raise UploadInterrupted(start if discard else appender.settled_offset)
        finally:
            with anyio.CancelScope(shield=True):
                if discard:
                    await appender.truncate(start)
                    hasher = None
                elif superseded.is_set():
                    if appender.settled_offset != appender.offset:
                        await appender.truncate(appender.settled_offset)
                        hasher = None
                    await appender.sync()
                else:
                    await _stage(appender, (hasher,), batch)
                    await appender.sync()
                if hasher is not None:
                    if len(self._hashers) >= MAX_CACHED_HASHERS:  # abandoned uploads: rehash at completion
                        self._hashers.clear()
                    self._hashers[session.id] = (appender.offset, hasher)
                else:
                    self._hashers.pop(session.id, None)

    def _hasher_at(self, session_id: str, offset: int) -> hashlib._Hash | None:
        if offset == 0:
            return hashlib.sha256()
        cached = self._hashers.get(session_id)
        return cached[1] if cached is not None and cached[0] == offset else None

    async def _complete(self, session: UploadSession, appender: SessionAppender) -> ObjectRecord:
        cached = self._hashers.get(session.id)
        if cached is not None and cached[0] == session.size:
            digest = cached[1].hexdigest()
        else:  # the process restarted, or another one appended: hash what is staged
            (digest,) = await _digests(appender.read_staged(), hashlib.sha256())
        return await self._publish(session, digest, appender.publish)

    async def _publish(
        self, session: UploadSession, digest: str, publish: Callable[[str], Awaitable[None]]
    ) -> ObjectRecord:
        """The staged bytes (which hash to ``digest``) become the object, atomically."""
        if session.sha256 is not None and digest != session.sha256:
            raise ChecksumMismatch(
                f"The uploaded bytes hash to sha256 {digest}, not the declared {session.sha256}.",
                param="sha256",
            )
        record = new_object_record(
            now=self._clock(),
            tenant=session.tenant,
            bucket=session.bucket,
            key=session.key,
            filename=session.filename,
            mime_type=session.mime_type,
            size=session.size,
            sha256=digest,
            purpose=session.purpose,
            expires_after=session.object_expires_after,
        )
        object_id = record.id
        await publish(object_id)
        try:
            replaced = await self._rows.complete_session(session.id, record)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.staging.unpublish(session.id, object_id)
            raise
        self._hashers.pop(session.id, None)
        await self.staging.retire(session.id)
        if replaced is not None:
            await self._objects.reclaim(replaced)
        log.info("upload.completed id=%s object=%s bytes=%d", session.id, object_id, session.size)
        return record

    async def add_part(
        self,
        tenant: str,
        bucket: str | None,
        session_id: str,
        chunks: AsyncIterator[bytes],
        *,
        max_bytes: int,
        length: int | None = None,
    ) -> str:
        """Stage one part of an upload that arrives in parts (any order, in parallel); returns its id.
        Parts together may not hold more than the upload's size; nothing of a refused part is kept."""
        session = await self._pending(tenant, bucket, session_id, in_parts=True)
        staged = sum((await self.staging.part_sizes(session_id)).values())
        limit = min(max_bytes, session.size - staged)
        if length is not None and length > limit:
            raise TooLarge(_part_too_large(limit, max_bytes))
        part_id = f"{PART_ID_PREFIX}{secrets.token_hex(16)}"
        writer = await self.staging.stage_part(session_id, part_id)
        try:
            received = 0
            batch = bytearray()
            async for chunk in chunks:
                received += len(chunk)
                if received > limit:
                    raise TooLarge(_part_too_large(limit, max_bytes))
                batch += chunk
                if len(batch) >= STAGE_BATCH_BYTES:
                    await writer.write(batch)
                    batch = bytearray()
            if batch:
                await writer.write(batch)
            await writer.commit(part_id)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await writer.abort()
            raise
        if await self._rows.get_session(tenant, session_id, int(self._clock())) is None:
            await self.staging.discard(session_id)  # cancelled or expired while the part arrived
            raise NotFound(f"No such upload: '{session_id}'.", param="upload_id")
        return part_id

    async def drop_part(self, session_id: str, part_id: str) -> None:
        """Forget a part just added whose request then failed."""
        await self.staging.drop_part(session_id, part_id)

    async def complete_parts(
        self,
        tenant: str,
        bucket: str | None,
        session_id: str,
        part_ids: list[str],
        *,
        md5: str | None = None,
    ) -> ObjectRecord:
        """Join the parts in the order given into the object. The parts must hold exactly the upload's
        size; with ``md5`` the joined bytes must match it. A refused completion keeps the parts."""
        session = await self._pending(tenant, bucket, session_id, in_parts=True)
        if len(set(part_ids)) != len(part_ids):
            raise InvalidInput("part_ids must not name a part twice.", param="part_ids")
        sizes = await self.staging.part_sizes(session_id)
        for part_id in part_ids:
            if part_id not in sizes:
                raise InvalidInput(f"No such part of this upload: '{part_id[:80]}'.", param="part_ids")
        total = sum(sizes[part_id] for part_id in part_ids)
        if total != session.size:
            raise InvalidInput(
                f"The parts hold {total} bytes, but the upload was created for {session.size}.",
                param="part_ids",
            )
        if md5 is not None and not re.fullmatch(r"[0-9a-fA-F]{32}", md5):
            raise InvalidInput("md5 must be 32 hex digits.", param="md5")
        appender = await self._acquire_pending(session)  # one completion at a time
        try:
            parts = self.staging.read_parts(session_id, part_ids)
            if md5 is None:
                (sha256,) = await _digests(parts, hashlib.sha256())
            else:
                sha256, joined_md5 = await _digests(parts, hashlib.sha256(), hashlib.md5())
                if joined_md5 != md5.lower():
                    raise ChecksumMismatch(f"The parts hash to md5 {joined_md5}, not {md5}.", param="md5")
            return await self._publish(
                session, sha256, functools.partial(self.staging.publish_parts, session_id, part_ids)
            )
        finally:
            with anyio.CancelScope(shield=True):
                await appender.release()

    async def cancel(self, tenant: str, bucket: str | None, session_id: str) -> None:
        await self._live(tenant, bucket, session_id)
        appender = await self.staging.acquire(session_id, LOCK_WAIT_SECONDS)  # an append in flight stops
        try:
            session = await self._rows.get_session(tenant, session_id, int(self._clock()))
            if session is None:  # cancelled or expired while this request waited
                raise NotFound(f"No such upload: '{session_id[:80]}'.", param="upload_id")
            self._hashers.pop(session_id, None)
            await self._forget(session)
        finally:
            with anyio.CancelScope(shield=True):
                await appender.release()

    async def expire_due(self) -> int:
        removed = 0
        while batch := await self._rows.expired_sessions(int(self._clock()), EXPIRY_BATCH):
            for session in batch:
                self._hashers.pop(session.id, None)
                await self._forget(session)
            removed += len(batch)
            if len(batch) < EXPIRY_BATCH:
                break
        if removed:
            log.info("upload.expired count=%d", removed)
        return removed

    async def _forget(self, session: UploadSession) -> None:
        """The staging goes first, then the row: a crash or a store failure in between leaves the row,
        and the next cancel or expiry drops what is left (dropping is idempotent)."""
        await self._drop_staging(session)
        await self._rows.delete_session(session.tenant, session.id)

    async def _drop_staging(self, session: UploadSession) -> None:
        """A completed session's staged bytes may be its object's: those stay."""
        if session.object_id is None:
            await self.staging.discard(session.id)
        else:
            await self.staging.retire(session.id)

    async def _acquire_pending(self, session: UploadSession) -> SessionAppender:
        """Take the session's staging, then check again that it is pending: the request that held it
        may have completed or cancelled it while this one waited."""
        appender = await self.staging.acquire(session.id, LOCK_WAIT_SECONDS)
        try:
            await self._pending(session.tenant, session.bucket, session.id)
        except (NotFound, UploadCompleted) as exc:
            with anyio.CancelScope(shield=True):  # the staging this wait re-created, if any
                if isinstance(exc, NotFound):
                    await self.staging.discard(session.id)
                else:
                    await self.staging.retire(session.id)
                await appender.release()
            raise
        except BaseException:
            with anyio.CancelScope(shield=True):
                await appender.release()
            raise
        return appender

    async def _pending(
        self, tenant: str, bucket: str | None, session_id: str, *, in_parts: bool | None = None
    ) -> UploadSession:
        """The live, incomplete session; with ``in_parts``, also of that kind."""
        session = await self._live(tenant, bucket, session_id)
        if session.object_id is not None:
            raise UploadCompleted("This upload is already complete.")
        if in_parts is not None and session.in_parts != in_parts:
            kind = "parts joined at completion" if session.in_parts else "appends at an offset"
            raise InvalidInput(f"This upload takes {kind}.", param="upload_id")
        return session

    async def _live(self, tenant: str, bucket: str | None, session_id: str) -> UploadSession:
        session = None
        if _SESSION_ID.fullmatch(session_id):
            session = await self._rows.get_session(tenant, session_id, int(self._clock()))
        if session is None or bucket not in (None, session.bucket):
            raise NotFound(f"No such upload: '{session_id[:80]}'.", param="upload_id")
        return session


async def _stop_when_release_requested(
    appender: SessionAppender, scope: anyio.CancelScope, superseded: anyio.Event
) -> None:
    """Another request for this session (the client reconnected) makes this one stop where it is,
    even while it waits for body bytes that a dead connection will never send."""
    while not await appender.release_requested():
        await anyio.sleep(RELEASE_POLL_SECONDS)
    log.info("upload.superseded")
    superseded.set()
    scope.cancel()


async def _stage(
    appender: SessionAppender, hashers: tuple[hashlib._Hash | None, ...], batch: bytearray
) -> None:
    """Write a batch while the hashers that are set take it in, in parallel threads."""
    if not batch:
        return
    await asyncio.gather(
        appender.write(batch), *(anyio.to_thread.run_sync(h.update, batch) for h in hashers if h is not None)
    )


async def _digests(chunks: AsyncIterator[bytes], *hashers: hashlib._Hash) -> list[str]:
    """Hex digests of a byte stream, each hasher in its own thread."""
    async for data in chunks:
        await asyncio.gather(*(anyio.to_thread.run_sync(h.update, data) for h in hashers))
    return [h.hexdigest() for h in hashers]


def _part_too_large(limit: int, max_bytes: int) -> str:
    if limit < max_bytes:
        return f"This part would take the upload past its declared size: at most {limit} more bytes fit."
    return f"A part may hold at most {max_bytes} bytes."


async def _empty() -> AsyncIterator[bytes]:
    return
    yield
