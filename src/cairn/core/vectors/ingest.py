"""Ingestion: the job (kind ``vector_store.file``) that makes an attached file searchable. Its bytes are
read (at most ``max_file_bytes``), its text extracted and chunked in a worker thread, the chunks
embedded in batches of ``EMBED_BATCH`` through the inference router for the store's tenant, and the
file put into the vector index once, at the end: nothing partial is ever searchable.

- The job names ``(store, file, generation)``; a job whose file row is gone, ended, or of another
  generation does nothing; one whose store has expired ends the file ``cancelled``.
- The end is written once per generation (``VectorStoreRows.finish_file``). Publishing (the index
  write, then the row) is shielded from cancellation, so it always completes as a step; a file that
  was detached, cancelled or attached anew meanwhile finds its row changed and takes its chunks back
  out of the index. Chunks a crash leaves between the two writes stay until the file is detached.
- A cancel or a detach stops the job (``Lease.stopping``): the thread checks it between chunks, the
  embedding stops at its next batch, and nothing is written.
- Errors: the file stays in progress while its job is retried (``core.jobs``); when the job fails for
  good (``Ingestion.failed``: the error says trying again cannot help, the last attempt failed, or
  every attempt stopped before it ended), the file ends ``failed`` with the job's error: its code if
  it is ``unsupported_file`` or ``invalid_file``, else ``server_error``, and the job's message, which
  is safe to show (a ``CairnError``'s own, or a generic one).
- Chunks are counted by ``tokenizer_for(model)``: the model's own tokenizer for the embedded ONNX
  model; for any other, MiniLM's as an estimate (the composer decides, D32). ``window`` is the model's
  context length (``DEFAULT_CONTEXT_LENGTH`` when its provider does not say) less the tokenizer's
  special tokens.
"""

from __future__ import annotations

import asyncio
import logging
import time
from array import array
from collections.abc import Callable
from typing import Any

from ..errors import InvalidFile, UnsupportedFile
from ..inference.catalog import Model
from ..inference.router import InferenceRouter
from ..jobs import Lease
from ..objects import ObjectEngine
from ..ports.inference import ModelType
from ..ports.tokens import TokenOffsets
from ..ports.vector_stores import VectorStoreRows
from ..ports.vectors import IndexedChunk, VectorIndex
from ..records import JobRecord, VectorFileStatus, VectorStoreFileRecord
from .chunking import Chunk, chunks
from .extract import extract_text

log = logging.getLogger("cairn.vectors")

JOB_KIND = "vector_store.file"
EMBED_BATCH = 64
DEFAULT_CONTEXT_LENGTH = 8192
FILE_ERRORS = (UnsupportedFile.code, InvalidFile.code)

TokenizerFor = Callable[[Model], TokenOffsets]


def window(model: Model, tokenizer: TokenOffsets) -> int:
    """How many tokens of text one chunk may hold for ``model``."""
    return (model.context_length or DEFAULT_CONTEXT_LENGTH) - tokenizer.special_tokens


class Stopped(Exception):
    """The job was told to stop while its thread was chunking."""


class Ingestion:
    """The job handler; ``JobRunner.register(JOB_KIND, ingestion, failed=ingestion.failed)``."""

    def __init__(
        self,
        rows: VectorStoreRows,
        index: VectorIndex,
        objects: ObjectEngine,
        inference: InferenceRouter,
        tokenizer_for: TokenizerFor,
        *,
        max_file_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._rows = rows
        self._index = index
        self._objects = objects
        self._inference = inference
        self._tokenizer_for = tokenizer_for
        self._max_file_bytes = max_file_bytes
        self._clock = clock

    async def __call__(self, job: JobRecord, lease: Lease) -> dict[str, Any] | None:
        tenant, payload = job.tenant, job.payload
        file = await self._rows.get_file(tenant, payload["store_id"], payload["file_id"])
        store = await self._rows.get_store(tenant, payload["store_id"])
        if (
            store is None
            or file is None
            or file.generation != payload["generation"]
            or file.status is not VectorFileStatus.IN_PROGRESS
        ):
            return {"skipped": True}
        if store.expired(self._clock()):  # it can no longer be searched: its chunks would be thrown away
            await self._rows.finish_file(
                tenant, file.store_id, file.file_id, file.generation, VectorFileStatus.CANCELLED
            )
            return {"skipped": True}
        model = await self._inference.catalog.get(store.embedding_model, ModelType.EMBEDDING, tenant=tenant)
        cut = await self._chunks(file, model, lease)
        indexed = await self._embedded(tenant, model, cut)
        usage = sum(len(chunk.text.encode()) for chunk in cut)
        await asyncio.shield(self._publish(file, indexed, usage))
        return {"chunks": len(indexed), "usage_bytes": usage}

    async def failed(self, job: JobRecord, error: dict[str, str]) -> None:
        """The job failed for good: its file, if still in progress in the job's generation, fails."""
        code = error["code"] if error["code"] in FILE_ERRORS else "server_error"
        payload = job.payload
        await self._rows.finish_file(
            job.tenant,
            payload["store_id"],
            payload["file_id"],
            payload["generation"],
            VectorFileStatus.FAILED,
            last_error={"code": code, "message": error["message"]},
        )

    async def _chunks(self, file: VectorStoreFileRecord, model: Model, lease: Lease) -> list[Chunk]:
        record = await self._objects.get(file.tenant, None, file.file_id)
        if record.bytes > self._max_file_bytes:
            raise InvalidFile(
                f"The file `{record.filename}` is too large for file search ({record.bytes} bytes; at most "
                f"{self._max_file_bytes})."
            )
        data = b"".join([part async for part in self._objects.read(record)])
        static = file.chunking_strategy["static"]
        sizes = static["max_chunk_size_tokens"], static["chunk_overlap_tokens"]

        def work() -> list[Chunk]:
            text = extract_text(data, record.filename, record.mime_type, max_chars=self._max_file_bytes).text
            tokenizer = self._tokenizer_for(model)
            cut = []
            for chunk in chunks(text, tokenizer, *sizes):
                if lease.stopping is not None:
                    raise Stopped
                cut.append(chunk)
            return cut

        return await asyncio.to_thread(work)

    async def _embedded(self, tenant: str, model: Model, cut: list[Chunk]) -> list[IndexedChunk]:
        indexed: list[IndexedChunk] = []
        for start in range(0, len(cut), EMBED_BATCH):
            batch = cut[start : start + EMBED_BATCH]
            _, embedded = await self._inference.embed(model.identifier, [c.text for c in batch], tenant)
            for chunk, vector in zip(batch, embedded.vectors, strict=True):
                indexed.append(IndexedChunk(chunk.index, chunk.text, array("f", vector)))
        return indexed

    async def _publish(self, file: VectorStoreFileRecord, indexed: list[IndexedChunk], usage: int) -> None:
        tenant, store_id, file_id = file.tenant, file.store_id, file.file_id
        await self._index.put_file(store_id, file_id, file.attributes, indexed)
        done = await self._rows.finish_file(
            tenant, store_id, file_id, file.generation, VectorFileStatus.COMPLETED, usage_bytes=usage
        )
        if done is None:
            now = await self._rows.get_file(tenant, store_id, file_id)
            if now is None or now.generation == file.generation:
                await self._index.remove_file(store_id, file_id)
            return
        if done.attributes != file.attributes:  # changed while the file was being ingested
            await self._index.set_attributes(store_id, file_id, done.attributes)
        await self._rows.touch_store(tenant, store_id, int(self._clock()))
        log.info("vectors.ingested store=%s file=%s chunks=%d", store_id, file_id, len(indexed))
