"""Vector index benchmark on SQLite (``adapters/vectors_sqlite.py``, D30) and on PostgreSQL with pgvector
(``adapters/vectors_pg.py``, D31; a fresh database on the test suite's server, ``tests/_services.py``'s
``postgres_server()``, dropped afterwards): insert rate, ``nearest`` p50/p99
and recall@10 against an exact numpy search, with and without a filter, a small store beside the large
one, ``keyword`` p50, and the process's peak RSS.

Vectors are a normalised Gaussian mixture (``--clusters`` centres, noise 0.6 of a centre's scale per
dimension), queries fresh draws of the same mixture: real embeddings are clustered, and neighbours among
the members of one cluster are what a search has to tell apart. Chunks go in as files of 500. By default
a cluster spreads over all 384 directions, the hardest case for a graph index, whose neighbours grow
alike as a store grows; ``--intrinsic N`` spreads each over N random directions of its own, as real
embeddings do (their local intrinsic dimension is far below their width: D31 has the figures).

``--bulk`` (PostgreSQL only) loads the large store's rows by a binary ``COPY`` into the adapter's tables
instead of ``put_file``, with its HNSW index dropped first and built again after by ``create_store`` of
the small store (the adapter's own statement; its time is printed): a million chunks through
``put_file`` keep the index up row by row, hours on two cores. The ``--maintenance-memory`` the build
may use is set on the bench's database, as a deployment loading that much would.

Run by hand: .venv/bin/python bench/vector_bench.py [--chunks 10000,100000] [--queries 200]
[--backends sqlite,postgres] [--bulk] [--ef-search 40,100] [--ef-construction 256]
[--keyword-queries 20] [--intrinsic 16] [--shared-buffers 4GB]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import struct
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO / "tests"))  # PostgreSQL databases as the test suite makes them
from _services import postgres_database, start_embedded_postgres  # noqa: E402
from cairn.adapters import vectors_pg  # noqa: E402
from cairn.adapters.sql.engine import SqlDatabase  # noqa: E402
from cairn.adapters.vectors_pg import PgVectorIndex  # noqa: E402
from cairn.adapters.vectors_sqlite import SqliteVectorIndex  # noqa: E402
from cairn.core.ports.vectors import Comparison, IndexedChunk, VectorIndex  # noqa: E402

DIM = 384
FILE_CHUNKS = 500
VOCABULARY = 20_000  # words drawn by Zipf's law, as in text: a few common, most rare


def mixture(count: int, clusters: int, seed: int, intrinsic: int) -> np.ndarray:
    """``count`` points of the mixture; each cluster spreads over ``intrinsic`` random directions of its
    own (all of them at ``DIM``), with the same spread in all: a centre's scale times 0.6 per dimension
    at ``DIM``, so the same distance from the centre on average."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, DIM))
    member = rng.integers(0, clusters, count)
    points = centres[member]
    if intrinsic >= DIM:
        points += rng.normal(size=(count, DIM)) * 0.6
    else:
        scale = 0.6 * np.sqrt(DIM / intrinsic)
        for cluster in range(clusters):
            rows = np.flatnonzero(member == cluster)
            directions = np.linalg.qr(rng.normal(size=(DIM, intrinsic)))[0]
            points[rows] += rng.normal(size=(len(rows), intrinsic)) * scale @ directions.T
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def words(rng: np.random.Generator, count: int) -> str:
    return " ".join(f"w{rank}" for rank in rng.zipf(1.1, count) % VOCABULARY)


def ms(samples: list[float]) -> str:
    return f"p50 {np.median(samples) * 1000:6.2f} ms  p99 {np.percentile(samples, 99) * 1000:6.2f} ms"


async def insert(index: VectorIndex, points: np.ndarray, rng: np.random.Generator) -> float:
    """Put the large store's chunks through the adapter; chunks per second."""
    started = time.perf_counter()
    for file, first in enumerate(range(0, len(points), FILE_CHUNKS)):
        rows = [
            IndexedChunk(i - first, words(rng, 40) + f" chunk{i}", points[i].tolist())
            for i in range(first, min(len(points), first + FILE_CHUNKS))
        ]
        await index.put_file("vs_large", f"file-{file}", {"file": file, "half": file % 2}, rows)
    return len(points) / (time.perf_counter() - started)


def _vector(point: np.ndarray) -> bytes:
    """pgvector's binary form: the dimension, a reserved zero, big-endian float4s."""
    return struct.pack(">HH", len(point), 0) + point.astype(">f4").tobytes()


async def bulk_load(url: str, points: np.ndarray, rng: np.random.Generator) -> float:
    """COPY the large store's files and chunks with its dimension's HNSW index dropped; seconds."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.set_type_codec("vector", encoder=_vector, decoder=bytes, format="binary")
        await conn.execute(f"DROP INDEX ix_vector_chunks_hnsw_{DIM}")
        started = time.perf_counter()
        files = range(0, len(points), FILE_CHUNKS)
        await conn.copy_records_to_table(
            "vector_files",
            columns=["store_id", "file_id", "attributes"],
            records=[
                ("vs_large", f"file-{file}", f'{{"file": {file}, "half": {file % 2}}}')
                for file in range(len(files))
            ],
        )
        for file, first in enumerate(files):
            await conn.copy_records_to_table(
                "vector_chunks",
                columns=["store_id", "file_id", "idx", "dimension", "text", "embedding"],
                records=[
                    ("vs_large", f"file-{file}", i - first, DIM, words(rng, 40) + f" chunk{i}", points[i])
                    for i in range(first, min(len(points), first + FILE_CHUNKS))
                ],
            )
        await conn.execute("ANALYZE vector_chunks")
        return time.perf_counter() - started
    finally:
        await conn.close()


async def run(chunks: int, url: str, args: argparse.Namespace) -> None:
    queries, bulk, ef_searches = args.queries, args.bulk and url.startswith("postgresql"), args.ef_search
    database = SqlDatabase(url)
    await database.migrate()
    index: VectorIndex = (
        SqliteVectorIndex(database) if database.dialect == "sqlite" else PgVectorIndex(database)
    )
    points, asked = np.split(
        mixture(chunks + queries, args.clusters, seed=chunks, intrinsic=args.intrinsic), [chunks]
    )
    rng = np.random.default_rng(1)
    await index.create_store("vs_large", DIM)
    if bulk:
        loaded = await bulk_load(url, points, rng)
        started = time.perf_counter()
        await index.create_store("vs_small", DIM)  # builds the dimension's index again
        built = time.perf_counter() - started
        loading = (
            f"bulk COPY {chunks / loaded:7.0f} chunks/s, HNSW index built in {built:.0f} s"
            f" (ef_construction {vectors_pg.EF_CONSTRUCTION})"
        )
    else:
        loading = f"insert {await insert(index, points, rng):7.0f} chunks/s"
        await index.create_store("vs_small", DIM)
    small = [IndexedChunk(i, f"small chunk{i}", points[i].tolist()) for i in range(200)]
    await index.put_file("vs_small", "file-0", {}, small)
    await index.nearest("vs_large", asked[0].tolist(), limit=10)  # the process reads the codes once

    half = np.arange(len(points)) // FILE_CHUNKS % 2 == 1
    exact = {}
    for only_half in (False, True):  # computed first, so that only searches run between the clocks
        scores = asked @ points.T
        if only_half:
            scores[:, ~half] = -2
        exact[only_half] = [set(row.tolist()) for row in np.argpartition(-scores, 10, axis=1)[:, :10]]

    async def measure(store: str, *, only_half: bool = False) -> tuple[list[float], str]:
        """Times, and recall@10 with the queries that found none of their 10 (lost in another cluster)."""
        times, found = [], []
        filters = Comparison("half", "eq", 1) if only_half else None
        for query, answer in zip(asked, exact[only_half], strict=True):
            begun = time.perf_counter()
            hits = await index.nearest(store, query.tolist(), limit=10, filters=filters)
            times.append(time.perf_counter() - begun)
            found.append(len(answer & {int(hit.text.rsplit("chunk", 1)[1]) for hit in hits}))
        return times, f"recall@10 {sum(found) / (10 * len(asked)):.3f} ({found.count(0)} queries found none)"

    load = os.getloadavg()[0]
    print(f"{index.provider_type}")
    print(f"{chunks:>7} chunks  {loading}  (load average {load:.1f})")
    for ef_search in ef_searches:
        if len(ef_searches) > 1:
            vectors_pg.MIN_EF_SEARCH = ef_search
            print(f"  hnsw.ef_search {ef_search}")
        times, recall = await measure("vs_large")
        print(f"  nearest            {ms(times)}  {recall}")
        times, recall = await measure("vs_large", only_half=True)
        print(f"  nearest, filtered  {ms(times)}  {recall}  (half the files match)")
    times, _ = await measure("vs_small")
    print(f"  small store beside {ms(times)}  (200 chunks)")
    keyword = []
    for _ in range(queries if args.keyword_queries is None else args.keyword_queries):
        query = words(rng, 4)
        begun = time.perf_counter()
        await index.keyword("vs_large", query, limit=10)
        keyword.append(time.perf_counter() - begun)
    print(f"  keyword            {ms(keyword)}  (4 words, Zipf-distributed like the text)")
    print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    await database.close()


@contextlib.contextmanager
def database_url(backend: str, args: argparse.Namespace) -> Iterator[str]:
    if backend == "postgres" and args.shared_buffers:
        server = start_embedded_postgres({"shared_buffers": args.shared_buffers})
        try:
            with postgres_database("cairn_bench_", server.url) as url:
                asyncio.run(_set_maintenance_memory(url, args.maintenance_memory))
                yield url
        finally:
            server.stop()
    elif backend == "postgres":
        with postgres_database("cairn_bench_") as url:
            asyncio.run(_set_maintenance_memory(url, args.maintenance_memory))
            yield url
    else:
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{Path(directory) / 'vectors.db'}"


async def _set_maintenance_memory(url: str, memory: str) -> None:
    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(f"ALTER DATABASE \"{name}\" SET maintenance_work_mem = '{memory}'")
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--clusters", type=int, default=200)
    parser.add_argument("--backends", default="sqlite")
    parser.add_argument("--keyword-queries", type=int, help="default: --queries")
    parser.add_argument("--bulk", action="store_true", help="PostgreSQL: load by COPY, index after")
    parser.add_argument("--maintenance-memory", default="8GB", help="PostgreSQL: for the index build")
    parser.add_argument("--ef-search", default="", help="PostgreSQL: hnsw.ef_search floors to compare")
    parser.add_argument(
        "--ef-construction", type=int, help=f"PostgreSQL: the index's (default {vectors_pg.EF_CONSTRUCTION})"
    )
    parser.add_argument(
        "--shared-buffers", help="PostgreSQL: a server of its own with this shared_buffers (e.g. 4GB)"
    )
    parser.add_argument("--intrinsic", type=int, default=DIM, help="directions a cluster spreads over")
    args = parser.parse_args()
    args.ef_search = [int(n) for n in args.ef_search.split(",") if n] or [vectors_pg.MIN_EF_SEARCH]
    if args.ef_construction:
        vectors_pg.EF_CONSTRUCTION = args.ef_construction
    for backend in args.backends.split(","):
        for chunks in (int(n) for n in args.chunks.split(",")):
            with database_url(backend, args) as url:
                asyncio.run(run(chunks, url, args))


if __name__ == "__main__":
    main()
