"""Where upload sessions keep their bytes until they complete: appendable at an offset by one request at
a time, from any process sharing the store. Used by ``core.uploads``; implemented by
``adapters.blobs_local`` and ``adapters.sessions_s3``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from .blobs import BlobWriter


class SessionAppender(Protocol):
    """Exclusive access to one upload session's staged bytes, held for one append."""

    offset: int
    """Bytes staged so far: the size of the staging, never a counter."""

    @property
    def settled_offset(self) -> int:
        """Bytes other requests see staged now (``staged_size``): every written byte on a local disk;
        on S3 only those of appends that ended."""

    async def write(self, data: bytes | bytearray) -> None: ...

    async def truncate(self, offset: int) -> None:
        """Drop staged bytes past ``offset`` (an append that must not count), which is the offset this
        hold began at or ``settled_offset``."""

    async def sync(self) -> None:
        """Make every byte written so far durable."""

    def read_staged(self) -> AsyncIterator[bytes]:
        """Every staged byte, in order. Only once the session is whole: the staging may take no more
        writes afterwards."""

    async def publish(self, blob_id: str) -> None:
        """Make the staged bytes durable and readable as ``blob_id``; the staging stays until retired
        or discarded."""

    async def release_requested(self) -> bool:
        """Whether another request asked for this session (or the hold was lost); stop soon if so."""

    async def release(self) -> None: ...


class SessionStaging(Protocol):
    """Staging for upload sessions, readable and appendable by any process sharing the store."""

    async def acquire(self, session_id: str, wait: float) -> SessionAppender:
        """Take the session exclusively. If another request holds it, ask it to let go and wait up to
        ``wait`` seconds; raises ``Locked`` if it did not."""

    async def staged_size(self, session_id: str) -> int: ...

    async def stage_part(self, session_id: str, part_id: str) -> BlobWriter:
        """A writer for one part of a session that arrives in parts, in any order and in parallel;
        ``commit(part_id)`` makes it a part of the session."""

    async def drop_part(self, session_id: str, part_id: str) -> None: ...

    async def part_sizes(self, session_id: str) -> dict[str, int]:
        """The session's committed parts and their sizes."""

    def read_parts(self, session_id: str, part_ids: list[str]) -> AsyncIterator[bytes]:
        """The bytes of these parts, one after another."""

    async def publish_parts(self, session_id: str, part_ids: list[str], blob_id: str) -> None:
        """Make these parts, joined in this order, durable and readable as ``blob_id``, atomically and
        without copying their bytes where the store can; the parts stay until discarded."""

    async def unpublish(self, session_id: str, blob_id: str) -> None:
        """Undo a publish whose object row was not written: ``blob_id`` goes, the staging stays."""

    async def retire(self, session_id: str) -> None:
        """The session completed: drop its staging, but not the bytes its object now holds."""

    async def discard(self, session_id: str) -> None:
        """Drop the session's staged bytes and parts (it was cancelled or expired unfinished)."""
