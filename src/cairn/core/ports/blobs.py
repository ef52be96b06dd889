"""Where object bytes live: blobs addressed by object id, staged and then committed atomically.
Used by ``core.objects``; implemented by ``adapters.blobs_local`` and ``adapters.blobs_s3``."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol, runtime_checkable


class BlobWriter(Protocol):
    """A staging area for one blob. Nothing written here is visible until ``commit``."""

    async def write(self, data: bytes | bytearray) -> None:
        """Append ``data``. Called in order, never concurrently for one writer."""

    async def commit(self, blob_id: str) -> None:
        """Make the staged bytes durable and readable as ``blob_id``, atomically."""

    async def abort(self) -> None:
        """Discard the staged bytes. Safe to call more than once and after a failed commit."""


class LiveCheck(Protocol):
    async def __call__(self, blob_ids: list[str], /) -> set[str]:
        """Return the subset of ``blob_ids`` that have a metadata row."""


class BlobStore(Protocol):
    """Bytes addressed by object id. Never by a user-supplied name."""

    async def stage(self) -> BlobWriter:
        """Open a new staging writer."""

    def read(self, blob_id: str, start: int, end: int) -> AsyncGenerator[bytes, None]:
        """Yield bytes ``[start, end)`` of a committed blob in large chunks. Raises ``NotFound``. A reader
        that stops early closes it (``aclose``), which lets go of the file or connection at once."""

    async def delete(self, blob_id: str) -> None:
        """Reclaim a blob's bytes. Deleting a missing blob is not an error."""

    async def ping(self) -> None:
        """Raise ``Unavailable`` if the store cannot answer."""

    async def sweep(self, is_live: LiveCheck) -> int:
        """Remove abandoned staging data and blobs that ``is_live`` does not know. Returns the count."""


@runtime_checkable
class ReportsFreeSpace(Protocol):
    """A capability: a store on a volume of limited size says how much is left (S3 has no such limit)."""

    async def free_bytes(self) -> int:
        """Bytes still free for new blobs."""
