"""The vector index on SQLite, in the metadata database (tables of migration 0006, D30): chunk rows with
their float32 embedding and its sign bits, attributes per file as JSON, FTS5 over the text.

How ``nearest`` finds the best chunks of a store:
- **Exact** when at most ``max(EXACT_CHUNKS, candidates)`` chunks match the filter: sqlite-vec's
  cosine over those rows, in SQL (a few µs a row).
- **Approximate** above that: each process keeps, per store, the binary codes of its chunks in memory
  (one bit per dimension, 48 bytes at 384-d; ``_Codes``), ranks the chunks whose file matches the filter
  by Hamming distance to the query's code with numpy, and re-scores the best ``candidates`` (40 per hit
  wanted, at least 400) by exact cosine in SQL. The re-scoring is one statement over the live rows,
  so a chunk removed since the codes were read is never returned, and a file's old and new chunks are
  never mixed. If fewer hits than wanted come back (the codes were stale), the search runs exactly.
- The codes follow the database by themselves: chunk ids only grow, so the rows above the largest id a
  process has are the new ones, read on the next search; removed chunks linger as dead codes until
  they are more than an eighth of the store's count, then the store's codes are read again. Other
  processes writing the same file are seen the same way. ``CACHE_MAX_CHUNKS`` bounds the codes kept
  (least recently searched stores go first), ~64 bytes a chunk at 384-d.

``keyword`` is FTS5's bm25 (negated: higher is better) over the words of the query, each quoted, joined
by OR: no user text is ever FTS5 syntax. The store's own token (``s<id>``, weight 0) restricts the match
inside the index. bm25's statistics (document count, average length, a word's frequency) are those of
the whole index, so a keyword score, though not whether a chunk matches, moves slightly with other stores.

A chunk's metadata is a JSON text beside it (migration 0010), NULL when it has none.

Filters become SQL over ``json_each`` of the file's attributes, each comparison an ``EXISTS`` on the key
and the JSON type: strings compare with strings, numbers with numbers, booleans with booleans (false <
true); any other pairing is false. ``ne`` holds where the key is missing or holds another value of the
same type; ``nin`` where the key is missing, or holds a value of a type the list has, equal to none of
its values. Keys and values are always bound parameters.

Writes run on the database's single-writer path, each in one transaction: a file's chunks, their
full-text entries (triggers) and the store's count move together.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa

from ..core.errors import Conflict, InvalidInput
from ..core.ports.vectors import ChunkHit, Comparison, Compound, Filter, IndexedChunk, Scalar
from .sql.engine import SqlDatabase
from .vector_inputs import (
    attributes_json,
    by_kind,
    check_dimension,
    metadata_json,
    query_words,
    value_kind,
    vector_matrix,
)

EXACT_CHUNKS = 2048
OVERSAMPLE = 40
MIN_CANDIDATES = 400
CACHE_MAX_CHUNKS = 4_000_000

GET_STORE = sa.text("SELECT id, dimension, chunks FROM vector_stores_index WHERE store_id = :store_id")
CREATE_STORE = sa.text(
    "INSERT INTO vector_stores_index (store_id, dimension) VALUES (:store_id, :dimension) "
    "ON CONFLICT (store_id) DO NOTHING"
)
GET_FILE = sa.text("SELECT id, chunks FROM vector_files WHERE store = :store AND file_id = :file_id")
INSERT_FILE = sa.text(
    "INSERT INTO vector_files (store, file_id, attributes, chunks) "
    "VALUES (:store, :file_id, :attributes, :chunks) RETURNING id"
)
UPDATE_FILE = sa.text("UPDATE vector_files SET attributes = :attributes, chunks = :chunks WHERE id = :file")
SET_ATTRIBUTES = sa.text(
    "UPDATE vector_files SET attributes = :attributes WHERE file_id = :file_id AND store = "
    "(SELECT id FROM vector_stores_index WHERE store_id = :store_id)"
)
DELETE_FILE = sa.text("DELETE FROM vector_files WHERE id = :file")
DELETE_FILE_CHUNKS = sa.text("DELETE FROM vector_chunks WHERE file = :file")
INSERT_CHUNK = sa.text(
    "INSERT INTO vector_chunks (store, file, idx, text, embedding, code, metadata) "
    "VALUES (:store, :file, :idx, :text, :embedding, :code, :metadata)"
)
COUNT_CHUNKS = sa.text("UPDATE vector_stores_index SET chunks = chunks + :delta WHERE id = :store")
DROP_STORE = (
    sa.text("DELETE FROM vector_chunks WHERE store = :store"),
    sa.text("DELETE FROM vector_files WHERE store = :store"),
    sa.text("DELETE FROM vector_stores_index WHERE id = :store"),
)
LAST_CHUNK = sa.text("SELECT max(id) FROM vector_chunks WHERE store = :store")
CODES_AFTER = sa.text(
    "SELECT id, file, code FROM vector_chunks WHERE store = :store AND id > :after ORDER BY id"
)

# One statement picks the best rows and then reads their text: what it returns is one snapshot.
HITS = """WITH best AS (
    SELECT c.id AS id, {score} AS score FROM {source}
    WHERE {where} ORDER BY score DESC, c.id LIMIT :limit
)
SELECT f.file_id, c.idx, c.text, c.metadata, f.attributes, best.score FROM best
JOIN vector_chunks AS c ON c.id = best.id JOIN vector_files AS f ON f.id = c.file
ORDER BY best.score DESC, c.id"""
COSINE = "1 - vec_distance_cosine(c.embedding, :vector)"
CANDIDATES = "c.id IN (SELECT value FROM json_each(:candidates))"
FILE_MATCHES = "c.file IN (SELECT f.id FROM vector_files AS f WHERE f.store = :store AND {filter})"
MATCHING_FILES = "SELECT f.id, f.chunks FROM vector_files AS f WHERE f.store = :store AND {filter}"

JSON_TYPES = {str: "('text')", bool: "('true', 'false')", float: "('integer', 'real')"}
OPERATORS = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


@dataclass(frozen=True)
class _Store:
    id: int
    dimension: int
    chunks: int


class SqliteVectorIndex:
    provider_id = "sqlite-vec"
    provider_type = "inline::sqlite-vec"

    def __init__(self, database: SqlDatabase) -> None:
        self._db = database.runner
        self._codes = _CodeCache(CACHE_MAX_CHUNKS)

    async def create_store(self, store_id: str, dimension: int) -> None:
        if dimension < 1:
            raise InvalidInput("A vector store needs a dimension of at least 1.", param="dimension")

        def work(conn: sa.Connection) -> None:
            conn.execute(CREATE_STORE, {"store_id": store_id, "dimension": dimension})
            store = _store(conn, store_id)
            if store is not None and store.dimension != dimension:
                raise Conflict(
                    f"The vector store '{store_id}' holds vectors of {store.dimension} dimensions."
                )

        await self._db.write(work)

    async def drop_store(self, store_id: str) -> None:
        def work(conn: sa.Connection) -> None:
            store = _store(conn, store_id)
            if store is not None:
                for statement in DROP_STORE:
                    conn.execute(statement, {"store": store.id})
                self._codes.forget(store.id)

        await self._db.write(work)

    async def put_file(
        self,
        store_id: str,
        file_id: str,
        attributes: Mapping[str, Scalar],
        chunks: Sequence[IndexedChunk],
    ) -> None:
        document = attributes_json(attributes)
        matrix = vector_matrix([chunk.vector for chunk in chunks])
        codes = _binary_codes(matrix)
        metadata = [metadata_json(chunk.metadata) for chunk in chunks]

        def work(conn: sa.Connection) -> None:
            store = _store(conn, store_id)
            if store is None:
                return
            if chunks:
                check_dimension(store.dimension, matrix.shape[1])
            old = conn.execute(GET_FILE, {"store": store.id, "file_id": file_id}).first()
            values = {"attributes": document, "chunks": len(chunks)}
            if old is None:
                file = conn.execute(
                    INSERT_FILE, {"store": store.id, "file_id": file_id, **values}
                ).scalar_one()
            else:
                file = old.id
                conn.execute(DELETE_FILE_CHUNKS, {"file": file})
                conn.execute(UPDATE_FILE, {"file": file, **values})
            if chunks:
                rows = [
                    {
                        "store": store.id,
                        "file": file,
                        "idx": chunk.index,
                        "text": chunk.text,
                        "embedding": matrix[i].tobytes(),
                        "code": codes[i].tobytes(),
                        "metadata": metadata[i],
                    }
                    for i, chunk in enumerate(chunks)
                ]
                conn.execute(INSERT_CHUNK, rows)
            delta = len(chunks) - (old.chunks if old is not None else 0)
            conn.execute(COUNT_CHUNKS, {"store": store.id, "delta": delta})

        await self._db.write(work)

    async def set_attributes(self, store_id: str, file_id: str, attributes: Mapping[str, Scalar]) -> None:
        values = {"store_id": store_id, "file_id": file_id, "attributes": attributes_json(attributes)}
        await self._db.write(lambda conn: conn.execute(SET_ATTRIBUTES, values))

    async def remove_file(self, store_id: str, file_id: str) -> None:
        def work(conn: sa.Connection) -> None:
            store = _store(conn, store_id)
            if store is None:
                return
            old = conn.execute(GET_FILE, {"store": store.id, "file_id": file_id}).first()
            if old is None:
                return
            conn.execute(DELETE_FILE_CHUNKS, {"file": old.id})
            conn.execute(DELETE_FILE, {"file": old.id})
            conn.execute(COUNT_CHUNKS, {"store": store.id, "delta": -old.chunks})

        await self._db.write(work)

    async def nearest(
        self, store_id: str, vector: Sequence[float], *, limit: int, filters: Filter | None = None
    ) -> list[ChunkHit]:
        query = vector_matrix([vector])[0]
        code = _binary_codes(query[np.newaxis, :])[0]
        where = _Where(filters)

        def work(conn: sa.Connection) -> list[ChunkHit]:
            store = _store(conn, store_id)
            if store is None:
                return []
            check_dimension(store.dimension, len(query))
            matching, files = store.chunks, None
            if filters is not None:
                rows = conn.execute(sa.text(MATCHING_FILES.format(filter=where.sql)), where.bind(store)).all()
                matching, files = sum(row.chunks for row in rows), [row.id for row in rows]
            wanted = min(limit, matching)
            if wanted < 1:
                return []
            candidates = max(MIN_CANDIDATES, OVERSAMPLE * limit)
            params = {**where.bind(store), "vector": query.tobytes(), "limit": limit}
            if matching > max(EXACT_CHUNKS, candidates):
                codes = self._codes.current(conn, store)
                best = codes.nearest(code, candidates, files)
                hits = _nearest_hits(conn, where, {**params, "candidates": json.dumps(best)})
                if len(hits) >= wanted:
                    return hits
            return _nearest_hits(conn, where, params, exact=True)

        return await self._db.read(work)

    async def keyword(
        self, store_id: str, query: str, *, limit: int, filters: Filter | None = None
    ) -> list[ChunkHit]:
        words = query_words(query)
        if not words:
            return []
        where = _Where(filters)
        # \w never matches a double quote, so each word is one FTS5 string whatever it holds
        text = " OR ".join(f'"{word}"' for word in words)

        def work(conn: sa.Connection) -> list[ChunkHit]:
            store = _store(conn, store_id)
            if store is None:
                return []
            match = f"store : s{store.id} AND text : ({text})"
            params = {**where.bind(store), "match": match, "limit": limit}
            return _keyword_hits(conn, where, params)

        return await self._db.read(work)

    async def ping(self) -> None:
        await self._db.read(lambda conn: conn.execute(sa.text("SELECT vec_version()")).scalar_one())


def _store(conn: sa.Connection, store_id: str) -> _Store | None:
    row = conn.execute(GET_STORE, {"store_id": store_id}).first()
    return None if row is None else _Store(row.id, row.dimension, row.chunks)


def _binary_codes(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.uint64]:
    """One bit per dimension (its sign), padded to whole 64-bit words."""
    bits = np.packbits(matrix > 0, axis=1)
    padded = np.zeros((bits.shape[0], -(-bits.shape[1] // 8) * 8), dtype=np.uint8)
    padded[:, : bits.shape[1]] = bits
    return padded.view(np.uint64)


def _nearest_hits(
    conn: sa.Connection, where: _Where, params: dict[str, Any], *, exact: bool = False
) -> list[ChunkHit]:
    # candidates are ids of the store's chunks: no store condition, which would lead SQLite to scan
    # the store's index rather than look each id up
    conditions = (["c.store = :store"] if exact else [CANDIDATES]) + where.files
    statement = HITS.format(score=COSINE, source="vector_chunks AS c", where=" AND ".join(conditions))
    return [_hit(row) for row in conn.execute(sa.text(statement), params)]


def _keyword_hits(conn: sa.Connection, where: _Where, params: dict[str, Any]) -> list[ChunkHit]:
    statement = HITS.format(
        score="-bm25(vector_chunks_fts, 0.0, 1.0)",
        source="vector_chunks_fts JOIN vector_chunks AS c ON c.id = vector_chunks_fts.rowid",
        where=" AND ".join(["vector_chunks_fts MATCH :match", "c.store = :store", *where.files]),
    )
    return [_hit(row) for row in conn.execute(sa.text(statement), params)]


def _hit(row: sa.Row[Any]) -> ChunkHit:
    return ChunkHit(
        file_id=row.file_id,
        index=row.idx,
        text=row.text,
        score=float(row.score),
        attributes=json.loads(row.attributes),
        metadata=None if row.metadata is None else json.loads(row.metadata),
    )


class _Where:
    """A filter as SQL over ``f.attributes`` (``f`` a row of ``vector_files``), with its parameters."""

    def __init__(self, filters: Filter | None) -> None:
        self._params: dict[str, Any] = {}
        self.sql = "1" if filters is None else self._filter(filters)
        self.files = [] if filters is None else [FILE_MATCHES.format(filter=self.sql)]

    def bind(self, store: _Store) -> dict[str, Any]:
        return {**self._params, "store": store.id}

    def _filter(self, filters: Filter) -> str:
        if isinstance(filters, Compound):
            joiner = " AND " if filters.op == "and" else " OR "
            return "(" + joiner.join(self._filter(part) for part in filters.filters) + ")"
        return self._comparison(filters)

    def _comparison(self, comparison: Comparison) -> str:
        key = self._param(comparison.key)
        present = f"SELECT 1 FROM json_each(f.attributes) AS j WHERE j.key = :{key}"
        if isinstance(comparison.value, tuple):
            negated = comparison.op == "nin"
            members = " OR ".join(
                f"(j.type IN {JSON_TYPES[kind]} AND j.value {'NOT IN' if negated else 'IN'} "
                f"({', '.join(':' + self._param(value) for value in values)}))"
                for kind, values in by_kind(comparison.value).items()
            )
            matched = f"EXISTS ({present} AND ({members}))"
            return f"(NOT EXISTS ({present}) OR {matched})" if negated else matched
        kind = value_kind(comparison.value)
        value = self._param(comparison.value)
        matched = (
            f"EXISTS ({present} AND j.type IN {JSON_TYPES[kind]} "
            f"AND j.value {OPERATORS[comparison.op]} :{value})"
        )
        return f"(NOT EXISTS ({present}) OR {matched})" if comparison.op == "ne" else matched

    def _param(self, value: Scalar) -> str:
        name = f"p{len(self._params)}"
        self._params[name] = value
        return name


@dataclass(frozen=True)
class _Snapshot:
    """A store's codes as one process read them: chunk ids, their files' rows, their codes."""

    ids: npt.NDArray[np.int64]
    files: npt.NDArray[np.int64]
    codes: npt.NDArray[np.uint64]

    def __len__(self) -> int:
        return len(self.ids)

    def nearest(self, code: npt.NDArray[np.uint64], count: int, files: list[int] | None) -> list[int]:
        """The ids of the ``count`` chunks closest to ``code`` by Hamming distance, among those of
        ``files`` (all when None)."""
        rows = None if files is None else np.flatnonzero(np.isin(self.files, files))
        codes = self.codes if rows is None else self.codes[rows]
        distances = np.bitwise_count(codes ^ code).sum(axis=1, dtype=np.uint32)
        if len(distances) > count:
            best = np.argpartition(distances, count)[:count]
        else:
            best = np.arange(len(distances))
        chosen = best if rows is None else rows[best]
        return [int(i) for i in self.ids[chosen]]


class _CodeCache:
    """The binary codes of the stores this process searched, kept up to date from the database."""

    def __init__(self, max_chunks: int) -> None:
        self._max_chunks = max_chunks
        self._stores: OrderedDict[int, _Snapshot] = OrderedDict()
        self._locks: dict[int, threading.Lock] = {}
        self._lock = threading.Lock()

    def current(self, conn: sa.Connection, store: _Store) -> _Snapshot:
        with self._lock:
            lock = self._locks.setdefault(store.id, threading.Lock())
        with lock:
            with self._lock:
                cached = self._stores.get(store.id)
            dead = 0 if cached is None else len(cached) - store.chunks
            if cached is None or dead > max(64, store.chunks // 8):
                snapshot = _read_codes(conn, store, None)
            else:
                last = conn.execute(LAST_CHUNK, {"store": store.id}).scalar() or 0
                known = int(cached.ids[-1]) if len(cached) else 0
                snapshot = cached if last <= known else _read_codes(conn, store, cached)
            with self._lock:
                self._stores[store.id] = snapshot
                self._stores.move_to_end(store.id)
                self._evict(keep=store.id)
            return snapshot

    def forget(self, store: int) -> None:
        with self._lock:
            self._stores.pop(store, None)
            self._locks.pop(store, None)

    def _evict(self, keep: int) -> None:
        total = sum(len(snapshot) for snapshot in self._stores.values())
        for store in list(self._stores):
            if total <= self._max_chunks:
                return
            if store != keep:
                total -= len(self._stores.pop(store))
                self._locks.pop(store, None)


def _read_codes(conn: sa.Connection, store: _Store, known: _Snapshot | None) -> _Snapshot:
    """The store's codes: all of them, or ``known`` and those of the chunks written since."""
    after = int(known.ids[-1]) if known is not None and len(known) else 0
    rows = conn.execute(CODES_AFTER, {"store": store.id, "after": after}).all()
    words = -(-store.dimension // 64)
    ids = np.fromiter((row.id for row in rows), dtype=np.int64, count=len(rows))
    files = np.fromiter((row.file for row in rows), dtype=np.int64, count=len(rows))
    codes = np.frombuffer(b"".join(row.code for row in rows), dtype=np.uint64).reshape(len(rows), words)
    if known is None:
        return _Snapshot(ids, files, codes)
    return _Snapshot(
        np.concatenate([known.ids, ids]),
        np.concatenate([known.files, files]),
        np.concatenate([known.codes, codes]),
    )
