"""Stored chat completion rows in SQL. Lists are keyset-paginated on the ``(tenant, created_at, id)``
index: the cursor is a completion id, whose creation time the same read looks up. Completion ids begin
with their time in milliseconds (``core.inference.router``), so within one second too they list in the
order they were made. The messages,
choices and usage are JSON as text; the metadata is a JSON column, so that lists filter on its keys."""

from __future__ import annotations

import json
from collections.abc import Mapping

import sqlalchemy as sa

from ...core.ports.objects import Order
from ...core.records import ChatCompletionPage, StoredChatCompletion
from .engine import SqlDatabase
from .schema import chat_completions

table = chat_completions
_mine = sa.and_(table.c.tenant == sa.bindparam("tenant"), table.c.id == sa.bindparam("completion_id"))
GET_COMPLETION = table.select().where(_mine)
DELETE_COMPLETION = table.delete().where(_mine)
CURSOR = sa.select(table.c.created_at).where(_mine)


class SqlChatCompletionRows:
    def __init__(self, database: SqlDatabase) -> None:
        self._db = database.runner

    async def insert_completion(self, completion: StoredChatCompletion) -> None:
        values = {
            "id": completion.id,
            "tenant": completion.tenant,
            "created_at": completion.created_at,
            "model": completion.model,
            "metadata": completion.metadata,
            "input_messages": json.dumps(completion.input_messages),
            "choices": json.dumps(completion.choices),
            "usage": None if completion.usage is None else json.dumps(completion.usage),
        }
        await self._db.write(lambda conn: conn.execute(table.insert(), values))

    async def get_completion(self, tenant: str, completion_id: str) -> StoredChatCompletion | None:
        key = {"tenant": tenant, "completion_id": completion_id}
        row = await self._db.read_point(lambda conn: conn.execute(GET_COMPLETION, key).first())
        return None if row is None else _completion(row)

    async def list_completions(
        self,
        tenant: str,
        *,
        after: str | None,
        limit: int,
        order: Order,
        model: str | None,
        metadata: Mapping[str, str],
    ) -> ChatCompletionPage:
        query = table.select().where(table.c.tenant == tenant)
        if model is not None:
            query = query.where(table.c.model == model)
        for name, value in metadata.items():
            query = query.where(table.c.metadata[name].as_string() == value)
        newest_first = order == "desc"
        ordering = (table.c.created_at, table.c.id)
        query = query.order_by(*(c.desc() if newest_first else c.asc() for c in ordering)).limit(limit + 1)

        def work(conn: sa.Connection) -> list[sa.Row[tuple[object, ...]]]:
            paged = query
            if after is not None:
                created = conn.execute(CURSOR, {"tenant": tenant, "completion_id": after}).scalar()
                if created is None:
                    return []
                if newest_first:
                    beyond = sa.or_(
                        table.c.created_at < created,
                        sa.and_(table.c.created_at == created, table.c.id < after),
                    )
                else:
                    beyond = sa.or_(
                        table.c.created_at > created,
                        sa.and_(table.c.created_at == created, table.c.id > after),
                    )
                paged = query.where(beyond)
            return list(conn.execute(paged).all())

        rows = await self._db.read(work)
        return ChatCompletionPage(items=[_completion(r) for r in rows[:limit]], has_more=len(rows) > limit)

    async def update_metadata(
        self, tenant: str, completion_id: str, metadata: Mapping[str, str]
    ) -> StoredChatCompletion | None:
        statement = (
            table.update()
            .where(table.c.tenant == tenant, table.c.id == completion_id)
            .values(metadata=dict(metadata))
            .returning(*table.c)
        )
        row = await self._db.write(lambda conn: conn.execute(statement).first())
        return None if row is None else _completion(row)

    async def delete_completion(self, tenant: str, completion_id: str) -> bool:
        key = {"tenant": tenant, "completion_id": completion_id}
        return await self._db.write(lambda conn: conn.execute(DELETE_COMPLETION, key).rowcount == 1)


def _completion(row: sa.Row[tuple[object, ...]]) -> StoredChatCompletion:
    return StoredChatCompletion(
        id=row.id,
        tenant=row.tenant,
        created_at=row.created_at,
        model=row.model,
        input_messages=json.loads(row.input_messages),
        choices=json.loads(row.choices),
        usage=None if row.usage is None else json.loads(row.usage),
        metadata=row.metadata,
    )
