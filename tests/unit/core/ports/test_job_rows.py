"""The ``JobRows`` contract (``core/ports/jobs.py``), on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest
from _adapters import on

from cairn.compose import composed
from cairn.core.errors import Conflict
from cairn.core.ports.jobs import JobRows
from cairn.core.records import JobRecord, JobStatus
from conftest import backend_settings

if TYPE_CHECKING:
    from conftest import Backend

pytestmark = [pytest.mark.anyio, on("sqlite", "postgres")]

NOW = 1_800_000_000.0
LEASE = 10.0


def job(tenant: str = "t", kind: str = "ingest", *, run_at: float = NOW, **payload: object) -> JobRecord:
    return JobRecord(
        id="job-" + secrets.token_hex(8),
        tenant=tenant,
        kind=kind,
        payload=dict(payload),
        status=JobStatus.QUEUED,
        attempts=0,
        max_attempts=3,
        run_at=run_at,
        created_at=NOW,
    )


@pytest.fixture
async def replica(tmp_path: Path, backend: Backend, job_rows: JobRows) -> AsyncIterator[JobRows]:
    """The job rows of a second replica: another composition (its own connections, and on SQLite its
    own writer lock) on the same database."""
    async with composed(backend_settings(tmp_path, backend), migrate=False) as other:
        yield other.job_rows


async def test_a_job_is_kept_for_its_tenant_and_an_id_names_one_job(job_rows: JobRows) -> None:
    queued = job("alice", file_id="file-1", nested={"chunks": [1, 2]})
    assert await job_rows.enqueue(queued) == queued
    assert await job_rows.get("alice", queued.id) == queued
    assert await job_rows.get("bob", queued.id) is None
    # enqueueing the same id again is idempotent: the first job stands
    assert await job_rows.enqueue(dataclasses.replace(queued, payload={"file_id": "file-2"})) == queued
    with pytest.raises(Conflict):
        await job_rows.enqueue(dataclasses.replace(queued, tenant="bob"))
    assert await job_rows.get("alice", queued.id) == queued


async def test_concurrent_claimers_in_two_replicas_take_each_job_once(
    job_rows: JobRows, replica: JobRows
) -> None:
    queued = [job(n=n) for n in range(50)]
    for each in queued:
        await job_rows.enqueue(each)
    claimed: list[tuple[str, str]] = []

    async def claimer(rows: JobRows, worker: str) -> None:
        while (taken := await rows.claim(["ingest"], worker, LEASE, NOW)) is not None:
            assert taken.worker == worker and taken.status is JobStatus.RUNNING and taken.attempts == 1
            claimed.append((taken.id, worker))

    async with anyio.create_task_group() as tasks:
        for n in range(8):
            tasks.start_soon(claimer, (job_rows, replica)[n % 2], f"worker-{n}")
    assert Counter(job_id for job_id, _ in claimed) == Counter(each.id for each in queued)
    assert len({worker for _, worker in claimed}) > 1


async def test_a_claim_takes_the_longest_due_job_of_the_kinds_asked_for(job_rows: JobRows) -> None:
    later, other_kind, due, older = (
        job(run_at=NOW + 5),
        job(kind="respond", run_at=NOW - 9),
        job(run_at=NOW - 1),
        job(run_at=NOW - 2),
    )
    for each in (later, other_kind, due, older):
        await job_rows.enqueue(each)
    taken = [await job_rows.claim(["ingest"], "w", LEASE, NOW) for _ in range(3)]
    assert [t.id if t else None for t in taken] == [older.id, due.id, None]
    assert taken[0] is not None and taken[0].run_at == NOW + LEASE
    assert (await job_rows.claim(["ingest"], "w", LEASE, NOW + 5)).id == later.id  # type: ignore[union-attr]
    assert (await job_rows.claim(["respond", "x"], "w", LEASE, NOW)).id == other_kind.id  # type: ignore[union-attr]


async def test_a_job_whose_lease_ended_is_claimed_again_and_its_first_worker_is_refused(
    job_rows: JobRows,
) -> None:
    queued = job()
    await job_rows.enqueue(queued)
    assert await job_rows.claim(["ingest"], "first", LEASE, NOW) is not None
    assert await job_rows.claim(["ingest"], "second", LEASE, NOW + LEASE - 1) is None
    renewed = await job_rows.renew(queued.id, "first", LEASE, NOW + 5)  # the lease now ends at NOW+15
    assert renewed is not None and renewed.run_at == NOW + 5 + LEASE and not renewed.cancel_requested
    assert await job_rows.claim(["ingest"], "second", LEASE, NOW + LEASE + 1) is None

    again = await job_rows.claim(["ingest"], "second", LEASE, NOW + 5 + LEASE)
    assert again is not None and (again.worker, again.attempts) == ("second", 2)
    assert await job_rows.renew(queued.id, "first", LEASE, NOW + 16) is None
    assert await job_rows.finish(queued.id, "first", {"by": "first"}, NOW + 16) is False
    error = {"code": "internal_error", "message": "no"}
    assert await job_rows.fail(queued.id, "first", error, NOW + 16, retry_at=None) is False
    assert await job_rows.confirm_cancel(queued.id, "first", NOW + 16) is False

    assert await job_rows.finish(queued.id, "second", {"chunks": 3}, NOW + 17) is True
    done = await job_rows.get("t", queued.id)
    assert done is not None
    assert (done.status, done.result, done.ended_at, done.tenant) == (
        JobStatus.SUCCEEDED,
        {"chunks": 3},
        NOW + 17,
        "t",
    )
    assert await job_rows.claim(["ingest"], "third", LEASE, NOW + 100) is None  # ended jobs stay ended
    assert await job_rows.finish(queued.id, "second", None, NOW + 18) is False


async def test_a_failed_attempt_is_queued_again_until_it_fails_for_good(job_rows: JobRows) -> None:
    queued = job()
    await job_rows.enqueue(queued)
    await job_rows.claim(["ingest"], "w", LEASE, NOW)
    error = {"code": "unavailable", "message": "The model is unavailable."}
    assert await job_rows.fail(queued.id, "w", error, NOW + 1, retry_at=NOW + 4) is True
    retrying = await job_rows.get("t", queued.id)
    assert retrying is not None
    assert (retrying.status, retrying.error, retrying.run_at) == (JobStatus.QUEUED, error, NOW + 4)
    assert await job_rows.claim(["ingest"], "w", LEASE, NOW + 3) is None
    second = await job_rows.claim(["ingest"], "w", LEASE, NOW + 4)
    assert second is not None and second.attempts == 2
    assert await job_rows.fail(queued.id, "w", error, NOW + 5, retry_at=None) is True
    failed = await job_rows.get("t", queued.id)
    assert failed is not None
    assert (failed.status, failed.error, failed.ended_at) == (JobStatus.FAILED, error, NOW + 5)
    assert await job_rows.claim(["ingest"], "w", LEASE, NOW + 100) is None


async def test_a_queued_job_is_cancelled_at_once_and_a_running_one_is_asked_to_stop(
    job_rows: JobRows,
) -> None:
    queued, running = job(), job(run_at=NOW - 1)
    for each in (queued, running):
        await job_rows.enqueue(each)
    claimed = await job_rows.claim(["ingest"], "w", LEASE, NOW)
    assert claimed is not None and claimed.id == running.id

    assert await job_rows.request_cancel("bob", queued.id, NOW) is None  # another tenant's: untouched
    cancelled = await job_rows.request_cancel("t", queued.id, NOW + 1)
    assert cancelled is not None and (cancelled.status, cancelled.ended_at) == (JobStatus.CANCELLED, NOW + 1)
    assert await job_rows.claim(["ingest"], "w", LEASE, NOW + 2) is None

    asked = await job_rows.request_cancel("t", running.id, NOW + 2)
    assert asked is not None and (asked.status, asked.cancel_requested) == (JobStatus.RUNNING, True)
    renewed = await job_rows.renew(running.id, "w", LEASE, NOW + 3)
    assert renewed is not None and renewed.cancel_requested
    assert await job_rows.confirm_cancel(running.id, "w", NOW + 4) is True
    stopped = await job_rows.get("t", running.id)
    assert stopped is not None and (stopped.status, stopped.ended_at) == (JobStatus.CANCELLED, NOW + 4)
    # cancelling an ended job changes nothing
    assert await job_rows.request_cancel("t", running.id, NOW + 5) == stopped
