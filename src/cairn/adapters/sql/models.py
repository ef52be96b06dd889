"""Registered model rows in SQL, keyed by (tenant, identifier); the metadata is a JSON object as text."""

from __future__ import annotations

import json

import sqlalchemy as sa

from ...core.errors import Conflict
from ...core.records import RegisteredModel
from .engine import SqlDatabase
from .schema import registered_models

_mine = sa.and_(
    registered_models.c.tenant == sa.bindparam("tenant"),
    registered_models.c.identifier == sa.bindparam("identifier"),
)
GET_MODEL = registered_models.select().where(_mine)
DELETE_MODEL = registered_models.delete().where(_mine)


class SqlModelRows:
    def __init__(self, database: SqlDatabase) -> None:
        self._db = database.runner

    async def insert_model(self, model: RegisteredModel) -> None:
        values = {
            "tenant": model.tenant,
            "identifier": model.identifier,
            "provider_id": model.provider_id,
            "provider_model_id": model.provider_model_id,
            "model_type": model.model_type,
            "metadata": json.dumps(model.metadata),
            "created_at": model.created_at,
        }
        try:
            await self._db.write(lambda conn: conn.execute(registered_models.insert(), values))
        except sa.exc.IntegrityError as exc:
            raise Conflict(
                f"A model named `{model.identifier}` is already registered.", param="model_id"
            ) from exc

    async def get_model(self, tenant: str, identifier: str) -> RegisteredModel | None:
        key = {"tenant": tenant, "identifier": identifier}
        row = await self._db.read_point(lambda conn: conn.execute(GET_MODEL, key).first())
        return None if row is None else _model(row)

    async def list_models(self, tenant: str) -> list[RegisteredModel]:
        query = (
            registered_models.select()
            .where(registered_models.c.tenant == tenant)
            .order_by(registered_models.c.created_at, registered_models.c.identifier)
        )
        rows = await self._db.read(lambda conn: conn.execute(query).all())
        return [_model(row) for row in rows]

    async def delete_model(self, tenant: str, identifier: str) -> bool:
        key = {"tenant": tenant, "identifier": identifier}
        return await self._db.write(lambda conn: conn.execute(DELETE_MODEL, key).rowcount == 1)


def _model(row: sa.Row[tuple[object, ...]]) -> RegisteredModel:
    return RegisteredModel(**{**row._mapping, "metadata": json.loads(row.metadata)})
