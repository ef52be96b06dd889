"""API key rows in SQL: hashes only."""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from ...core.records import ApiKeyRecord
from .engine import SqlDatabase
from .schema import api_keys

ANY_API_KEY = sa.select(api_keys.c.id).limit(1)
FIND_API_KEY = api_keys.select().where(
    api_keys.c.key_hash == sa.bindparam("key_hash"), api_keys.c.revoked_at.is_(None)
)


class SqlApiKeyRows:
    def __init__(self, database: SqlDatabase) -> None:
        self._db = database.runner

    async def insert_api_key(self, record: ApiKeyRecord) -> None:
        values = dataclasses.asdict(record)
        await self._db.write(lambda conn: conn.execute(api_keys.insert(), values))

    async def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        row = await self._db.read_point(
            lambda conn: conn.execute(FIND_API_KEY, {"key_hash": key_hash}).first()
        )
        return None if row is None else ApiKeyRecord(**row._mapping)

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        query = api_keys.select().order_by(api_keys.c.created_at, api_keys.c.id)
        rows = await self._db.read(lambda conn: conn.execute(query).all())
        return [ApiKeyRecord(**r._mapping) for r in rows]

    async def revoke_api_key(self, key_id: str, now: int) -> bool:
        statement = (
            api_keys.update()
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return await self._db.write(lambda conn: conn.execute(statement).rowcount == 1)

    async def has_api_keys(self) -> bool:
        return await self._db.read_point(lambda conn: conn.execute(ANY_API_KEY).first() is not None)
