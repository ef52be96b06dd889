"""Job queue benchmark: claim + finish throughput of the job rows (``adapters/sql/jobs.py``) with 4
concurrent workers in one process, and the same through the ``JobRunner`` (4 workers, a handler that does
nothing, so only the queue counts), on SQLite and on PostgreSQL.

Each backend gets a fresh database (SQLite in a temp dir; PostgreSQL on the test suite's server,
``tests/_services.py``'s ``postgres_server()``, dropped afterwards). ``--jobs`` are enqueued first,
then drained.

Run by hand: .venv/bin/python bench/jobs_bench.py [--jobs 2000] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO / "tests"))  # PostgreSQL databases as the test suite makes them
from _services import postgres_database  # noqa: E402
from cairn.compose import composed  # noqa: E402
from cairn.core.jobs import JobRunner, Lease, new_job_id  # noqa: E402
from cairn.core.ports.jobs import JobRows  # noqa: E402
from cairn.core.records import JobRecord, JobStatus  # noqa: E402
from cairn.settings import Settings  # noqa: E402

WORKERS = 4
LEASE_SECONDS = 60.0


def queued(kind: str) -> JobRecord:
    now = time.time()
    return JobRecord(new_job_id(now), "bench", kind, {"n": 1}, JobStatus.QUEUED, 0, 3, now, now)


async def rows_rate(rows: JobRows, jobs: int) -> float:
    """Jobs per second claimed and finished by ``WORKERS`` loops straight on the rows."""
    for _ in range(jobs):
        await rows.enqueue(queued("rows"))

    async def worker(name: str) -> None:
        while (job := await rows.claim(["rows"], name, LEASE_SECONDS, time.time())) is not None:
            await rows.finish(job.id, name, None, time.time())

    started = time.perf_counter()
    await asyncio.gather(*(worker(f"w{n}") for n in range(WORKERS)))
    return jobs / (time.perf_counter() - started)


async def runner_rate(rows: JobRows, jobs: int) -> float:
    """Jobs per second through a ``JobRunner`` of ``WORKERS`` workers, from the first claim to the last
    finish."""
    runner = JobRunner(rows, workers=WORKERS, lease_seconds=LEASE_SECONDS, max_attempts=3)
    done = asyncio.Event()
    finished = 0

    async def handler(job: JobRecord, lease: Lease) -> None:
        nonlocal finished
        finished += 1
        if finished == jobs:
            done.set()

    runner.register("runner", handler)
    for _ in range(jobs):
        await runner.enqueue("bench", "runner", {"n": 1})
    started = time.perf_counter()
    runner.start()
    await done.wait()
    await runner.close()  # lets the last handlers' finishes be written
    return jobs / (time.perf_counter() - started)


@contextlib.contextmanager
def database(backend: str) -> Iterator[str]:
    if backend == "postgres":
        with postgres_database("cairn_bench_") as url:
            yield url
        return
    with tempfile.TemporaryDirectory() as directory:
        yield f"sqlite:///{directory}/cairn.db"


async def measure(url: str, jobs: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as directory:
        settings = Settings(
            data_dir=Path(directory), database_url=url, rate_limits=False, embedded_models=False
        )
        async with composed(settings) as composition:
            return await rows_rate(composition.job_rows, jobs), await runner_rate(composition.job_rows, jobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    print(f"{'backend':10} {'rows claim+finish jobs/s':>26} {'runner jobs/s':>15}   ({WORKERS} workers)")
    for backend in args.backends.split(","):
        with database(backend) as url:
            rows, runner = asyncio.run(measure(url, args.jobs))
        print(f"{backend:10} {rows:26.0f} {runner:15.0f}")


if __name__ == "__main__":
    main()
