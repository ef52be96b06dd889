"""The contracts the engine needs from the outside world. Adapters implement them; the engine owns them.

Who validates what: the engine checks keys, sizes, tenancy and cursors before it calls a port.
Ports store bytes and rows, translate their native errors into ``core.errors`` (``Unavailable``
when the backend cannot be reached) and never see HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Literal, Protocol

from .records import ApiKeyRecord, ListPage, ObjectRecord

Order = Literal["asc", "desc"]


class BlobWriter(Protocol):
    """A staging area for one blob. Nothing written here is visible until ``commit``."""

    async def write(self, data: bytes) -> None:
        """Append ``data``. Called in order, never concurrently for one writer."""

    async def commit(self, blob_id: str) -> None:
        """Make the staged bytes durable and readable as ``blob_id``, atomically."""

    async def abort(self) -> None:
        """Discard the staged bytes. Safe to call more than once and after a failed commit."""


class BlobStore(Protocol):
    """Bytes addressed by object id. Never by a user-supplied name."""

    async def stage(self) -> BlobWriter:
        """Open a new staging writer."""

    def read(self, blob_id: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Yield bytes ``[start, end)`` of a committed blob in large chunks. Raises ``NotFound``."""

    async def delete(self, blob_id: str) -> None:
        """Reclaim a blob's bytes. Deleting a missing blob is not an error."""

    async def free_bytes(self) -> int:
        """Bytes still free for new blobs."""

    async def sweep(self, is_live: LiveCheck) -> int:
        """Remove abandoned staging data and blobs that ``is_live`` does not know. Returns the count."""


class LiveCheck(Protocol):
    async def __call__(self, blob_ids: list[str]) -> set[str]:
        """Return the subset of ``blob_ids`` that have a metadata row."""


class MetadataStore(Protocol):
    """Rows for objects and API keys. Every object query is scoped by tenant and bucket."""

    async def migrate(self) -> None:
        """Bring the schema to the newest version. Safe to call from several processes at once."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise ``Unavailable`` if the store cannot answer."""

    async def insert_object(self, record: ObjectRecord) -> None: ...

    async def get_object(self, tenant: str, bucket: str, object_id: str, now: int) -> ObjectRecord | None:
        """The live (not expired) object, or None."""

    async def list_objects(
        self,
        tenant: str,
        bucket: str,
        *,
        purpose: str | None,
        after: str | None,
        limit: int,
        order: Order,
        now: int,
    ) -> ListPage:
        """Live objects ordered by id (ids sort by creation time), strictly after the cursor id."""

    async def delete_object(self, tenant: str, bucket: str, object_id: str, now: int) -> ObjectRecord | None:
        """Delete a live object's row and return it, or None if there was none."""

    async def take_expired(self, now: int, limit: int) -> list[ObjectRecord]:
        """Delete up to ``limit`` expired rows (any tenant) and return them so their bytes can go."""

    async def existing_ids(self, ids: Iterable[str]) -> set[str]:
        """Which of these object ids have a row, any tenant, expired or not."""

    async def insert_api_key(self, record: ApiKeyRecord) -> None: ...

    async def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        """The active (not revoked) key with this hash."""

    async def list_api_keys(self) -> list[ApiKeyRecord]: ...

    async def revoke_api_key(self, key_id: str, now: int) -> bool:
        """Revoke an active key; False if no active key has this id."""

    async def has_api_keys(self) -> bool:
        """Whether any key was ever created, revoked ones included."""
