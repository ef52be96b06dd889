"""Llama Stack's vector-io on vector stores: chunks a client cut (and may have embedded) itself, inserted
into one of the tenant's stores (``vector_db_id`` names a ``vs_…`` store of the Vector Stores API) and
queried back with their metadata.

How inserted chunks live in a store:
- Every chunk names its document (``metadata.document_id``, or ``chunk_metadata.document_id``), and a
  document is one file of the store's index: ``vsdoc_`` and a hash of the document id, never an object
  id. An insert puts each of its documents whole, as one step (``VectorIndex.put_file``): the chunks it
  gives for a document replace all that document's chunks of before, so a search sees the old ones or
  the new ones. Give all of a document's chunks in one insert (Llama Stack adds chunks to a document
  one insert after another). Two chunks of a document with the same id are one: the later one, in the
  place of the first.
- A document is also a row among the store's files (``VectorStoreRows.put_completed_file``):
  ``completed``, its ``usage_bytes`` the bytes of its text, its attributes ``{"document_id": …}``, its
  ``chunking_strategy`` OpenAI's ``{"type": "other"}``. So ``file_counts`` and ``usage_bytes`` count
  it, the store's file listing shows it, detaching it removes its chunks, and deleting the store
  removes it as it does every file. It is not an object: its content route is 404.
- Each chunk keeps beside it, in the index (``IndexedChunk.metadata``), its document id, its id
  (``chunk_id``, else one made of the document id and the text as Llama Stack makes it), its
  ``metadata`` and its ``chunk_metadata``. A chunk that carries metadata is one of these, and
  ``POST /v1/vector_stores/{id}/search`` names its hits by their ``document_id`` (``core.vectors.search``).
- Before anything is written, every chunk is checked, and those without an embedding are embedded with
  the store's own model through the inference router, ``EMBED_BATCH`` at a time (in the runtime's
  worker threads, as every embedding). Then each document is written, index first, then its row, which
  is written only while the store's row exists: a document never outlives its store, and a failure half
  way leaves the documents before it whole and the rest untouched.
- ``ttl_seconds`` is refused, not ignored: chunks stay until their document is inserted again or
  detached, or the store deleted.

A query is a search of the store (``VectorStores.search``: the same modes, and the same scores in
[0, 1]) over all its chunks, those of its files too: ``max_chunks`` hits (3 by default, as Llama
Stack), ``mode`` and ``score_threshold`` as the search's, and for ``hybrid`` Llama Stack's rankers:
``rrf`` (the default; Cairn fuses with k = ``RRF_K``, so another ``impact_factor`` is refused) or
``weighted`` with ``alpha``, the weight of the vector score (the keyword score has ``1 - alpha``). A
chunk of a file answers with ``{"document_id": file id, "filename": …}`` and the file's attributes as
its metadata, as Llama Stack shows a file's chunks.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
import uuid
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from ..errors import InvalidInput, NotFound
from ..inference.router import InferenceRouter
from ..ports.vectors import IndexedChunk
from ..records import VectorFileStatus, VectorStoreFileRecord, VectorStoreRecord
from .ingest import EMBED_BATCH
from .search import RRF_K, SearchHit, SearchMode

if TYPE_CHECKING:
    from .stores import VectorStores

MAX_CHUNKS = 1000  # in one insert
MAX_CHUNK_CHARS = 32_768
MAX_DOCUMENT_ID_CHARS = 256
MAX_CHUNK_ID_CHARS = 128
MAX_METADATA_CHARS = 16_384  # a chunk's metadata and chunk_metadata, as JSON
DEFAULT_CHUNKS = 3
DEFAULT_ALPHA = 0.5
DOCUMENT_PREFIX = "vsdoc_"
OTHER_CHUNKING: dict[str, Any] = {"type": "other"}
EMBEDDER_INPUT = re.compile(r"input\[(\d+)\]")  # how the embedder names an input it refuses

Ranker = Literal["rrf", "weighted"]


@dataclass(frozen=True)
class RawChunk:
    """One chunk of an insert: its text (the face joins text parts) and what Llama Stack sends with it."""

    text: str
    metadata: Mapping[str, Any]
    embedding: Sequence[float] | None = None
    chunk_id: str | None = None
    chunk_metadata: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class QueriedChunk:
    """One chunk a query found, as Llama Stack's ``QueryChunksResponse`` shows it, with its score."""

    text: str
    metadata: dict[str, Any]
    chunk_id: str
    chunk_metadata: dict[str, Any] | None
    score: float


@dataclass
class _Planned:
    at: int  # the chunk's place in the insert, which errors name
    document_id: str
    chunk_id: str
    text: str
    kept: dict[str, Any]  # what the index keeps beside the chunk
    vector: Sequence[float] | None


def document_file_id(document_id: str) -> str:
    """The file of the store's index that holds a document's chunks."""
    return DOCUMENT_PREFIX + hashlib.sha256(document_id.encode()).hexdigest()[:40]


def chunk_id(document_id: str, text: str) -> str:
    """The id of a chunk given without one, made as Llama Stack makes it: the same for the same text of
    the same document."""
    digest = hashlib.md5(f"{document_id}:{text}".encode(), usedforsecurity=False).hexdigest()
    return str(uuid.UUID(digest))


class RawChunks:
    def __init__(
        self, stores: VectorStores, inference: InferenceRouter, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._stores = stores
        self._inference = inference
        self._clock = clock

    async def insert(
        self, tenant: str, store_id: str, chunks: Sequence[RawChunk], *, ttl_seconds: int | None = None
    ) -> None:
        if ttl_seconds is not None:
            raise InvalidInput(
                "ttl_seconds is not supported: chunks stay until their document is inserted again or "
                "detached, or the vector store is deleted.",
                param="ttl_seconds",
            )
        if not 1 <= len(chunks) <= MAX_CHUNKS:
            raise InvalidInput(f"chunks holds 1 to {MAX_CHUNKS} chunks.", param="chunks")
        store = await self._stores.rows.get_store(tenant, store_id)
        if store is None:
            raise NotFound(f"No such vector store: '{store_id[:80]}'.", param="vector_db_id")
        documents: dict[str, dict[str, _Planned]] = {}
        for at, chunk in enumerate(chunks):
            planned = _planned(at, chunk, store.embedding_dimension)
            documents.setdefault(planned.document_id, {})[planned.chunk_id] = planned
        await self._embed(store, [p for document in documents.values() for p in document.values()])
        now = int(self._clock())
        for document_id, document in documents.items():
            await self._put(store, document_id, list(document.values()), now)
        await self._stores.rows.touch_store(tenant, store.id, now)

    async def query(
        self,
        tenant: str,
        store_id: str,
        query: str,
        *,
        max_chunks: int = DEFAULT_CHUNKS,
        mode: SearchMode = "vector",
        score_threshold: float = 0.0,
        ranker: Ranker = "rrf",
        alpha: float = DEFAULT_ALPHA,
        impact_factor: float = RRF_K,
    ) -> list[QueriedChunk]:
        """The ``max_chunks`` chunks of the store that best match ``query``, best first."""
        if impact_factor != RRF_K:
            raise InvalidInput(
                f"Cairn's reciprocal rank fusion uses k = {RRF_K}; impact_factor can only be {RRF_K}.",
                param="params.ranker.impact_factor",
            )
        if not 0 <= alpha <= 1:
            raise InvalidInput("alpha must be between 0 and 1.", param="params.ranker.alpha")
        ranking: dict[str, Any] = {"ranker": ranker, "score_threshold": score_threshold}
        if ranker == "weighted":
            ranking["hybrid_search"] = {"embedding_weight": alpha, "text_weight": 1 - alpha}
        page = await self._stores.search(
            tenant,
            store_id,
            query,
            max_num_results=max_chunks,
            ranking_options=ranking,
            search_mode=mode,
        )
        return [_queried(hit) for hit in page.hits]

    async def _embed(self, store: VectorStoreRecord, planned: list[_Planned]) -> None:
        """Embed the chunks given without an embedding, with the store's model."""
        pending = [p for p in planned if p.vector is None]
        for start in range(0, len(pending), EMBED_BATCH):
            batch = pending[start : start + EMBED_BATCH]
            try:
                _, embedded = await self._inference.embed(
                    store.embedding_model, [p.text for p in batch], store.tenant
                )
            except InvalidInput as exc:
                raise _of_chunk(exc, batch) from None
            for each, vector in zip(batch, embedded.vectors, strict=True):
                each.vector = array("f", vector)

    async def _put(
        self, store: VectorStoreRecord, document_id: str, planned: list[_Planned], now: int
    ) -> None:
        file_id = document_file_id(document_id)
        attributes = {"document_id": document_id}
        indexed = [
            IndexedChunk(i, p.text, cast(Sequence[float], p.vector), p.kept) for i, p in enumerate(planned)
        ]
        await self._stores.index.put_file(store.id, file_id, attributes, indexed)
        row = VectorStoreFileRecord(
            store_id=store.id,
            file_id=file_id,
            tenant=store.tenant,
            status=VectorFileStatus.COMPLETED,
            last_error=None,
            attributes=dict(attributes),
            chunking_strategy=OTHER_CHUNKING,
            usage_bytes=sum(len(p.text.encode()) for p in planned),
            created_at=now,
            batch_id=None,
            generation=1,
        )
        if await self._stores.rows.put_completed_file(row) is None:  # deleted meanwhile, with its index
            raise NotFound(f"No such vector store: '{store.id}'.", param="vector_db_id")


def _planned(at: int, chunk: RawChunk, dimension: int) -> _Planned:
    param = f"chunks[{at}]"
    if not chunk.text.strip() or len(chunk.text) > MAX_CHUNK_CHARS:
        raise InvalidInput(
            f"A chunk's content is text of 1 to {MAX_CHUNK_CHARS} characters.", param=f"{param}.content"
        )
    document_id = chunk.metadata.get("document_id", (chunk.chunk_metadata or {}).get("document_id"))
    if not isinstance(document_id, str) or not 1 <= len(document_id) <= MAX_DOCUMENT_ID_CHARS:
        raise InvalidInput(
            f"Each chunk names its document: metadata.document_id, a string of 1 to "
            f"{MAX_DOCUMENT_ID_CHARS} characters.",
            param=f"{param}.metadata.document_id",
        )
    if chunk.chunk_id is not None and not 1 <= len(chunk.chunk_id) <= MAX_CHUNK_ID_CHARS:
        raise InvalidInput(f"chunk_id has 1 to {MAX_CHUNK_ID_CHARS} characters.", param=f"{param}.chunk_id")
    identity = chunk.chunk_id or chunk_id(document_id, chunk.text)
    kept: dict[str, Any] = {
        "document_id": document_id,
        "chunk_id": identity,
        "metadata": dict(chunk.metadata),
    }
    if chunk.chunk_metadata is not None:
        kept["chunk_metadata"] = dict(chunk.chunk_metadata)
    try:
        size = len(json.dumps([kept["metadata"], kept.get("chunk_metadata")], allow_nan=False))
    except ValueError:
        raise InvalidInput("The chunk's metadata holds a number that is not finite.", param=param) from None
    if size > MAX_METADATA_CHARS:
        raise InvalidInput(
            f"A chunk's metadata and chunk_metadata take at most {MAX_METADATA_CHARS} characters as JSON.",
            param=f"{param}.metadata",
        )
    vector = None if chunk.embedding is None else _vector(chunk.embedding, dimension, f"{param}.embedding")
    return _Planned(at, document_id, identity, chunk.text, kept, vector)


def _vector(embedding: Sequence[float], dimension: int, param: str) -> array[float]:
    if len(embedding) != dimension:
        raise InvalidInput(
            f"The embedding has {len(embedding)} numbers; this vector store's embeddings have {dimension}.",
            param=param,
        )
    if not all(math.isfinite(x) for x in embedding) or not any(embedding):
        raise InvalidInput("The embedding must be finite numbers, not all zero.", param=param)
    return array("f", embedding)


def _of_chunk(exc: InvalidInput, batch: list[_Planned]) -> InvalidInput:
    """The embedder's error about ``input[i]`` of a batch, about the chunk it was instead."""
    named = EMBEDDER_INPUT.fullmatch(exc.param or "")
    if named is None or int(named[1]) >= len(batch):
        return exc
    param = f"chunks[{batch[int(named[1])].at}].content"
    return type(exc)(exc.message.replace(f"'{named[0]}'", f"'{param}'"), param=param)


def _queried(hit: SearchHit) -> QueriedChunk:
    if hit.metadata is None:  # a chunk of a file the store ingested
        metadata = {**hit.attributes, "document_id": hit.file_id, "filename": hit.filename}
        return QueriedChunk(hit.text, metadata, chunk_id(hit.file_id, hit.text), None, hit.score)
    kept = hit.metadata
    return QueriedChunk(hit.text, kept["metadata"], kept["chunk_id"], kept.get("chunk_metadata"), hit.score)
