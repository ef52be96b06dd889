"""The vector index on PostgreSQL with pgvector (tables of migration 0007, D31): one table of chunks for
every store, each with its ``vector`` embedding, its store's dimension and its ``tsvector``; attributes
per file as ``jsonb``.

How ``nearest`` finds the best chunks of a store:
- **Exact** when at most ``EXACT_CHUNKS`` chunks match the filter (counted up to that bound through the
  primary key, which leads with the store): ordered by the distance on the unsized column, which no
  index serves, so PostgreSQL reads those rows and sorts them. HNSW on a store that small misses
  neighbours (recall 0.76 on 20 chunks, D31).
- **Approximate** above that: one partial HNSW index per dimension in use, on
  ``(embedding::vector(N)) vector_cosine_ops WHERE dimension = N`` (``halfvec`` above 2,000 dimensions;
  none above 4,000, where every search is exact), built with ``ef_construction`` 256, searched with
  ``hnsw.iterative_scan = relaxed_order`` so that other stores' chunks and the filter never starve it,
  ``hnsw.ef_search`` ``max(100, 2 × limit)``.
  The best rows are ordered again by their distance (relaxed order returns them nearly sorted). If
  fewer than wanted come back (the scan stopped at ``hnsw.max_scan_tuples``), the search runs exactly.
  That happens to a store above ``EXACT_CHUNKS`` that is a small part of its dimension's chunks (a few
  thousand among millions): the index walks other stores' rows first, and the search pays for that
  scan and then the exact one. Other stores then move its time, not its hits (D31 weighs the
  alternative, one index per store).
- Each search plans its statements with the store id as a constant (``plan_cache_mode``), so the
  planner can tell a small store from a large one and prove the partial index's predicate; the
  approximate statement is planned without sorts (``enable_sort``), so a filter whose selectivity the
  planner misjudges never turns it into a sort of the whole store.
- The index of a dimension is made by ``create_store`` when no index of that dimension exists yet:
  ``CREATE INDEX IF NOT EXISTS`` in the store's transaction, after a transaction-level advisory lock on
  the dimension, so concurrent creators wait for one another instead of colliding on the index name.
  Not ``CONCURRENTLY``, which cannot run in a transaction: the build holds writes to the chunks table
  for as long as it reads the table once (no row of a new dimension exists yet), once per dimension.

``keyword`` is ``ts_rank_cd`` (cover density, divided by ``1 + log`` of the chunk's length, then mapped
to ``rank / (rank + 1)``: positive, below 1, higher is better) over the query's words, each a quoted
lexeme of a ``to_tsquery('simple', …)``, joined by ``|``: no user text is ever tsquery syntax. It is not
BM25: PostgreSQL keeps no per-store term statistics, and computing them for each query reads the
store's every chunk. Its ordering agrees with BM25's on the common cases (more of the words, more often,
in a shorter chunk); its scale does not match SQLite's.

Filters become SQL over ``f.attributes``, each comparison a ``jsonb_typeof`` check and a typed
comparison: strings with strings (``COLLATE "C"``, byte order as on SQLite), numbers with numbers (as
``double precision``), booleans with booleans (false < true); any other pairing is false. ``ne`` holds
where the key is missing or holds another value of the same type; ``nin`` where the key is missing, or
holds a value of a type the list has, equal to none of its values. Keys and values are always bound.

A chunk's metadata is ``jsonb`` beside it (migration 0010), NULL when it has none.

Vectors travel as pgvector's text form (``[1.0,2.0]``). A search is one statement, so it sees one
snapshot: a file's old chunks or its new ones. ``put_file`` runs in one transaction and first upserts
the file's row, whose lock orders concurrent replacements of the same file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
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
MIN_EF_SEARCH = 100
MAX_EF_SEARCH = 1000  # pgvector's bound
# pgvector's default, 64, builds graphs in which more searches of a large clustered store end in the
# wrong cluster, however wide their ef_search; 128 still loses 5% of them at a million chunks (D31)
EF_CONSTRUCTION = 256
VECTOR_INDEX_MAX_DIMENSION = 2000  # HNSW on ``vector``; ``halfvec`` above, up to its own bound
HALFVEC_INDEX_MAX_DIMENSION = 4000
INDEX_LOCK = 0x76656374  # "vect"; with the dimension, the advisory lock of one dimension's index
INSERT_BATCH = 500

GET_STORE = sa.text("SELECT dimension FROM vector_stores_index WHERE store_id = :store_id")
LOCK_STORE = sa.text("SELECT dimension FROM vector_stores_index WHERE store_id = :store_id FOR KEY SHARE")
CREATE_STORE = sa.text(
    "INSERT INTO vector_stores_index (store_id, dimension) VALUES (:store_id, :dimension) "
    "ON CONFLICT (store_id) DO NOTHING"
)
INDEX_EXISTS = sa.text("SELECT to_regclass(:name) IS NOT NULL")
LOCK_INDEX = sa.text("SELECT pg_advisory_xact_lock(:lock, :dimension)")
DROP_STORE = sa.text("DELETE FROM vector_stores_index WHERE store_id = :store_id")
UPSERT_FILE = sa.text(
    "INSERT INTO vector_files (store_id, file_id, attributes) "
    "VALUES (:store_id, :file_id, CAST(:attributes AS jsonb)) "
    "ON CONFLICT (store_id, file_id) DO UPDATE SET attributes = EXCLUDED.attributes"
)
DELETE_FILE_CHUNKS = sa.text("DELETE FROM vector_chunks WHERE store_id = :store_id AND file_id = :file_id")
INSERT_CHUNK = sa.text(
    "INSERT INTO vector_chunks (store_id, file_id, idx, dimension, text, embedding, metadata) "
    "VALUES (:store_id, :file_id, :idx, :dimension, :text, CAST(CAST(:embedding AS text) AS vector), "
    "CAST(:metadata AS jsonb))"
)
SET_ATTRIBUTES = sa.text(
    "UPDATE vector_files SET attributes = CAST(:attributes AS jsonb) "
    "WHERE store_id = :store_id AND file_id = :file_id"
)
DELETE_FILE = sa.text("DELETE FROM vector_files WHERE store_id = :store_id AND file_id = :file_id")
# Each search plans its statements for its own store (a generic plan of ``store_id = $1`` would read a
# small store by the HNSW index, or the whole table), and reads the store's dimension.
SEARCH_SETTINGS = sa.text(
    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), "
    "set_config('hnsw.iterative_scan', 'relaxed_order', true), "
    "set_config('hnsw.ef_search', :ef_search, true), "
    "(SELECT dimension FROM vector_stores_index WHERE store_id = :store_id) AS dimension"
)
# The approximate statement is planned without a sort of the chunks: ordering by the HNSW index is its
# point, and the planner, misjudging how many files a filter keeps, would otherwise sort the whole store.
ORDER_BY_INDEX = sa.text("SELECT set_config('enable_sort', :sort, true)")
MATCHING = """SELECT count(*) FROM (
    SELECT 1 FROM vector_chunks AS c WHERE c.store_id = :store_id{files} LIMIT :bound
) AS matching"""

# The best rows first (the ORDER BY an index can serve), then their files' attributes, each by its key.
HITS = """WITH best AS MATERIALIZED (
    SELECT c.file_id, c.idx, c.text, c.metadata::text AS metadata, {score} AS score
    FROM vector_chunks AS c{source}
    WHERE c.store_id = :store_id{where} ORDER BY {order}, c.file_id, c.idx LIMIT :limit
)
SELECT best.file_id, best.idx, best.text, best.metadata, best.score, (
    SELECT f.attributes::text FROM vector_files AS f WHERE f.store_id = :store_id AND f.file_id = best.file_id
) AS attributes FROM best ORDER BY best.score DESC, best.file_id, best.idx"""
QUERY_VECTOR = "CAST(CAST(:vector AS text) AS {type})"
FILE_MATCHES = (
    " AND c.file_id IN (SELECT f.file_id FROM vector_files AS f WHERE f.store_id = :store_id AND {filter})"
)
TSQUERY = ", to_tsquery('simple', :tsquery) AS q"

JSON_TYPES = {str: "string", bool: "boolean", float: "number"}
SQL_TYPES = {str: "text", bool: "boolean", float: "double precision"}
OPERATORS = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


class PgVectorIndex:
    provider_id = "pgvector"
    provider_type = "remote::pgvector"

    def __init__(self, database: SqlDatabase) -> None:
        self._db = database.runner

    async def create_store(self, store_id: str, dimension: int) -> None:
        if dimension < 1:
            raise InvalidInput("A vector store needs a dimension of at least 1.", param="dimension")

        def work(conn: sa.Connection) -> None:
            conn.execute(CREATE_STORE, {"store_id": store_id, "dimension": dimension})
            existing = conn.execute(GET_STORE, {"store_id": store_id}).scalar_one()
            if existing != dimension:
                raise Conflict(f"The vector store '{store_id}' holds vectors of {existing} dimensions.")
            _ensure_hnsw_index(conn, dimension)

        await self._db.write(work)

    async def drop_store(self, store_id: str) -> None:
        await self._db.write(lambda conn: conn.execute(DROP_STORE, {"store_id": store_id}))

    async def put_file(
        self,
        store_id: str,
        file_id: str,
        attributes: Mapping[str, Scalar],
        chunks: Sequence[IndexedChunk],
    ) -> None:
        document = attributes_json(attributes)
        matrix = vector_matrix([chunk.vector for chunk in chunks])
        keys = {"store_id": store_id, "file_id": file_id}

        def work(conn: sa.Connection) -> None:
            dimension = conn.execute(LOCK_STORE, {"store_id": store_id}).scalar()
            if dimension is None:
                return
            if chunks:
                check_dimension(dimension, matrix.shape[1])
            conn.execute(UPSERT_FILE, {**keys, "attributes": document})
            conn.execute(DELETE_FILE_CHUNKS, keys)
            rows = [
                {
                    **keys,
                    "idx": chunk.index,
                    "dimension": dimension,
                    "text": chunk.text,
                    "embedding": _literal(row),
                    "metadata": metadata_json(chunk.metadata),
                }
                for chunk, row in zip(chunks, matrix, strict=True)
            ]
            for start in range(0, len(rows), INSERT_BATCH):
                conn.execute(INSERT_CHUNK, rows[start : start + INSERT_BATCH])

        await self._db.write(work)

    async def set_attributes(self, store_id: str, file_id: str, attributes: Mapping[str, Scalar]) -> None:
        values = {"store_id": store_id, "file_id": file_id, "attributes": attributes_json(attributes)}
        await self._db.write(lambda conn: conn.execute(SET_ATTRIBUTES, values))

    async def remove_file(self, store_id: str, file_id: str) -> None:
        keys = {"store_id": store_id, "file_id": file_id}
        await self._db.write(lambda conn: conn.execute(DELETE_FILE, keys))

    async def nearest(
        self, store_id: str, vector: Sequence[float], *, limit: int, filters: Filter | None = None
    ) -> list[ChunkHit]:
        query = vector_matrix([vector])[0]
        where = _Where(filters)

        ef_search = min(MAX_EF_SEARCH, max(MIN_EF_SEARCH, 2 * limit))

        def work(conn: sa.Connection) -> list[ChunkHit]:
            dimension = _search_settings(conn, store_id, ef_search)
            if dimension is None:
                return []
            check_dimension(dimension, len(query))
            params = {**where.params, "store_id": store_id}
            matching = conn.execute(
                sa.text(MATCHING.format(files=where.files)), {**params, "bound": EXACT_CHUNKS + 1}
            ).scalar_one()
            wanted = min(limit, matching)
            if wanted < 1:
                return []
            params.update(vector=_literal(query), limit=limit)
            indexed = _indexed_type(dimension)
            if matching > EXACT_CHUNKS and indexed is not None:
                distance = f"c.embedding::{indexed}({dimension}) <=> " + QUERY_VECTOR.format(
                    type=f"{indexed}({dimension})"
                )
                # the literal dimension lets the planner prove the partial index's predicate
                conn.execute(ORDER_BY_INDEX, {"sort": "off"})
                hits = _hits(conn, distance, f" AND c.dimension = {dimension:d}{where.files}", params)
                if len(hits) >= wanted:
                    return hits
                conn.execute(ORDER_BY_INDEX, {"sort": "on"})
            distance = "c.embedding <=> " + QUERY_VECTOR.format(type="vector")
            return _hits(conn, distance, where.files, params)

        return await self._db.read(work)

    async def keyword(
        self, store_id: str, query: str, *, limit: int, filters: Filter | None = None
    ) -> list[ChunkHit]:
        words = query_words(query)
        if not words:
            return []
        where = _Where(filters)
        # \w never matches a quote or a backslash, so each word is one quoted lexeme whatever it holds
        tsquery = " | ".join(f"'{word}'" for word in words)
        statement = sa.text(
            HITS.format(
                score="ts_rank_cd(c.tsv, q, 1 | 32)",
                source=TSQUERY,
                where=" AND c.tsv @@ q" + where.files,
                order="score DESC",
            )
        )
        params = {**where.params, "store_id": store_id, "tsquery": tsquery, "limit": limit}

        def work(conn: sa.Connection) -> list[ChunkHit]:
            if _search_settings(conn, store_id, MIN_EF_SEARCH) is None:
                return []
            return [_hit(row) for row in conn.execute(statement, params)]

        return await self._db.read(work)

    async def ping(self) -> None:
        installed = sa.text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        await self._db.read(lambda conn: conn.execute(installed).scalar_one())


def _search_settings(conn: sa.Connection, store_id: str, ef_search: int) -> int | None:
    """Set the transaction's search settings; the store's dimension, None if there is no store."""
    row = conn.execute(SEARCH_SETTINGS, {"store_id": store_id, "ef_search": str(ef_search)}).one()
    return None if row.dimension is None else int(row.dimension)


def _indexed_type(dimension: int) -> str | None:
    """The pgvector type the HNSW index of this dimension is on, or None if HNSW cannot index it."""
    if dimension <= VECTOR_INDEX_MAX_DIMENSION:
        return "vector"
    return "halfvec" if dimension <= HALFVEC_INDEX_MAX_DIMENSION else None


def _ensure_hnsw_index(conn: sa.Connection, dimension: int) -> None:
    indexed = _indexed_type(dimension)
    name = f"ix_vector_chunks_hnsw_{dimension:d}"
    if indexed is None or conn.execute(INDEX_EXISTS, {"name": name}).scalar_one():
        return
    conn.execute(LOCK_INDEX, {"lock": INDEX_LOCK, "dimension": dimension})
    conn.execute(
        sa.text(
            f"CREATE INDEX IF NOT EXISTS {name} ON vector_chunks "
            f"USING hnsw ((embedding::{indexed}({dimension:d})) {indexed}_cosine_ops) "
            f"WITH (ef_construction = {EF_CONSTRUCTION:d}) WHERE dimension = {dimension:d}"
        )
    )


def _hits(conn: sa.Connection, distance: str, where: str, params: dict[str, Any]) -> list[ChunkHit]:
    statement = HITS.format(score=f"1 - ({distance})", source="", where=where, order=distance)
    return [_hit(row) for row in conn.execute(sa.text(statement), params)]


def _literal(vector: npt.NDArray[np.float32]) -> str:
    return "[" + ",".join(map(repr, vector.tolist())) + "]"


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
    """A filter as SQL over ``f.attributes`` (``f`` a row of ``vector_files``), with its parameters;
    ``files`` is the condition on a chunk ``c`` that its file matches (empty without a filter)."""

    def __init__(self, filters: Filter | None) -> None:
        self.params: dict[str, Any] = {}
        self.files = "" if filters is None else FILE_MATCHES.format(filter=self._filter(filters))

    def _filter(self, filters: Filter) -> str:
        if isinstance(filters, Compound):
            joiner = " AND " if filters.op == "and" else " OR "
            return "(" + joiner.join(self._filter(part) for part in filters.filters) + ")"
        return self._comparison(filters)

    def _comparison(self, comparison: Comparison) -> str:
        key = f"CAST(:{self._param(comparison.key)} AS text)"
        missing = f"(f.attributes -> {key}) IS NULL"
        if isinstance(comparison.value, tuple):
            negated = comparison.op == "nin"
            members = " OR ".join(
                f"({self._typed(key, kind)} {'NOT IN' if negated else 'IN'} "
                f"({', '.join(self._value(value, kind) for value in values)}))"
                for kind, values in by_kind(comparison.value).items()
            )
            return f"({missing} OR {members})" if negated else f"({members})"
        kind = value_kind(comparison.value)
        matched = (
            f"({self._typed(key, kind)} {OPERATORS[comparison.op]} {self._value(comparison.value, kind)})"
        )
        return f"({missing} OR {matched})" if comparison.op == "ne" else matched

    @staticmethod
    def _typed(key: str, kind: type) -> str:
        """The key's value as SQL of ``kind``, NULL (so every comparison false) if it is of another."""
        value = f"CAST(f.attributes ->> {key} AS {SQL_TYPES[kind]})"
        typed = f"(CASE WHEN jsonb_typeof(f.attributes -> {key}) = '{JSON_TYPES[kind]}' THEN {value} END)"
        return f'{typed} COLLATE "C"' if kind is str else typed

    def _value(self, value: Scalar, kind: type) -> str:
        name = self._param(float(value) if kind is float else value)
        return f"CAST(:{name} AS {SQL_TYPES[kind]})"

    def _param(self, value: Scalar) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return name
