"""Object rows: where each object lives (tenant, bucket, key), what it is and when it expires. Used by
``core.objects`` and ``core.workspace``; implemented by ``adapters.sql.objects``. Every query is scoped
by tenant and bucket, and only live (unexpired) objects are found."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal, Protocol

from ..records import ListPage, ObjectRecord

Order = Literal["asc", "desc"]
KeySize = tuple[str, int, int]
"""An object's key, size in bytes and creation time: what a listing of many keys needs."""


class ObjectRows(Protocol):
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

    async def replace_object(self, record: ObjectRecord) -> ObjectRecord | None:
        """In one transaction: remove the object that holds ``record``'s key (returned, so its bytes can
        go) and insert ``record``. The workspace's file-vs-folder rule as in ``insert_object``."""

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
