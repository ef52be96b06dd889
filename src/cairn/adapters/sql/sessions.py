"""Upload session rows in SQL. Completing a session writes its object row in the same transaction."""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from ...core.errors import Conflict
from ...core.records import ObjectRecord, UploadSession
from .engine import SqlDatabase
from .objects import place_object
from .schema import upload_sessions


class SqlUploadSessionRows:
    def __init__(self, database: SqlDatabase) -> None:
        self._db = database.runner

    async def insert_session(self, session: UploadSession) -> None:
        values = dataclasses.asdict(session)
        await self._db.write(lambda conn: conn.execute(upload_sessions.insert(), values))

    async def get_session(self, tenant: str, session_id: str, now: int) -> UploadSession | None:
        query = upload_sessions.select().where(
            upload_sessions.c.id == session_id,
            upload_sessions.c.tenant == tenant,
            upload_sessions.c.expires_at > now,
        )
        row = await self._db.read_point(lambda conn: conn.execute(query).first())
        return None if row is None else UploadSession(**row._mapping)

    async def delete_session(self, tenant: str, session_id: str) -> UploadSession | None:
        statement = (
            upload_sessions.delete()
            .where(upload_sessions.c.id == session_id, upload_sessions.c.tenant == tenant)
            .returning(*upload_sessions.c)
        )
        row = await self._db.write(lambda conn: conn.execute(statement).first())
        return None if row is None else UploadSession(**row._mapping)

    async def complete_session(self, session_id: str, record: ObjectRecord) -> ObjectRecord | None:
        def work(conn: sa.Connection) -> ObjectRecord | None:
            marked = conn.execute(
                upload_sessions.update()
                .where(upload_sessions.c.id == session_id, upload_sessions.c.object_id.is_(None))
                .values(object_id=record.id)
            )
            if marked.rowcount != 1:
                raise Conflict("The upload is no longer pending: it was completed, cancelled or expired.")
            return place_object(conn, record, replace=True)

        return await self._db.write(work)

    async def expired_sessions(self, now: int, limit: int) -> list[UploadSession]:
        query = (
            upload_sessions.select()
            .where(upload_sessions.c.expires_at <= now)
            .order_by(upload_sessions.c.expires_at)
            .limit(limit)
        )
        rows = await self._db.read(lambda conn: conn.execute(query).all())
        return [UploadSession(**r._mapping) for r in rows]
