"""Job rows: durable background work that any worker of any process or replica may claim. Used by
``core.jobs`` (the runner); implemented by ``adapters.sql.jobs``.

A worker holds a running job by a lease: its name on the row and a time (``run_at``) until which
nobody else may claim it. It renews the lease while it works; a worker that stops renewing (it crashed,
hung, or was shut down) loses the job to the next claimer once the lease ends, and that claim counts
another attempt. Every write by a worker names it, and is refused once another worker has claimed the
job, so a worker that lost its lease can never overwrite what the new holder does.

Statuses: ``queued`` -> ``running`` -> ``succeeded`` | ``failed`` | ``cancelled``, or back to ``queued``
for a retry; a queued job that is cancelled ends at once.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Protocol

from ..records import JobRecord


class JobRows(Protocol):
    async def enqueue(self, job: JobRecord) -> JobRecord:
        """Insert a queued job and return it. If a job with its id exists, return that job unchanged
        instead (an id chosen by the caller makes enqueueing idempotent); ``Conflict`` if that job is
        another tenant's."""

    async def claim(
        self, kinds: Collection[str], worker: str, lease_seconds: float, now: float
    ) -> JobRecord | None:
        """Take the job of one of ``kinds`` that has been claimable longest (queued and due, or running
        with an ended lease), atomically: two claimers, in one process or in many, never take the same
        job. It becomes ``running`` under ``worker`` until ``now + lease_seconds``, with one more
        attempt. None when no such job is claimable."""

    async def renew(self, job_id: str, worker: str, lease_seconds: float, now: float) -> JobRecord | None:
        """Extend ``worker``'s lease to ``now + lease_seconds`` and return the job, whose
        ``cancel_requested`` says whether to stop. None if ``worker`` no longer holds the job (another
        worker claimed it, or it ended): the worker must stop at once and write nothing more."""

    async def finish(self, job_id: str, worker: str, result: dict[str, Any] | None, now: float) -> bool:
        """The job succeeded with ``result``. False, and nothing written, unless ``worker`` holds it."""

    async def fail(
        self, job_id: str, worker: str, error: dict[str, str], now: float, *, retry_at: float | None
    ) -> bool:
        """Record ``error``: the job is queued again, due at ``retry_at``, or, when that is None, it
        failed for good. False, and nothing written, unless ``worker`` holds it."""

    async def confirm_cancel(self, job_id: str, worker: str, now: float) -> bool:
        """The running job stopped on a cancel request: it is cancelled. False, and nothing written,
        unless ``worker`` holds it."""

    async def request_cancel(self, tenant: str, job_id: str, now: float) -> JobRecord | None:
        """Cancel the tenant's job: a queued one is cancelled at once, a running one is asked to stop
        (its worker sees ``cancel_requested`` when it next renews the lease), an ended one stays as it
        is. The job as it is now; None if the tenant has no such job."""

    async def get(self, tenant: str, job_id: str) -> JobRecord | None: ...
