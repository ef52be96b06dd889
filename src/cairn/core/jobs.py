"""Durable background jobs: the ``JobRunner`` runs the handler registered for each kind of job on the jobs
that ``JobRows`` keeps, in ``workers`` concurrent loops per process, in every process and replica that
shares the database (docs/decisions.md, D29).

- With no handler registered, ``start`` starts nothing: the database is never polled.
- An idle worker polls with a growing pause (``idle_poll``), and an ``enqueue`` in this process wakes
  it at once; a worker that claims a job wakes another, since more may be due.
- A job runs under a lease that a heartbeat renews every third of its length. When the lease is lost
  (renewals failed for a whole lease, or another worker claimed the job) or a cancel is requested,
  the heartbeat cancels the handler's task and says why in ``Lease.stopping``. A handler therefore
  runs at least once, not exactly once: it must be safe to cancel at any ``await`` and to run again
  from the start. A handler that works in a thread should look at ``lease.stopping`` between steps.
- A handler that raises is retried with exponential backoff while attempts remain, unless its error
  says that trying again cannot help (``CairnError``s other than ``Unavailable`` and ``RateLimited``).
  The row keeps a message safe to show a client (a ``CairnError``'s own, or a generic one); the
  traceback goes to the log only.
- A job fails for good when its error says so, when its last attempt raises, or when it is abandoned:
  claimed once more than ``max_attempts`` allows, every attempt having stopped before it ended (a crash,
  a hang, a lost lease), so its handler is not run again. Then the kind's ``failed`` callback (given to
  ``register``) runs before the row is written, with the error the row keeps, so that what the job was
  to finish can end too. It runs at least once, again if the process dies before the row is written:
  it must be idempotent.
- ``close`` stops claiming, lets running handlers finish for up to ``close_timeout`` seconds, then
  cancels them. Their leases are left to end, and another worker (or this one after a restart) runs
  them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .errors import CairnError, RateLimited, Unavailable
from .ports.jobs import JobRows
from .records import JobRecord, JobStatus

log = logging.getLogger("cairn.jobs")

Json = dict[str, Any]

IDLE_POLL_SECONDS = (0.5, 5.0)
"""An idle worker's first pause between claims, and its longest."""
RETRY_SECONDS = 2.0
"""The pause before the first retry; it doubles with each further attempt, up to ``MAX_RETRY_SECONDS``."""
MAX_RETRY_SECONDS = 600.0
CLOSE_TIMEOUT_SECONDS = 10.0
INTERNAL_ERROR = {"code": CairnError.code, "message": "The job failed on an internal error."}
ABANDONED = {
    "code": CairnError.code,
    "message": "The job was abandoned: every attempt stopped before it ended.",
}


class StopReason(StrEnum):
    CANCEL_REQUESTED = "cancel requested"
    LEASE_LOST = "lease lost"
    SHUTDOWN = "shutdown"


@dataclass
class Lease:
    """A running job's hold, as its handler sees it."""

    job_id: str
    worker: str
    stopping: StopReason | None = None
    """Set when the runner stops the handler (it also cancels the handler's task)."""


Handler = Callable[[JobRecord, Lease], Coroutine[Any, Any, Json | None]]
"""Does a job's work and returns its result (JSON), kept on the job's row."""
Failed = Callable[[JobRecord, dict[str, str]], Coroutine[Any, Any, None]]
"""Hears that a job failed for good, and the error (``code``, ``message``) its row keeps."""


def new_job_id(now: float) -> str:
    """``job-`` + 12 hex digits of milliseconds + 20 random hex digits: ids sort by creation time."""
    return f"job-{int(now * 1000):012x}{secrets.token_hex(10)}"


def retryable(exc: BaseException) -> bool:
    """Whether trying the job again may help: not for a ``CairnError`` that says the input is at fault."""
    return not isinstance(exc, CairnError) or isinstance(exc, (Unavailable, RateLimited))


def _safe_error(exc: BaseException) -> dict[str, str]:
    if isinstance(exc, CairnError):
        return {"code": exc.code, "message": exc.message}
    return INTERNAL_ERROR


class JobRunner:
    def __init__(
        self,
        rows: JobRows,
        *,
        workers: int,
        lease_seconds: float,
        max_attempts: int,
        idle_poll: tuple[float, float] = IDLE_POLL_SECONDS,
        retry_seconds: float = RETRY_SECONDS,
        close_timeout: float = CLOSE_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._rows = rows
        self._workers = workers
        self._lease_seconds = lease_seconds
        self._max_attempts = max_attempts
        self._idle_poll = idle_poll
        self._retry_seconds = retry_seconds
        self._close_timeout = close_timeout
        self._clock = clock
        self._handlers: dict[str, Handler] = {}
        self._failed: dict[str, Failed] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._running: dict[str, tuple[Lease, asyncio.Task[Json | None]]] = {}
        self._wake = asyncio.Event()
        self._closing = False
        self.name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        """Names this runner's workers (``<name>/<n>``) on the rows they hold."""

    def register(self, kind: str, handler: Handler, *, failed: Failed | None = None) -> None:
        """Run ``handler`` for jobs of ``kind``, and ``failed`` when one fails for good. Every handler is
        registered before ``start``."""
        if self._tasks:
            raise RuntimeError("job handlers are registered before the runner starts")
        if kind in self._handlers:
            raise ValueError(f"a handler for job kind {kind!r} is already registered")
        self._handlers[kind] = handler
        if failed is not None:
            self._failed[kind] = failed

    def start(self) -> None:
        if self._handlers and not self._tasks:
            self._tasks = [
                asyncio.create_task(self._work(f"{self.name}/{n}"), name=f"job worker {n}")
                for n in range(self._workers)
            ]

    async def enqueue(
        self, tenant: str, kind: str, payload: Json, *, job_id: str | None = None, delay: float = 0.0
    ) -> JobRecord:
        """Queue a job, due in ``delay`` seconds. With ``job_id``, at most one job ever has that id: the
        existing one is returned (``Conflict`` if it is another tenant's)."""
        if kind not in self._handlers:
            raise ValueError(f"no handler is registered for job kind {kind!r}")
        now = self._clock()
        job = await self._rows.enqueue(
            JobRecord(
                id=job_id or new_job_id(now),
                tenant=tenant,
                kind=kind,
                payload=payload,
                status=JobStatus.QUEUED,
                attempts=0,
                max_attempts=self._max_attempts,
                run_at=now + delay,
                created_at=now,
            )
        )
        self._wake.set()
        return job

    async def cancel(self, tenant: str, job_id: str) -> JobRecord | None:
        """Cancel the tenant's job (``JobRows.request_cancel``). A job running in this process stops
        now; one running elsewhere stops at its worker's next heartbeat."""
        job = await self._rows.request_cancel(tenant, job_id, self._clock())
        if job is not None and job.status is JobStatus.RUNNING and job.id in self._running:
            self._stop(*self._running[job.id], StopReason.CANCEL_REQUESTED)
        return job

    async def get(self, tenant: str, job_id: str) -> JobRecord | None:
        return await self._rows.get(tenant, job_id)

    async def close(self, timeout: float | None = None) -> None:
        """Stop; running handlers get ``timeout`` seconds to finish (default: ``close_timeout``)."""
        self._closing = True
        self._wake.set()
        if not self._tasks:
            return
        grace = self._close_timeout if timeout is None else timeout
        _, pending = await asyncio.wait(self._tasks, timeout=grace)
        for lease, _handler in self._running.values():
            lease.stopping = StopReason.SHUTDOWN
        for task in pending:
            task.cancel()  # and with it the handler it awaits
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _work(self, worker: str) -> None:
        pause = self._idle_poll[0]
        while not self._closing:
            self._wake.clear()  # before the claim, so that an enqueue during it is not missed
            try:
                job = await self._rows.claim(self._handlers, worker, self._lease_seconds, self._clock())
            except Exception:
                log.exception("jobs.claim_failed worker=%s", worker)
                job, pause = None, self._idle_poll[1]
            if job is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), pause)
                pause = min(pause * 2, self._idle_poll[1])
                continue
            self._wake.set()
            pause = self._idle_poll[0]
            try:
                await self._run(job, worker)
            except Exception:  # the database failed us: the lease ends and the job runs again
                log.exception("jobs.settle_failed id=%s kind=%s", job.id, job.kind)

    async def _run(self, job: JobRecord, worker: str) -> None:
        if job.cancel_requested:  # asked to stop while its last worker was gone
            await self._rows.confirm_cancel(job.id, worker, self._clock())
            return
        if job.attempts > job.max_attempts:
            log.error("jobs.abandoned id=%s kind=%s attempts=%d", job.id, job.kind, job.max_attempts)
            await self._give_up(job, worker, ABANDONED)
            return
        lease = Lease(job.id, worker)
        handler = asyncio.create_task(self._handlers[job.kind](job, lease), name=f"job {job.id}")
        self._running[job.id] = (lease, handler)
        heartbeat = asyncio.create_task(self._heartbeat(lease, handler))
        try:
            try:
                result = await handler
            finally:
                heartbeat.cancel()
                del self._running[job.id]
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # this worker is being shut down
                raise
            await self._stopped(job, lease, exc)
            return
        except Exception as exc:
            await self._stopped(job, lease, exc)
            return
        if lease.stopping is StopReason.CANCEL_REQUESTED:
            await self._rows.confirm_cancel(job.id, worker, self._clock())
        elif not await self._rows.finish(job.id, worker, result, self._clock()):
            log.warning("jobs.lease_lost id=%s kind=%s worker=%s", job.id, job.kind, worker)

    async def _stopped(self, job: JobRecord, lease: Lease, exc: BaseException) -> None:
        """The handler did not return: it was stopped, or it failed."""
        if lease.stopping is StopReason.LEASE_LOST:
            log.warning("jobs.lease_lost id=%s kind=%s worker=%s", job.id, job.kind, lease.worker)
        elif lease.stopping is StopReason.CANCEL_REQUESTED:
            await self._rows.confirm_cancel(job.id, lease.worker, self._clock())
        else:
            now = self._clock()
            retry_at = None
            if job.attempts < job.max_attempts and retryable(exc):
                retry_at = now + min(self._retry_seconds * 2 ** (job.attempts - 1), MAX_RETRY_SECONDS)
            log.error(
                "jobs.failed id=%s kind=%s attempt=%d retry=%s",
                job.id,
                job.kind,
                job.attempts,
                "no" if retry_at is None else f"in {retry_at - now:g}s",
                exc_info=exc,
            )
            if retry_at is None:
                await self._give_up(job, lease.worker, _safe_error(exc))
            else:
                await self._rows.fail(job.id, lease.worker, _safe_error(exc), now, retry_at=retry_at)

    async def _give_up(self, job: JobRecord, worker: str, error: dict[str, str]) -> None:
        """The job failed for good: its kind hears it first, then its row says so."""
        failed = self._failed.get(job.kind)
        if failed is not None:
            await failed(job, error)
        await self._rows.fail(job.id, worker, error, self._clock(), retry_at=None)

    async def _heartbeat(self, lease: Lease, handler: asyncio.Task[Json | None]) -> None:
        """Renew the lease every third of its length; stop the handler when it is lost or cancelled."""
        held_until = time.monotonic() + self._lease_seconds
        while True:
            await asyncio.sleep(self._lease_seconds / 3)
            asked_at = time.monotonic()
            try:
                job = await self._rows.renew(lease.job_id, lease.worker, self._lease_seconds, self._clock())
            except Exception:  # the database may answer again before the lease ends
                log.warning("jobs.renew_failed id=%s", lease.job_id, exc_info=True)
                if time.monotonic() < held_until:
                    continue
                job = None
            if job is None:
                self._stop(lease, handler, StopReason.LEASE_LOST)
                return
            if job.cancel_requested:
                self._stop(lease, handler, StopReason.CANCEL_REQUESTED)
                return
            held_until = asked_at + self._lease_seconds

    @staticmethod
    def _stop(lease: Lease, handler: asyncio.Task[Json | None], reason: StopReason) -> None:
        if lease.stopping is None:
            lease.stopping = reason
            handler.cancel()
