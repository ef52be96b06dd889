"""The rows of vector stores: the stores, the files attached to them and the batches that attached them
(OpenAI's Vector Stores API), kept by ``adapters.sql.vector_stores``. Their chunks live in the vector
index (``ports.vectors``), which the service (``core.vectors.stores``) keeps in step with these rows.

Invariants:
- Every read and write names the tenant: a tenant never sees, changes or counts another's rows. The
  maintenance loop's ``expired_stores`` alone reads every tenant's.
- Pages are keyset pages: stores in id order (ids sort by creation time), a store's files in
  ``(created_at, file_id)`` order, ``after`` and ``before`` naming an item of the listing (an unknown
  cursor lists nothing). With ``before``, the page holds the items just before the cursor, still in
  ``order``, and ``has_more`` says whether more lie before them.
- A file's status leaves ``in_progress`` once per generation: ``finish_file`` writes only a file still
  in progress in the generation its worker ingested, so a worker that lost the race with a detach,
  a cancel or a new attachment writes nothing.
- Counts and usage (``tally``) are aggregates over the file rows, never counters kept beside them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Literal, Protocol

from ..records import (
    Page,
    StoreTally,
    VectorFileStatus,
    VectorStoreBatchRecord,
    VectorStoreFileRecord,
    VectorStoreRecord,
)
from .objects import Order
from .vectors import Scalar

TallyOf = Literal["store", "batch"]


class VectorStoreRows(Protocol):
    async def insert_store(self, store: VectorStoreRecord) -> None:
        """``Conflict`` if a store has its id already."""

    async def get_store(self, tenant: str, store_id: str) -> VectorStoreRecord | None: ...

    async def list_stores(
        self, tenant: str, *, after: str | None, before: str | None, limit: int, order: Order
    ) -> Page[VectorStoreRecord]: ...

    async def update_store(self, store: VectorStoreRecord) -> VectorStoreRecord | None:
        """Write the store's name, metadata, ``expires_after_days``, ``last_active_at`` and
        ``expires_at``; None if the tenant has no such store."""

    async def touch_store(self, tenant: str, store_id: str, now: int) -> None:
        """The store was active at ``now``: its ``last_active_at``, and ``expires_at`` counted from it.
        A store whose ``expires_at`` has passed by ``now`` stays as it is: expiry is for good."""

    async def expired_stores(self, now: int, limit: int) -> list[VectorStoreRecord]:
        """Up to ``limit`` stores, of any tenant, whose ``expires_at`` has passed by ``now`` and that are
        not reclaimed yet, the earliest expired first."""

    async def mark_reclaimed(self, tenant: str, store_id: str, now: int) -> None:
        """The store's chunks were dropped at ``now``: its ``reclaimed_at``."""

    async def delete_store(self, tenant: str, store_id: str) -> list[VectorStoreFileRecord] | None:
        """Delete the store with its files and batches, in one transaction; the files it had (their
        ingestion is the caller's to stop), or None if the tenant has no such store."""

    async def tally(self, tenant: str, of: TallyOf, ids: Collection[str]) -> dict[str, StoreTally]:
        """The file counts and usage of each store (``of="store"``) or batch (``"batch"``) in ``ids``;
        every id is a key, with zeros when it has no files."""

    async def attach_file(self, file: VectorStoreFileRecord) -> VectorStoreFileRecord:
        """Attach a file (``file`` is in progress, generation 1), in one transaction, and return the
        row as it now is. A file already attached and in progress or completed stays as it is (an
        attachment is idempotent) but joins ``file.batch_id`` when that is set; a failed or cancelled
        one is attached anew: ``file``'s attributes, chunking and batch, in progress, with the next
        generation."""

    async def put_completed_file(self, file: VectorStoreFileRecord) -> VectorStoreFileRecord | None:
        """Write a file that needs no ingestion (its chunks are in the index already; ``file`` is
        completed), in one transaction: inserted, or in place of the row of the same file, which keeps
        its ``created_at`` and moves to the next generation. The row as written, or None (and nothing
        written) if the tenant has no such store."""

    async def get_file(self, tenant: str, store_id: str, file_id: str) -> VectorStoreFileRecord | None: ...

    async def list_files(
        self,
        tenant: str,
        store_id: str,
        *,
        batch_id: str | None = None,
        status: VectorFileStatus | None = None,
        after: str | None,
        before: str | None,
        limit: int,
        order: Order,
    ) -> Page[VectorStoreFileRecord]:
        """The store's files (those of one batch with ``batch_id``), of one status if given."""

    async def files_of_object(self, tenant: str, file_id: str) -> list[VectorStoreFileRecord]:
        """Every attachment of the object ``file_id``, in any of the tenant's stores."""

    async def set_attributes(
        self, tenant: str, store_id: str, file_id: str, attributes: Mapping[str, Scalar]
    ) -> VectorStoreFileRecord | None: ...

    async def finish_file(
        self,
        tenant: str,
        store_id: str,
        file_id: str,
        generation: int,
        status: VectorFileStatus,
        *,
        usage_bytes: int = 0,
        last_error: dict[str, str] | None = None,
    ) -> VectorStoreFileRecord | None:
        """End an ingestion: the file, if still in progress in ``generation``, takes ``status``; the row
        as written, or None (and nothing written) otherwise."""

    async def delete_file(self, tenant: str, store_id: str, file_id: str) -> VectorStoreFileRecord | None: ...

    async def insert_batch(self, batch: VectorStoreBatchRecord) -> None: ...

    async def get_batch(self, tenant: str, store_id: str, batch_id: str) -> VectorStoreBatchRecord | None: ...

    async def cancel_batch(
        self, tenant: str, store_id: str, batch_id: str
    ) -> list[VectorStoreFileRecord] | None:
        """Mark the batch cancelled and its files still in progress cancelled, in one transaction; the
        files it cancelled (their ingestion is the caller's to stop), or None if there is no such batch."""
