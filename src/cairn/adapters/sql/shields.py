"""Shield rows in SQL, keyed by (tenant, identifier); the parameters are a JSON object as text."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from ...core.errors import Conflict
from ...core.records import ShieldRecord
from .engine import SqlDatabase
from .schema import shields

_mine = sa.and_(
    shields.c.tenant == sa.bindparam("tenant"), shields.c.identifier == sa.bindparam("identifier")
)
GET_SHIELD = shields.select().where(_mine)
DELETE_SHIELD = shields.delete().where(_mine)


class SqlShieldRows:
    def __init__(self, database: SqlDatabase) -> None:
        self._db = database.runner

    async def insert_shield(self, shield: ShieldRecord) -> None:
        values = {
            "tenant": shield.tenant,
            "identifier": shield.identifier,
            "provider_resource_id": shield.provider_resource_id,
            "params": json.dumps(shield.params),
            "created_at": shield.created_at,
        }
        try:
            await self._db.write(lambda conn: conn.execute(shields.insert(), values))
        except sa.exc.IntegrityError as exc:
            raise Conflict(
                f"A shield named `{shield.identifier}` is already registered.", param="shield_id"
            ) from exc

    async def get_shield(self, tenant: str, identifier: str) -> ShieldRecord | None:
        key = {"tenant": tenant, "identifier": identifier}
        row = await self._db.read_point(lambda conn: conn.execute(GET_SHIELD, key).first())
        return None if row is None else _shield(row)

    async def list_shields(self, tenant: str) -> list[ShieldRecord]:
        query = (
            shields.select()
            .where(shields.c.tenant == tenant)
            .order_by(shields.c.created_at, shields.c.identifier)
        )
        rows = await self._db.read(lambda conn: conn.execute(query).all())
        return [_shield(row) for row in rows]

    async def delete_shield(self, tenant: str, identifier: str) -> bool:
        key = {"tenant": tenant, "identifier": identifier}
        return await self._db.write(lambda conn: conn.execute(DELETE_SHIELD, key).rowcount == 1)


def _shield(row: sa.Row[Any]) -> ShieldRecord:
    return ShieldRecord(**{**row._mapping, "params": json.loads(row.params)})
