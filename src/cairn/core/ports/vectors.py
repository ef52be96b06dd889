"""The vector index: chunks of files, each with its embedding and its text, in one partition per vector
store, searched by nearness to a query vector and by keywords, among the files whose attributes match a
filter. Used by the vector store service (``core.vectors``); implemented by ``adapters.vectors_sqlite``
(sqlite-vec and FTS5 beside the metadata on SQLite) and ``adapters.vectors_pg`` (pgvector and
``tsvector`` on PostgreSQL).

Invariants every implementation keeps:
- A store has one dimension, fixed when it is created; a vector of another length is ``InvalidInput``.
- ``put_file`` replaces a file's chunks and attributes as one step: a search sees the file's old
  chunks or its new ones, never a mix, and never a chunk of a file after ``remove_file`` returned.
- A search reads one store only: other stores beside it change neither which chunks it finds nor,
  beyond noise, its time (BM25's term statistics may be the whole index's, so a keyword score may move
  a little with other stores; a nearness score never does).
- ``nearest`` is cosine similarity (1 for the same direction), best first; it may be approximate, with
  recall@10 of at least 0.95 against an exact search, and it returns ``limit`` hits whenever that many
  chunks match the filter (a filter never starves an approximate search). ``keyword`` is BM25 over
  the chunk text (positive, higher is better), best first, all the query's words optional and its
  English stop words ignored (a query of stop words alone matches nothing, on every backend); on
  PostgreSQL, which keeps no term statistics per store, it is ``ts_rank_cd`` (cover density over the
  chunk's length, mapped into (0, 1)): positive and higher for more of the words, more often, in a
  shorter chunk, but not on BM25's scale, so scores of the two backends do not compare.
- Filters are over the attributes of a chunk's file; a key the file lacks matches no comparison but
  ``ne`` and ``nin``. Strings compare as strings and numbers as numbers; a comparison of a string with a
  number (or a boolean with either) is false, never an error.
- A chunk's ``metadata`` (a JSON object, or None) is kept with it and comes back with its hits as it
  was given; it is never searched.
- Missing stores and files are no-ops on writes and empty on reads: the service owns existence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeAlias

Scalar: TypeAlias = str | int | float | bool
ComparisonOp = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"]


@dataclass(frozen=True, slots=True)
class Comparison:
    key: str
    op: ComparisonOp
    value: Scalar | tuple[Scalar, ...]  # a tuple for ``in`` and ``nin``


@dataclass(frozen=True, slots=True)
class Compound:
    op: Literal["and", "or"]
    filters: tuple[Filter, ...]


Filter: TypeAlias = Comparison | Compound


@dataclass(frozen=True, slots=True)
class IndexedChunk:
    index: int  # the chunk's place in its file, from 0
    text: str
    vector: Sequence[float]
    metadata: Mapping[str, Any] | None = None  # the chunk's own; chunks of ingested files have none


@dataclass(frozen=True, slots=True)
class ChunkHit:
    file_id: str
    index: int
    text: str
    score: float
    attributes: dict[str, Scalar]
    metadata: dict[str, Any] | None = None


class VectorIndex(Protocol):
    provider_id: str  # as ``/v1/providers`` lists it: ``sqlite-vec``, ``pgvector``
    provider_type: str  # ``inline::sqlite-vec``, ``remote::pgvector``

    async def create_store(self, store_id: str, dimension: int) -> None:
        """Make the store's partition; a no-op if it exists with this dimension, ``Conflict`` if it
        exists with another."""

    async def drop_store(self, store_id: str) -> None:
        """Remove the store's partition and every chunk in it."""

    async def put_file(
        self,
        store_id: str,
        file_id: str,
        attributes: Mapping[str, Scalar],
        chunks: Sequence[IndexedChunk],
    ) -> None:
        """Replace the file's chunks and attributes in the store, as one step."""

    async def set_attributes(self, store_id: str, file_id: str, attributes: Mapping[str, Scalar]) -> None:
        """Replace the attributes of a file already in the store."""

    async def remove_file(self, store_id: str, file_id: str) -> None: ...

    async def nearest(
        self, store_id: str, vector: Sequence[float], *, limit: int, filters: Filter | None = None
    ) -> list[ChunkHit]:
        """The ``limit`` chunks most similar to ``vector`` whose file matches ``filters``, best first."""

    async def keyword(
        self, store_id: str, query: str, *, limit: int, filters: Filter | None = None
    ) -> list[ChunkHit]:
        """The ``limit`` chunks that best match the words of ``query`` by BM25, best first. English stop
        words ("the", "of", "and", …) are no keywords: none for a query without other words."""

    async def ping(self) -> None:
        """Raise ``Unavailable`` if the index cannot answer."""
