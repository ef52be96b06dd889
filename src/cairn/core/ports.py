"""The contracts the engine needs from the outside world. Adapters implement them; the engine owns them.

Who validates what: the engine checks keys, sizes, tenancy and cursors before it calls a port.
Ports store bytes and rows, translate their native errors into ``core.errors`` (``Unavailable``
when the backend cannot be reached) and never see HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Literal, Protocol

from .records import ApiKeyRecord, ListPage, ObjectRecord, UploadSession

Order = Literal["asc", "desc"]
KeySize = tuple[str, int, int]
"""An object's key, size in bytes and creation time: what a listing of many keys needs."""


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

    async def ping(self) -> None:
        """Raise ``Unavailable`` if the store cannot answer."""

    async def sweep(self, is_live: LiveCheck) -> int:
        """Remove abandoned staging data and blobs that ``is_live`` does not know. Returns the count."""


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

    async def insert_object(self, record: ObjectRecord) -> None:
        """Raises ``Conflict`` (``paths.folder_clash``) if, in the bucket ``paths.WORKSPACE_BUCKET``,
        ``record``'s key would be both a file and a folder; checked in the same transaction."""

    async def get_object_by_key(
        self, tenant: str, bucket: str, key: str, now: int
    ) -> ObjectRecord | None: ...

    async def list_objects_by_key(
        self,
        tenant: str,
        bucket: str,
        *,
        prefix: str,
        start_after: str | None,
        limit: int,
        now: int,
        start_at: str | None = None,
    ) -> ListPage:
        """Live objects whose key starts with ``prefix``, in bytewise key order, strictly after
        ``start_after`` and from ``start_at`` on."""

    async def list_key_sizes(
        self,
        tenant: str,
        bucket: str,
        *,
        prefix: str,
        start_after: str | None,
        limit: int,
        now: int,
        start_at: str | None = None,
    ) -> Sequence[KeySize]:
        """``(key, bytes, created_at)`` of the first ``limit`` objects ``list_objects_by_key`` would
        list; fewer only when no more remain. For listings of many keys that need nothing else."""

    async def delete_object_by_key(
        self, tenant: str, bucket: str, key: str, now: int
    ) -> ObjectRecord | None: ...

    async def list_buckets(self, tenant: str, now: int) -> list[str]:
        """Names of the tenant's buckets that hold at least one live object, in byte order."""

    async def insert_session(self, session: UploadSession) -> None: ...

    async def get_session(self, tenant: str, session_id: str, now: int) -> UploadSession | None:
        """The session unless it expired or was deleted."""

    async def delete_session(self, tenant: str, session_id: str) -> UploadSession | None: ...

    async def replace_object(self, record: ObjectRecord) -> ObjectRecord | None:
        """In one transaction: remove the object that holds ``record``'s key (returned, so its bytes can
        go) and insert ``record``. The workspace's file-vs-folder rule as in ``insert_object``."""

    async def complete_session(self, session_id: str, record: ObjectRecord) -> ObjectRecord | None:
        """In one transaction: mark the session completed with ``record.id``, remove the object that held
        the same key (returned, so its bytes can go) and insert ``record``. Raises ``Conflict`` if the
        session is gone or already completed."""

    async def expired_sessions(self, now: int, limit: int) -> list[UploadSession]:
        """Up to ``limit`` expired sessions (any tenant), soonest expired first. Their rows stay until
        their staging is dropped, so a crash in between leaves nothing that no row names."""

    async def get_object(
        self, tenant: str, bucket: str | None, object_id: str, now: int
    ) -> ObjectRecord | None:
        """The live (not expired) object, or None. ``bucket=None``: in any of the tenant's buckets."""

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

    async def delete_object(
        self, tenant: str, bucket: str | None, object_id: str, now: int
    ) -> ObjectRecord | None:
        """Delete a live object's row and return it, or None if there was none (``bucket=None``: any)."""

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
