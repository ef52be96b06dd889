"""The job runner (``core/jobs.py``) on real job rows, SQLite and PostgreSQL: jobs run, fail and retry,
stop when cancelled or when their lease is taken over, survive a restart, and are shared by two runners
on one database without running twice. Leases are a fraction of a second so that all of it is quick."""

from __future__ import annotations

import asyncio
import collections
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from cairn.compose import composed
from cairn.core.errors import InvalidInput
from cairn.core.jobs import ABANDONED, INTERNAL_ERROR, JobRunner, Json, Lease, StopReason
from cairn.core.ports.jobs import JobRows
from cairn.core.records import JobRecord, JobStatus
from conftest import backend_settings

if TYPE_CHECKING:
    from conftest import Backend

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.parametrize(
        "backend", ["sqlite+local", "postgres+local"], ids=["sqlite", "postgres"], indirect=True
    ),
]

LEASE = 0.6
ENDED = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}

MakeRunner = Callable[..., JobRunner]


@pytest.fixture
async def make_runner(job_rows: JobRows) -> AsyncIterator[MakeRunner]:
    """Runners on the test's job rows (or others), closed at the end; short leases and pauses."""
    runners: list[JobRunner] = []

    def make(rows: JobRows = job_rows, **options: Any) -> JobRunner:
        settings = {"workers": 2, "lease_seconds": LEASE, "max_attempts": 3, "idle_poll": (0.05, 0.2)}
        runner = JobRunner(rows, **{**settings, "retry_seconds": 0.05, "close_timeout": 0.2, **options})
        runners.append(runner)
        return runner

    yield make
    for runner in runners:
        await runner.close()


async def ended(runner: JobRunner, job: JobRecord, timeout: float = 5.0) -> JobRecord:
    deadline = time.monotonic() + timeout
    while True:
        found = await runner.get(job.tenant, job.id)
        assert found is not None
        if found.status in ENDED:
            return found
        assert time.monotonic() < deadline, f"{job.id} still {found.status}"
        await asyncio.sleep(0.02)


async def test_a_job_runs_at_once_when_enqueued_and_keeps_its_result(make_runner: MakeRunner) -> None:
    runner = make_runner(idle_poll=(10.0, 10.0))  # only the wake-up of the enqueue can start it soon

    async def double(job: JobRecord, lease: Lease) -> Json:
        return {"doubled": job.payload["n"] * 2, "worker": lease.worker}

    runner.register("double", double)
    runner.start()
    await asyncio.sleep(0.1)  # every worker has found nothing and waits
    started = time.monotonic()
    job = await runner.enqueue("alice", "double", {"n": 21})
    done = await ended(runner, job)
    assert time.monotonic() - started < 2
    assert (done.status, done.attempts, done.tenant) == (JobStatus.SUCCEEDED, 1, "alice")
    assert done.result == {"doubled": 42, "worker": done.worker}
    assert done.worker is not None and done.worker.startswith(runner.name)
    assert await runner.get("bob", job.id) is None


class CountedClaims:
    """The job rows, counting claims (what a runner without handlers must never make)."""

    def __init__(self, rows: JobRows) -> None:
        self.rows = rows
        self.claims = 0

    async def claim(
        self, kinds: Collection[str], worker: str, lease_seconds: float, now: float
    ) -> JobRecord | None:
        self.claims += 1
        return await self.rows.claim(kinds, worker, lease_seconds, now)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rows, name)


async def test_a_runner_without_handlers_never_touches_the_database(
    make_runner: MakeRunner, job_rows: JobRows
) -> None:
    idle, busy = CountedClaims(job_rows), CountedClaims(job_rows)
    nothing_to_do = make_runner(idle)
    nothing_to_do.start()
    something_to_do = make_runner(busy)
    something_to_do.register("noop", noop)
    something_to_do.start()
    await asyncio.sleep(0.3)
    assert idle.claims == 0 and busy.claims > 0
    with pytest.raises(ValueError, match="no handler"):
        await nothing_to_do.enqueue("t", "noop", {})


async def noop(job: JobRecord, lease: Lease) -> None:
    return None


async def test_a_failing_handler_is_retried_then_fails_with_a_safe_message(make_runner: MakeRunner) -> None:
    runner = make_runner()
    calls: Counter[str] = Counter()
    heard: list[tuple[str, dict[str, str], JobStatus]] = []

    async def hear(job: JobRecord, error: dict[str, str]) -> None:
        now = await runner.get(job.tenant, job.id)
        assert now is not None
        heard.append((job.id, error, now.status))

    async def broken(job: JobRecord, lease: Lease) -> None:
        calls[job.id] += 1
        raise RuntimeError("cannot open /srv/secret/path")

    async def refused(job: JobRecord, lease: Lease) -> None:
        calls[job.id] += 1
        raise InvalidInput("The file is not a document.")

    runner.register("broken", broken, failed=hear)
    runner.register("refused", refused, failed=hear)
    runner.start()
    retried = await runner.enqueue("t", "broken", {})
    hopeless = await runner.enqueue("t", "refused", {})
    failed, refused_job = await ended(runner, retried), await ended(runner, hopeless)
    assert (failed.status, failed.attempts, calls[retried.id]) == (JobStatus.FAILED, 3, 3)
    assert failed.error == INTERNAL_ERROR and "secret" not in str(failed.error)
    # an error that says trying again cannot help ends the job at its first attempt
    assert (refused_job.status, refused_job.attempts, calls[hopeless.id]) == (JobStatus.FAILED, 1, 1)
    assert refused_job.error == {"code": "invalid_request", "message": "The file is not a document."}
    # the kind hears each failure for good once, before the row says so
    assert sorted(heard) == sorted(
        [(retried.id, INTERNAL_ERROR, JobStatus.RUNNING), (hopeless.id, refused_job.error, JobStatus.RUNNING)]
    )


async def test_a_job_whose_every_attempt_stopped_is_abandoned_and_its_kind_hears_it(
    make_runner: MakeRunner, job_rows: JobRows
) -> None:
    runner = make_runner(max_attempts=1)
    ran: list[str] = []
    heard: list[tuple[str, dict[str, str]]] = []

    async def never(job: JobRecord, lease: Lease) -> None:
        ran.append(job.id)

    async def hear(job: JobRecord, error: dict[str, str]) -> None:
        heard.append((job.id, error))

    runner.register("ingest", never, failed=hear)
    job = await runner.enqueue("t", "ingest", {})
    crashed = await job_rows.claim(["ingest"], "a worker that crashed", 0, time.time())
    assert crashed is not None and (crashed.id, crashed.attempts) == (job.id, 1)
    runner.start()
    done = await ended(runner, job)
    assert (done.status, done.attempts, done.error) == (JobStatus.FAILED, 2, ABANDONED)
    assert ran == [] and heard == [(job.id, ABANDONED)]


async def test_a_cancel_stops_a_running_handler_here_or_from_elsewhere(
    make_runner: MakeRunner, job_rows: JobRows
) -> None:
    runner = make_runner()
    started: collections.defaultdict[str, asyncio.Event] = collections.defaultdict(asyncio.Event)
    stopped: dict[str, StopReason | None] = {}

    async def endless(job: JobRecord, lease: Lease) -> None:
        started[job.id].set()  # the runner may take a job before its enqueue returns here
        try:
            await asyncio.sleep(60)
        finally:
            stopped[job.id] = lease.stopping

    runner.register("endless", endless)
    runner.start()
    here, elsewhere = await runner.enqueue("t", "endless", {}), await runner.enqueue("t", "endless", {})
    await asyncio.wait_for(asyncio.gather(started[here.id].wait(), started[elsewhere.id].wait()), 5)

    asked = time.monotonic()
    await runner.cancel("t", here.id)  # runs in this process: stops at once
    # as another replica cancels: the heartbeat (every LEASE / 3) sees it
    await job_rows.request_cancel("t", elsewhere.id, time.time())
    for job in (here, elsewhere):
        assert (await ended(runner, job)).status is JobStatus.CANCELLED
    assert time.monotonic() - asked < LEASE
    assert stopped == {here.id: StopReason.CANCEL_REQUESTED, elsewhere.id: StopReason.CANCEL_REQUESTED}
    assert await runner.cancel("t", "job-unknown") is None


async def test_a_worker_whose_lease_was_taken_over_stops_and_writes_nothing(
    make_runner: MakeRunner, job_rows: JobRows
) -> None:
    runner = make_runner()
    started, stopped = asyncio.Event(), asyncio.Event()
    seen: list[StopReason | None] = []

    async def slow(job: JobRecord, lease: Lease) -> Json:
        started.set()
        try:
            await asyncio.sleep(60)
        finally:
            seen.append(lease.stopping)
            stopped.set()
        return {}

    runner.register("slow", slow)
    runner.start()
    job = await runner.enqueue("t", "slow", {})
    await asyncio.wait_for(started.wait(), 5)
    # a replica whose clock is a lease ahead finds the lease ended and takes the job over
    taken = await job_rows.claim(["slow"], "other replica", 60, time.time() + LEASE)
    assert taken is not None and taken.attempts == 2
    await asyncio.wait_for(stopped.wait(), 5)
    assert seen == [StopReason.LEASE_LOST]
    await asyncio.sleep(0.1)
    now = await job_rows.get("t", job.id)
    assert now is not None and (now.status, now.worker) == (JobStatus.RUNNING, "other replica")


async def test_after_a_restart_another_runner_resumes_the_job_once_its_lease_ends(
    make_runner: MakeRunner,
) -> None:
    first = make_runner()
    started = asyncio.Event()
    seen: list[StopReason | None] = []

    async def hangs(job: JobRecord, lease: Lease) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        finally:
            seen.append(lease.stopping)

    first.register("ingest", hangs)
    first.start()
    job = await first.enqueue("t", "ingest", {"file": "file-1"})
    await asyncio.wait_for(started.wait(), 5)
    await first.close()  # the handler does not finish within close_timeout: it is cancelled
    assert seen == [StopReason.SHUTDOWN]
    left = await first.get("t", job.id)
    assert left is not None and left.status is JobStatus.RUNNING  # its lease is left to end

    second = make_runner()

    async def finishes(job: JobRecord, lease: Lease) -> Json:
        return {"file": job.payload["file"]}

    second.register("ingest", finishes)
    second.start()
    done = await ended(second, job)
    assert (done.status, done.attempts, done.result) == (JobStatus.SUCCEEDED, 2, {"file": "file-1"})
    assert done.worker is not None and done.worker.startswith(second.name)


async def test_two_runners_on_one_database_share_the_work_and_run_each_job_once(
    make_runner: MakeRunner, tmp_path: Path, backend: Backend
) -> None:
    ran: list[tuple[str, str]] = []

    async def work(job: JobRecord, lease: Lease) -> None:
        ran.append((job.id, lease.worker.rsplit("/", 1)[0]))
        await asyncio.sleep(0.02)

    async with composed(backend_settings(tmp_path, backend), migrate=False) as replica:
        runners = [make_runner(workers=3), make_runner(replica.job_rows, workers=3)]
        for runner in runners:
            runner.register("work", work)
        jobs = [await runners[n % 2].enqueue("t", "work", {"n": n}) for n in range(40)]
        for runner in runners:
            runner.start()
        for job in jobs:
            assert (await ended(runners[0], job)).status is JobStatus.SUCCEEDED
        for runner in runners:
            await runner.close()
    assert Counter(job_id for job_id, _ in ran) == Counter(job.id for job in jobs)
    assert {name for _, name in ran} == {runner.name for runner in runners}
