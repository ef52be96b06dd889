"""Job rows in SQL. A claim is one statement, ``UPDATE … WHERE id = (SELECT … LIMIT 1) RETURNING``: on
PostgreSQL the inner SELECT takes its row ``FOR UPDATE SKIP LOCKED``, so concurrent claimers in any
number of replicas each lock a different job without waiting for one another; on SQLite the statement
runs on the single-writer path (one writer per process, and SQLite's own lock between the processes of
one machine), so no two claims ever interleave. Every write by a worker names it in its WHERE clause:
a worker whose job was claimed by another matches no row."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ...core.errors import Conflict
from ...core.records import JobRecord, JobStatus
from .engine import SqlDatabase
from .schema import jobs

CLAIMABLE = jobs.c.status.in_([JobStatus.QUEUED, JobStatus.RUNNING])
GET_JOB = jobs.select().where(jobs.c.id == sa.bindparam("job_id"))


def _held(job_id: str, worker: str) -> sa.ColumnElement[bool]:
    return sa.and_(jobs.c.id == job_id, jobs.c.worker == worker, jobs.c.status == JobStatus.RUNNING)


TIMES = ("run_at", "created_at", "ended_at")


def _job(row: sa.Row[Any]) -> JobRecord:
    values = dict(row._mapping)
    values["status"] = JobStatus(values["status"])
    for name in TIMES:  # SQLite's RETURNING gives a whole number of seconds as an int
        if values[name] is not None:
            values[name] = float(values[name])
    return JobRecord(**values)


class SqlJobRows:
    def __init__(self, database: SqlDatabase) -> None:
        self._db = database.runner

    async def enqueue(self, job: JobRecord) -> JobRecord:
        def work(conn: sa.Connection) -> JobRecord:
            inserted = conn.execute(
                _insert_new(conn.dialect.name, dataclasses.asdict(job)).returning(*jobs.c)
            ).first()
            row = inserted or conn.execute(GET_JOB, {"job_id": job.id}).one()
            return _job(row)

        stored = await self._db.write(work)
        if stored.tenant != job.tenant:
            raise Conflict(f"The job id '{job.id}' is taken.")
        return stored

    async def claim(
        self, kinds: Collection[str], worker: str, lease_seconds: float, now: float
    ) -> JobRecord | None:
        oldest_claimable = (
            sa.select(jobs.c.id)
            .where(CLAIMABLE, jobs.c.run_at <= now, jobs.c.kind.in_(list(kinds)))
            .order_by(jobs.c.run_at)
            .limit(1)
            .with_for_update(skip_locked=True)  # PostgreSQL only; SQLite has one writer at a time
            .scalar_subquery()
        )
        statement = (
            jobs.update()
            .where(jobs.c.id == oldest_claimable)
            .values(
                status=JobStatus.RUNNING,
                worker=worker,
                run_at=now + lease_seconds,
                attempts=jobs.c.attempts + 1,
            )
            .returning(*jobs.c)
        )
        row = await self._db.write(lambda conn: conn.execute(statement).first())
        return None if row is None else _job(row)

    async def renew(self, job_id: str, worker: str, lease_seconds: float, now: float) -> JobRecord | None:
        statement = (
            jobs.update().where(_held(job_id, worker)).values(run_at=now + lease_seconds).returning(*jobs.c)
        )
        row = await self._db.write(lambda conn: conn.execute(statement).first())
        return None if row is None else _job(row)

    async def finish(self, job_id: str, worker: str, result: dict[str, Any] | None, now: float) -> bool:
        return await self._end(job_id, worker, status=JobStatus.SUCCEEDED, result=result, ended_at=now)

    async def fail(
        self, job_id: str, worker: str, error: dict[str, str], now: float, *, retry_at: float | None
    ) -> bool:
        if retry_at is None:
            return await self._end(job_id, worker, status=JobStatus.FAILED, error=error, ended_at=now)
        return await self._end(job_id, worker, status=JobStatus.QUEUED, error=error, run_at=retry_at)

    async def confirm_cancel(self, job_id: str, worker: str, now: float) -> bool:
        return await self._end(job_id, worker, status=JobStatus.CANCELLED, ended_at=now)

    async def _end(self, job_id: str, worker: str, **values: Any) -> bool:
        statement = jobs.update().where(_held(job_id, worker)).values(**values)
        return await self._db.write(lambda conn: conn.execute(statement).rowcount == 1)

    async def request_cancel(self, tenant: str, job_id: str, now: float) -> JobRecord | None:
        mine = sa.and_(jobs.c.id == job_id, jobs.c.tenant == tenant)
        queued = jobs.c.status == JobStatus.QUEUED
        statement = (
            jobs.update()
            .where(mine, CLAIMABLE)
            .values(
                cancel_requested=True,
                status=sa.case((queued, JobStatus.CANCELLED.value), else_=jobs.c.status),
                ended_at=sa.case((queued, now), else_=jobs.c.ended_at),
            )
            .returning(*jobs.c)
        )

        def work(conn: sa.Connection) -> JobRecord | None:
            row = conn.execute(statement).first() or conn.execute(jobs.select().where(mine)).first()
            return None if row is None else _job(row)

        return await self._db.write(work)

    async def get(self, tenant: str, job_id: str) -> JobRecord | None:
        row = await self._db.read_point(lambda conn: conn.execute(GET_JOB, {"job_id": job_id}).first())
        return None if row is None or row.tenant != tenant else _job(row)


def _insert_new(dialect: str, values: dict[str, Any]) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that does nothing when the id is taken."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(jobs).values(values).on_conflict_do_nothing(index_elements=[jobs.c.id])
