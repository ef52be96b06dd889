"""Vector index benchmark on SQLite (``adapters/vectors_sqlite.py``, D30) and on PostgreSQL with pgvector
(``adapters/vectors_pg.py``, D31; a fresh database on the test suite's server, ``tests/_services.py``'s
``postgres_server()``, dropped afterwards): insert rate, ``nearest`` p50/p99
and recall@10 against an exact numpy search, with and without a filter, a small store beside the large
one, ``keyword`` p50, and the process's peak RSS.

Vectors are a normalised Gaussian mixture (``--clusters`` centres, noise 0.6 of a centre's scale per
dimension), queries fresh draws of the same mixture: real embeddings are clustered, and neighbours among
the members of one cluster are what a search has to tell apart. Chunks go in as files of 500.

Run by hand: .venv/bin/python bench/vector_bench.py [--chunks 10000,100000] [--queries 200]
[--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO / "tests"))  # PostgreSQL databases as the test suite makes them
from _services import postgres_database  # noqa: E402
from cairn.adapters.sql.engine import SqlDatabase  # noqa: E402
from cairn.adapters.vectors_pg import PgVectorIndex  # noqa: E402
from cairn.adapters.vectors_sqlite import SqliteVectorIndex  # noqa: E402
from cairn.core.ports.vectors import Comparison, IndexedChunk, VectorIndex  # noqa: E402

DIM = 384
FILE_CHUNKS = 500
VOCABULARY = 20_000  # words drawn by Zipf's law, as in text: a few common, most rare


def mixture(count: int, clusters: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, DIM))
    points = centres[rng.integers(0, clusters, count)] + rng.normal(size=(count, DIM)) * 0.6
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def words(rng: np.random.Generator, count: int) -> str:
    return " ".join(f"w{rank}" for rank in rng.zipf(1.1, count) % VOCABULARY)


def ms(samples: list[float]) -> str:
    return f"p50 {np.median(samples) * 1000:6.2f} ms  p99 {np.percentile(samples, 99) * 1000:6.2f} ms"


async def run(chunks: int, queries: int, clusters: int, url: str) -> None:
    database = SqlDatabase(url)
    await database.migrate()
    index: VectorIndex = (
        SqliteVectorIndex(database) if database.dialect == "sqlite" else PgVectorIndex(database)
    )
    points, asked = np.split(mixture(chunks + queries, clusters, seed=chunks), [chunks])
    rng = np.random.default_rng(1)
    await index.create_store("vs_large", DIM)
    started = time.perf_counter()
    for file, first in enumerate(range(0, chunks, FILE_CHUNKS)):
        rows = [
            IndexedChunk(i - first, words(rng, 40) + f" chunk{i}", points[i].tolist())
            for i in range(first, min(chunks, first + FILE_CHUNKS))
        ]
        await index.put_file("vs_large", f"file-{file}", {"file": file, "half": file % 2}, rows)
    insert = chunks / (time.perf_counter() - started)
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
        exact[only_half] = [set(row.tolist()) for row in np.argsort(-scores, axis=1)[:, :10]]

    async def measure(store: str, *, only_half: bool = False) -> tuple[list[float], float]:
        times, found = [], 0
        filters = Comparison("half", "eq", 1) if only_half else None
        for query, answer in zip(asked, exact[only_half], strict=True):
            begun = time.perf_counter()
            hits = await index.nearest(store, query.tolist(), limit=10, filters=filters)
            times.append(time.perf_counter() - begun)
            found += len(answer & {int(hit.text.rsplit("chunk", 1)[1]) for hit in hits})
        return times, found / (10 * len(asked))

    load = os.getloadavg()[0]
    times, recall = await measure("vs_large")
    print(f"{index.provider_type}")
    print(f"{chunks:>7} chunks  insert {insert:7.0f} chunks/s  (load average {load:.1f})")
    print(f"  nearest            {ms(times)}  recall@10 {recall:.3f}")
    times, recall = await measure("vs_large", only_half=True)
    print(f"  nearest, filtered  {ms(times)}  recall@10 {recall:.3f}  (half the files match)")
    times, _ = await measure("vs_small")
    print(f"  small store beside {ms(times)}  (200 chunks)")
    keyword = []
    for _ in range(queries):
        query = words(rng, 4)
        begun = time.perf_counter()
        await index.keyword("vs_large", query, limit=10)
        keyword.append(time.perf_counter() - begun)
    print(f"  keyword            {ms(keyword)}  (4 words, Zipf-distributed like the text)")
    print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    await database.close()


@contextlib.contextmanager
def database_url(backend: str) -> Iterator[str]:
    if backend == "postgres":
        with postgres_database("cairn_bench_") as url:
            yield url
    else:
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{Path(directory) / 'vectors.db'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--clusters", type=int, default=200)
    parser.add_argument("--backends", default="sqlite")
    args = parser.parse_args()
    for backend in args.backends.split(","):
        for chunks in (int(n) for n in args.chunks.split(",")):
            with database_url(backend) as url:
                asyncio.run(run(chunks, args.queries, args.clusters, url))


if __name__ == "__main__":
    main()
