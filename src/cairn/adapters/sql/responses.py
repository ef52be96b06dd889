"""Stored response rows in SQL (``core.ports.responses``). Response ids begin with their time in
milliseconds, so lists are keyset pages by id alone, on ``(tenant, id)`` or, of one model, on
``(tenant, model, id)``; a cursor that is not one of the tenant's responses empties the page within the
same statement. The response object and its input items are JSON as text, written by orjson (compact,
UTF-8); rows stdlib ``json`` wrote before read back too (see ``_loads``). An update and a finish are
each one ``UPDATE`` whose WHERE clause decides whether it writes: of two racing, the database orders
them. A background response's events are rows of ``response_events`` keyed by ``(response_id, seq)``,
deleted with the response in one transaction."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from ...core.ports.inference import Json
from ...core.ports.objects import Order
from ...core.records import Page, StoredResponse
from .engine import SqlDatabase
from .schema import response_events as events
from .schema import responses as table

_mine = sa.and_(table.c.tenant == sa.bindparam("tenant"), table.c.id == sa.bindparam("response_id"))
GET_RESPONSE = table.select().where(_mine)
DELETE_RESPONSE = table.delete().where(_mine)
DELETE_EVENTS = events.delete().where(
    events.c.tenant == sa.bindparam("tenant"), events.c.response_id == sa.bindparam("response_id")
)
REPLACE_RESPONSE = (
    table.update()
    .where(table.c.tenant == sa.bindparam("key_tenant"), table.c.id == sa.bindparam("key_id"))
    .values(status=sa.bindparam("new_status"), response=sa.bindparam("new_response"))
)
FINISH_RESPONSE = REPLACE_RESPONSE.where(table.c.status.in_(sa.bindparam("unfinished", expanding=True)))
CURSOR = table.alias("cursor")  # the row ``after`` names, looked up apart from the rows listed


class SqlResponseRows:
    def __init__(self, database: SqlDatabase) -> None:
        self._db = database.runner

    async def insert_response(self, response: StoredResponse) -> None:
        values = {
            "id": response.id,
            "tenant": response.tenant,
            "created_at": response.created_at,
            "model": response.model,
            "status": response.status,
            "previous_response_id": response.previous_response_id,
            "conversation_id": response.conversation_id,
            "response": _dumps(response.response),
            "input_items": _dumps(response.input_items),
        }
        await self._db.write(lambda conn: conn.execute(table.insert(), values))

    async def get_response(self, tenant: str, response_id: str) -> StoredResponse | None:
        key = {"tenant": tenant, "response_id": response_id}
        row = await self._db.read_point(lambda conn: conn.execute(GET_RESPONSE, key).first())
        return None if row is None else _response(row)

    async def update_response(self, response: StoredResponse) -> bool:
        return await self._replace(REPLACE_RESPONSE, response)

    async def finish_response(self, response: StoredResponse, unfinished: Collection[str]) -> bool:
        return await self._replace(FINISH_RESPONSE, response, unfinished=list(unfinished))

    async def _replace(self, statement: sa.Update, response: StoredResponse, **more: Any) -> bool:
        values = {
            "key_tenant": response.tenant,
            "key_id": response.id,
            "new_status": response.status,
            "new_response": _dumps(response.response),
            **more,
        }
        return await self._db.write(lambda conn: conn.execute(statement, values).rowcount == 1)

    async def delete_response(self, tenant: str, response_id: str) -> bool:
        key = {"tenant": tenant, "response_id": response_id}

        def delete(conn: sa.Connection) -> bool:
            conn.execute(DELETE_EVENTS, key)
            return conn.execute(DELETE_RESPONSE, key).rowcount == 1

        return await self._db.write(delete)

    async def append_events(self, tenant: str, response_id: str, kept: Sequence[Json]) -> None:
        rows = [
            {
                "response_id": response_id,
                "seq": event["sequence_number"],
                "tenant": tenant,
                "event": _dumps(event),
            }
            for event in kept
        ]
        if rows:
            await self._db.write(lambda conn: conn.execute(events.insert(), rows))

    async def events_after(self, tenant: str, response_id: str, after: int, limit: int) -> list[Json]:
        query = (
            sa.select(events.c.event)
            .where(events.c.response_id == response_id, events.c.tenant == tenant, events.c.seq > after)
            .order_by(events.c.seq)
            .limit(limit)
        )
        texts = await self._db.read(lambda conn: list(conn.execute(query).scalars()))
        return [_loads(text) for text in texts]

    async def list_responses(
        self,
        tenant: str,
        *,
        after: str | None,
        limit: int,
        order: Order,
        model: str | None,
    ) -> Page[StoredResponse]:
        ascending = order == "asc"
        query = table.select().where(table.c.tenant == tenant)
        if model is not None:
            query = query.where(table.c.model == model)
        if after is not None:
            known = sa.select(CURSOR.c.id).where(CURSOR.c.tenant == tenant, CURSOR.c.id == after).exists()
            query = query.where(table.c.id > after if ascending else table.c.id < after, known)
        query = query.order_by(table.c.id.asc() if ascending else table.c.id.desc()).limit(limit + 1)
        rows = await self._db.read(lambda conn: list(conn.execute(query).all()))
        return Page([_response(r) for r in rows[:limit]], has_more=len(rows) > limit)


def _response(row: sa.Row[Any]) -> StoredResponse:
    values = dict(row._mapping)
    values["response"] = _loads(values["response"])
    values["input_items"] = _loads(values["input_items"])
    return StoredResponse(**values)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # NaN or Infinity, which stdlib json wrote before orjson did
        return json.loads(text)
