"""Vector stores (OpenAI's Vector Stores API): the service the API face calls, one method per route.

- A store embeds with one model for its life (the tenant's embedding model it was created with, by
  default ``default_embedding_model``) and has that model's dimension; its partition in the vector
  index is made before its row, and dropped after its row is gone.
- Attaching checks the file (any of the tenant's Cairn objects: one id per object, whatever the face)
  and the chunking against the model's window, writes the row ``in_progress`` and enqueues the
  ingestion job (``core.vectors.ingest``) under an id made of ``(store, file, generation)``:
  attaching again, or retrying an attachment that failed half-way, enqueues no second job.
- Detaching, deleting a store and cancelling a batch write the rows first, then cancel the jobs, then
  remove chunks: an ingestion that finishes meanwhile finds its row changed and writes nothing.
- A Cairn object that goes is detached from every store (``forget_file``, an ``ObjectEngine``
  deletion listener).
- ``file_content`` extracts the text again from the object, in a worker thread, bounded as the
  ingestion is (``max_file_bytes``): no second copy of every file's text is kept (D32).
- Every call names the tenant; another tenant's stores, files and batches are ``NotFound``.

Expiry (``expires_after``, counted from ``last_active_at``) is for good, as on OpenAI, where an expired
store is recreated rather than revived. A store whose ``expires_at`` has passed is ``expired`` at once;
activity no longer moves its expiry (``VectorStoreRows.touch_store``) and a new ``expires_after`` is
refused, so nothing brings back a store whose chunks are gone or about to go. It can still be
retrieved, listed, renamed, emptied of files and deleted; searching it, or attaching files to it, is
``VectorStoreExpired`` (400, ``vector_store_expired``), not an empty page or a file that waits for
nothing. The maintenance loop (``reclaim_expired``) drops each expired store's partition of the vector
index, once (the row's ``reclaimed_at`` says it is done), so an expired store costs no chunks; its
rows stay, a record of what it held. An ingestion that starts once its store has expired ends the
file ``cancelled`` (``core.vectors.ingest``); one that ends after the partition was dropped writes
into no partition.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import EllipsisType
from typing import Any, Literal

from ..errors import InvalidFile, InvalidInput, NotFound, VectorStoreExpired
from ..inference.catalog import Model
from ..inference.router import InferenceRouter
from ..jobs import JobRunner
from ..objects import ObjectEngine
from ..ports.inference import ModelType
from ..ports.objects import Order
from ..ports.vector_stores import VectorStoreRows
from ..ports.vectors import Scalar, VectorIndex
from ..records import (
    FileCounts,
    ObjectRecord,
    Page,
    VectorFileStatus,
    VectorStoreBatchRecord,
    VectorStoreFileRecord,
    VectorStoreRecord,
)
from .chunking import chunk_sizes
from .extract import extract_text
from .ingest import JOB_KIND, TokenizerFor, window
from .search import DEFAULT_RESULTS, SearchPage, VectorSearch

MAX_PAIRS = 16  # metadata pairs, attribute keys
MAX_KEY_CHARS = 64
MAX_VALUE_CHARS = 512
MAX_NAME_CHARS = 256
MAX_DESCRIPTION_CHARS = 512
MAX_FILES = 2000  # in one batch, or given to ``create``
MAX_PAGE = 100
MAX_EXPIRY_DAYS = 365
DAY = 86400
RECLAIM_BATCH = 100

log = logging.getLogger("cairn.vectors")

StoreStatus = Literal["expired", "in_progress", "completed"]
BatchStatus = Literal["in_progress", "completed", "cancelled", "failed"]


@dataclass(frozen=True)
class VectorStore:
    """A store as OpenAI's ``vector_store`` object shows it."""

    record: VectorStoreRecord
    file_counts: FileCounts
    usage_bytes: int
    status: StoreStatus


@dataclass(frozen=True)
class FileBatch:
    """A batch as OpenAI's ``vector_store.files_batch`` object shows it."""

    record: VectorStoreBatchRecord
    file_counts: FileCounts
    status: BatchStatus


@dataclass(frozen=True)
class FileSpec:
    """One file of a batch's ``files``: its own attributes and chunking."""

    file_id: str
    attributes: Mapping[str, Any] | None = None
    chunking_strategy: Mapping[str, Any] | None = None


def new_id(prefix: str, now: float) -> str:
    """``prefix`` + 12 hex digits of milliseconds + 20 random hex digits: ids sort by creation time."""
    return f"{prefix}{int(now * 1000):012x}{secrets.token_hex(10)}"


def ingestion_job_id(file: VectorStoreFileRecord) -> str:
    key = f"{file.store_id}/{file.file_id}/{file.generation}".encode()
    return "vsf-" + hashlib.sha256(key).hexdigest()[:40]


class VectorStores:
    def __init__(
        self,
        rows: VectorStoreRows,
        index: VectorIndex,
        objects: ObjectEngine,
        inference: InferenceRouter,
        jobs: JobRunner,
        tokenizer_for: TokenizerFor,
        *,
        default_embedding_model: str,
        max_file_bytes: int,
        rewrite_model: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rows = rows
        self.index = index
        self._objects = objects
        self._inference = inference
        self._jobs = jobs
        self._tokenizer_for = tokenizer_for
        self._default_model = default_embedding_model
        self._max_file_bytes = max_file_bytes
        self._clock = clock
        self._search = VectorSearch(rows, index, objects, inference, rewrite_model=rewrite_model, clock=clock)

    # Stores

    async def create(
        self,
        tenant: str,
        *,
        name: str | None = None,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        expires_after: Mapping[str, Any] | None = None,
        file_ids: Sequence[str] = (),
        chunking_strategy: Mapping[str, Any] | None = None,
        embedding_model: str | None = None,
        embedding_dimension: int | None = None,
        store_id: str | None = None,
    ) -> VectorStore:
        """``store_id``: the id the caller made (an agent session's memory, ``core.agents.memory``);
        ``Conflict`` if a store has it already. Else a new one."""
        _bounded(file_ids, "file_ids")
        _bounded_text(description, MAX_DESCRIPTION_CHARS, "description")
        model = await self._inference.catalog.get(
            embedding_model or self._default_model, ModelType.EMBEDDING, tenant=tenant
        )
        dimension = model.dimension or await self._measured_dimension(model, tenant)
        if embedding_dimension is not None and embedding_dimension != dimension:
            raise InvalidInput(
                f"The model `{model.identifier}` embeds in {dimension} dimensions, "
                f"not {embedding_dimension}.",
                param="embedding_dimension",
            )
        sizes = await self._sizes(model, chunking_strategy)
        for file_id in file_ids:
            await self._objects.get(tenant, None, file_id)
        now = int(self._clock())
        days = _days(expires_after)
        record = VectorStoreRecord(
            id=store_id or new_id("vs_", self._clock()),
            tenant=tenant,
            name=_name(name),
            created_at=now,
            last_active_at=now,
            metadata=_metadata(metadata),
            expires_after_days=days,
            expires_at=None if days is None else now + days * DAY,
            embedding_model=model.identifier,
            embedding_dimension=dimension,
            description=description,
        )
        await self.index.create_store(record.id, dimension)
        await self.rows.insert_store(record)
        for file_id in file_ids:
            await self._attach(record, file_id, {}, sizes, batch_id=None)
        return await self._shown(record)

    async def get(self, tenant: str, store_id: str) -> VectorStore:
        return await self._shown(await self._store(tenant, store_id))

    async def list(
        self,
        tenant: str,
        *,
        after: str | None = None,
        before: str | None = None,
        limit: int = 20,
        order: Order = "desc",
    ) -> Page[VectorStore]:
        _page_bounds(after, before, limit)
        page = await self.rows.list_stores(tenant, after=after, before=before, limit=limit, order=order)
        tallies = await self.rows.tally(tenant, "store", [s.id for s in page.items])
        shown = [
            VectorStore(
                s,
                tallies[s.id].file_counts,
                tallies[s.id].usage_bytes,
                self._status(s, tallies[s.id].file_counts),
            )
            for s in page.items
        ]
        return Page(shown, page.has_more)

    async def update(
        self,
        tenant: str,
        store_id: str,
        *,
        name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        expires_after: Mapping[str, Any] | EllipsisType | None = ...,
    ) -> VectorStore:
        """Change what is given: ``None`` keeps the name and the metadata; ``expires_after=None``
        removes the expiry, and leaving it out keeps it. An expired store takes no new expiry."""
        store = await self._store(tenant, store_id)
        if not isinstance(expires_after, EllipsisType):
            self._live(store, param="expires_after")
        if name is not None:
            store = replace(store, name=_name(name))
        if metadata is not None:
            store = replace(store, metadata=_metadata(metadata))
        if not isinstance(expires_after, EllipsisType):
            days = _days(expires_after)
            expires_at = None if days is None else store.last_active_at + days * DAY
            store = replace(store, expires_after_days=days, expires_at=expires_at)
        updated = await self.rows.update_store(store)
        if updated is None:
            raise _no_store(store_id)
        return await self._shown(updated)

    async def delete(self, tenant: str, store_id: str) -> None:
        attached = await self.rows.delete_store(tenant, store_id)
        if attached is None:
            raise _no_store(store_id)
        await self._stop(attached)
        await self.index.drop_store(store_id)

    async def search(
        self,
        tenant: str,
        store_id: str,
        query: object,
        *,
        filters: object = None,
        max_num_results: object = DEFAULT_RESULTS,
        ranking_options: Mapping[str, Any] | None = None,
        rewrite_query: bool = False,
        search_mode: object = "vector",
        page: str | None = None,
    ) -> SearchPage:
        """A page of the store's chunks best matching ``query`` (``core.vectors.search``)."""
        store = self._live(await self._store(tenant, store_id))
        return await self._search.search(
            store,
            query,
            filters=filters,
            max_num_results=max_num_results,
            ranking_options=ranking_options,
            rewrite_query=rewrite_query,
            search_mode=search_mode,
            page=page,
        )

    # Files

    async def attach_file(
        self,
        tenant: str,
        store_id: str,
        file_id: str,
        *,
        attributes: Mapping[str, Any] | None = None,
        chunking_strategy: Mapping[str, Any] | None = None,
    ) -> VectorStoreFileRecord:
        store = self._live(await self._store(tenant, store_id))
        model = await self._model(store)
        await self._objects.get(tenant, None, file_id)
        sizes = await self._sizes(model, chunking_strategy)
        return await self._attach(store, file_id, _attributes(attributes), sizes, batch_id=None)

    async def get_file(self, tenant: str, store_id: str, file_id: str) -> VectorStoreFileRecord:
        file = await self.rows.get_file(tenant, store_id, file_id)
        if file is None:
            raise _no_file(store_id, file_id)
        return file

    async def list_files(
        self,
        tenant: str,
        store_id: str,
        *,
        status: VectorFileStatus | None = None,
        after: str | None = None,
        before: str | None = None,
        limit: int = 20,
        order: Order = "desc",
    ) -> Page[VectorStoreFileRecord]:
        _page_bounds(after, before, limit)
        await self._store(tenant, store_id)
        return await self.rows.list_files(
            tenant, store_id, status=status, after=after, before=before, limit=limit, order=order
        )

    async def update_file_attributes(
        self, tenant: str, store_id: str, file_id: str, attributes: Mapping[str, Any] | None
    ) -> VectorStoreFileRecord:
        file = await self.rows.set_attributes(tenant, store_id, file_id, _attributes(attributes))
        if file is None:
            raise _no_file(store_id, file_id)
        await self.index.set_attributes(store_id, file_id, file.attributes)
        return file

    async def detach_file(self, tenant: str, store_id: str, file_id: str) -> VectorStoreFileRecord:
        file = await self.rows.delete_file(tenant, store_id, file_id)
        if file is None:
            raise _no_file(store_id, file_id)
        await self._stop([file])
        await self.index.remove_file(store_id, file_id)
        return file

    async def file_content(self, tenant: str, store_id: str, file_id: str) -> str:
        """The file's text, as its ingestion reads it."""
        await self.get_file(tenant, store_id, file_id)
        record = await self._objects.get(tenant, None, file_id)
        if record.bytes > self._max_file_bytes:
            raise InvalidFile(f"The file `{record.filename}` is too large for file search.")
        data = b"".join([part async for part in self._objects.read(record)])
        extracted = await asyncio.to_thread(
            extract_text, data, record.filename, record.mime_type, max_chars=self._max_file_bytes
        )
        return extracted.text

    async def forget_file(self, record: ObjectRecord) -> None:
        """The object is gone: detach it from every store of its tenant."""
        for file in await self.rows.files_of_object(record.tenant, record.id):
            if await self.rows.delete_file(file.tenant, file.store_id, file.file_id) is not None:
                await self._stop([file])
                await self.index.remove_file(file.store_id, file.file_id)

    # Batches

    async def create_batch(
        self,
        tenant: str,
        store_id: str,
        *,
        file_ids: Sequence[str] | None = None,
        files: Sequence[FileSpec] | None = None,
        attributes: Mapping[str, Any] | None = None,
        chunking_strategy: Mapping[str, Any] | None = None,
    ) -> FileBatch:
        """Attach ``file_ids`` (with ``attributes`` and ``chunking_strategy`` for all) or ``files``
        (each with its own): exactly one of the two, of 1 to ``MAX_FILES`` files. Every file is checked
        before anything is written."""
        if (file_ids is None) == (files is None):
            raise InvalidInput("Give either 'file_ids' or 'files', not both and not neither.", param="files")
        if files is None:
            shared = _attributes(attributes)
            files = [FileSpec(f, shared, chunking_strategy) for f in file_ids or ()]
        elif attributes is not None or chunking_strategy is not None:
            raise InvalidInput(
                "With 'files', give attributes and chunking_strategy per file.", param="attributes"
            )
        param = "file_ids" if file_ids is not None else "files"
        _bounded(files, param)
        if not files:
            raise InvalidInput(f"'{param}' must name at least one file.", param=param)
        store = self._live(await self._store(tenant, store_id))
        model = await self._model(store)
        planned = []
        for at, spec in enumerate(files):
            await self._objects.get(tenant, None, spec.file_id)
            try:
                attrs = _attributes(spec.attributes)
            except InvalidInput as exc:
                raise InvalidInput(exc.message, param=f"files[{at}].{exc.param}") from None
            planned.append((spec.file_id, attrs, await self._sizes(model, spec.chunking_strategy)))
        batch = VectorStoreBatchRecord(
            new_id("vsfb_", self._clock()), store_id, tenant, int(self._clock()), False
        )
        await self.rows.insert_batch(batch)
        for file_id, attrs, sizes in planned:
            await self._attach(store, file_id, attrs, sizes, batch_id=batch.id)
        return await self._shown_batch(batch)

    async def get_batch(self, tenant: str, store_id: str, batch_id: str) -> FileBatch:
        return await self._shown_batch(await self._batch(tenant, store_id, batch_id))

    async def cancel_batch(self, tenant: str, store_id: str, batch_id: str) -> FileBatch:
        cancelled = await self.rows.cancel_batch(tenant, store_id, batch_id)
        if cancelled is None:
            raise _no_batch(batch_id)
        await self._stop(cancelled)
        return await self.get_batch(tenant, store_id, batch_id)

    async def list_batch_files(
        self,
        tenant: str,
        store_id: str,
        batch_id: str,
        *,
        status: VectorFileStatus | None = None,
        after: str | None = None,
        before: str | None = None,
        limit: int = 20,
        order: Order = "desc",
    ) -> Page[VectorStoreFileRecord]:
        _page_bounds(after, before, limit)
        await self._batch(tenant, store_id, batch_id)
        return await self.rows.list_files(
            tenant,
            store_id,
            batch_id=batch_id,
            status=status,
            after=after,
            before=before,
            limit=limit,
            order=order,
        )

    # Maintenance

    async def reclaim_expired(self) -> int:
        """Drop the chunks of every tenant's stores that expired and were not reclaimed yet (their index
        partitions; the rows stay). Returns how many stores were reclaimed."""
        now = int(self._clock())
        reclaimed = 0
        while batch := await self.rows.expired_stores(now, RECLAIM_BATCH):
            for store in batch:
                await self.index.drop_store(store.id)
                await self.rows.mark_reclaimed(store.tenant, store.id, now)
            reclaimed += len(batch)
            if len(batch) < RECLAIM_BATCH:
                break
        if reclaimed:
            log.info("vectors.reclaimed stores=%d", reclaimed)
        return reclaimed

    # Internals

    async def _attach(
        self,
        store: VectorStoreRecord,
        file_id: str,
        attributes: dict[str, Scalar],
        sizes: tuple[int, int],
        *,
        batch_id: str | None,
    ) -> VectorStoreFileRecord:
        max_tokens, overlap = sizes
        file = await self.rows.attach_file(
            VectorStoreFileRecord(
                store_id=store.id,
                file_id=file_id,
                tenant=store.tenant,
                status=VectorFileStatus.IN_PROGRESS,
                last_error=None,
                attributes=attributes,
                chunking_strategy={
                    "type": "static",
                    "static": {"max_chunk_size_tokens": max_tokens, "chunk_overlap_tokens": overlap},
                },
                usage_bytes=0,
                created_at=int(self._clock()),
                batch_id=batch_id,
                generation=1,
            )
        )
        if file.status is VectorFileStatus.IN_PROGRESS:
            payload = {"store_id": file.store_id, "file_id": file.file_id, "generation": file.generation}
            await self._jobs.enqueue(store.tenant, JOB_KIND, payload, job_id=ingestion_job_id(file))
        return file

    async def _stop(self, files: builtins.list[VectorStoreFileRecord]) -> None:
        for file in files:
            if file.status is VectorFileStatus.IN_PROGRESS or file.status is VectorFileStatus.CANCELLED:
                await self._jobs.cancel(file.tenant, ingestion_job_id(file))

    async def _store(self, tenant: str, store_id: str) -> VectorStoreRecord:
        store = await self.rows.get_store(tenant, store_id)
        if store is None:
            raise _no_store(store_id)
        return store

    def _live(self, store: VectorStoreRecord, param: str = "vector_store_id") -> VectorStoreRecord:
        if store.expired(self._clock()):
            raise VectorStoreExpired(
                f"The vector store '{store.id}' has expired: it can no longer be searched, given files or "
                "a new expiry. Create a new vector store for its files.",
                param=param,
            )
        return store

    async def _batch(self, tenant: str, store_id: str, batch_id: str) -> VectorStoreBatchRecord:
        batch = await self.rows.get_batch(tenant, store_id, batch_id)
        if batch is None:
            raise _no_batch(batch_id)
        return batch

    async def _model(self, store: VectorStoreRecord) -> Model:
        return await self._inference.catalog.get(
            store.embedding_model, ModelType.EMBEDDING, tenant=store.tenant
        )

    async def _sizes(self, model: Model, strategy: Mapping[str, Any] | None) -> tuple[int, int]:
        tokenizer = await asyncio.to_thread(self._tokenizer_for, model)
        return chunk_sizes(strategy, window=window(model, tokenizer))

    async def _measured_dimension(self, model: Model, tenant: str) -> int:
        """The dimension of a model whose provider does not declare it: the length of one vector."""
        _, embedded = await self._inference.embed(model.identifier, ["dimension"], tenant)
        return len(embedded.vectors[0])

    async def _shown(self, store: VectorStoreRecord) -> VectorStore:
        tally = (await self.rows.tally(store.tenant, "store", [store.id]))[store.id]
        return VectorStore(
            store, tally.file_counts, tally.usage_bytes, self._status(store, tally.file_counts)
        )

    async def _shown_batch(self, batch: VectorStoreBatchRecord) -> FileBatch:
        counts = (await self.rows.tally(batch.tenant, "batch", [batch.id]))[batch.id].file_counts
        status: BatchStatus
        if batch.cancelled:
            status = "cancelled"
        elif counts.in_progress:
            status = "in_progress"
        elif counts.total and counts.failed == counts.total:
            status = "failed"
        else:
            status = "completed"
        return FileBatch(batch, counts, status)

    def _status(self, store: VectorStoreRecord, counts: FileCounts) -> StoreStatus:
        if store.expired(self._clock()):
            return "expired"
        return "in_progress" if counts.in_progress else "completed"


def _no_store(store_id: str) -> NotFound:
    return NotFound(f"No such vector store: '{store_id[:80]}'.", param="vector_store_id")


def _no_file(store_id: str, file_id: str) -> NotFound:
    return NotFound(f"No file '{file_id[:80]}' in vector store '{store_id[:80]}'.", param="file_id")


def _no_batch(batch_id: str) -> NotFound:
    return NotFound(f"No such file batch: '{batch_id[:80]}'.", param="batch_id")


def _page_bounds(after: str | None, before: str | None, limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}.", param="limit")
    if after is not None and before is not None:
        raise InvalidInput("Give 'after' or 'before', not both.", param="before")


def _bounded(items: Sequence[Any], param: str) -> None:
    if len(items) > MAX_FILES:
        raise InvalidInput(f"'{param}' may name at most {MAX_FILES} files.", param=param)


def _name(name: str | None) -> str:
    _bounded_text(name, MAX_NAME_CHARS, "name")
    return name or ""


def _bounded_text(text: str | None, limit: int, param: str) -> None:
    if text is not None and len(text) > limit:
        raise InvalidInput(f"{param} may be at most {limit} characters.", param=param)


def _keys(pairs: Mapping[str, Any], param: str) -> None:
    if len(pairs) > MAX_PAIRS:
        raise InvalidInput(f"{param} may hold at most {MAX_PAIRS} pairs.", param=param)
    for key in pairs:
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_CHARS:
            raise InvalidInput(f"{param} keys are strings of 1 to {MAX_KEY_CHARS} characters.", param=param)


def _metadata(metadata: Mapping[str, Any] | None) -> dict[str, str]:
    metadata = metadata or {}
    _keys(metadata, "metadata")
    for key, value in metadata.items():
        if not isinstance(value, str) or len(value) > MAX_VALUE_CHARS:
            raise InvalidInput(
                f"metadata values are strings of at most {MAX_VALUE_CHARS} characters.",
                param=f"metadata.{key}",
            )
    return dict(metadata)


def _attributes(attributes: Mapping[str, Any] | None) -> dict[str, Scalar]:
    attributes = attributes or {}
    _keys(attributes, "attributes")
    for key, value in attributes.items():
        scalar = isinstance(value, bool | int | float) or (
            isinstance(value, str) and len(value) <= MAX_VALUE_CHARS
        )
        if not scalar:
            raise InvalidInput(
                f"attribute values are strings of at most {MAX_VALUE_CHARS} characters, numbers or booleans.",
                param=f"attributes.{key}",
            )
    return dict(attributes)


def _days(expires_after: Mapping[str, Any] | None) -> int | None:
    if expires_after is None:
        return None
    if set(expires_after) != {"anchor", "days"} or expires_after["anchor"] != "last_active_at":
        raise InvalidInput("expires_after is {'anchor': 'last_active_at', 'days': n}.", param="expires_after")
    days = expires_after["days"]
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_EXPIRY_DAYS:
        raise InvalidInput(
            f"expires_after.days must be between 1 and {MAX_EXPIRY_DAYS}.", param="expires_after.days"
        )
    return days
