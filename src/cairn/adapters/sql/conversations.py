"""Conversation rows in SQL (``core.ports.conversations``). Items are JSON text numbered by ``seq`` within
their conversation; pages walk the primary key ``(conversation_id, seq)``, the cursor's ``seq`` looked up
by item id in the same read. An append first bumps the conversation's ``last_seq`` (which says whether
the conversation exists, and on PostgreSQL locks its row until the append commits), then checks the new
ids against the conversation's and inserts the items after the last: appends to one conversation take
their turns, and each sees every item appended before it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from ...core.errors import InvalidInput
from ...core.ports.inference import Json
from ...core.ports.objects import Order
from ...core.records import ConversationRecord, Page
from .engine import SqlDatabase
from .schema import conversation_items, conversations


def _conversation(row: sa.Row[Any]) -> ConversationRecord:
    return ConversationRecord(id=row.id, tenant=row.tenant, created_at=row.created_at, metadata=row.metadata)


def _mine(tenant: str, conversation_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(conversations.c.tenant == tenant, conversations.c.id == conversation_id)


def _its_items(tenant: str, conversation_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(
        conversation_items.c.tenant == tenant, conversation_items.c.conversation_id == conversation_id
    )


def _exists(conn: sa.Connection, tenant: str, conversation_id: str) -> bool:
    return (
        conn.execute(sa.select(conversations.c.id).where(_mine(tenant, conversation_id))).first() is not None
    )


def _duplicate(item_id: str) -> InvalidInput:
    return InvalidInput(f"Duplicate item found with id '{item_id}'.", param="items")


def _insert_items(
    conn: sa.Connection, tenant: str, conversation_id: str, new: Sequence[Json], first_seq: int
) -> None:
    if new:
        rows = [
            {
                "conversation_id": conversation_id,
                "seq": first_seq + offset,
                "tenant": tenant,
                "item_id": item["id"],
                "item": json.dumps(item),
            }
            for offset, item in enumerate(new)
        ]
        conn.execute(conversation_items.insert(), rows)


def _unrepeated(new: Sequence[Json]) -> list[str]:
    """The ids of ``new``, each once (else ``InvalidInput`` naming the repeated one)."""
    ids = [item["id"] for item in new]
    seen: set[str] = set()
    for item_id in ids:
        if item_id in seen:
            raise _duplicate(item_id)
        seen.add(item_id)
    return ids


class SqlConversationRows:
    def __init__(self, database: SqlDatabase) -> None:
        self._db = database.runner

    async def insert_conversation(self, conversation: ConversationRecord, items: Sequence[Json]) -> None:
        _unrepeated(items)
        values = {
            "id": conversation.id,
            "tenant": conversation.tenant,
            "created_at": conversation.created_at,
            "metadata": conversation.metadata,
            "last_seq": len(items),
        }

        def work(conn: sa.Connection) -> None:
            conn.execute(conversations.insert(), values)
            _insert_items(conn, conversation.tenant, conversation.id, items, first_seq=1)

        await self._db.write(work)

    async def get_conversation(self, tenant: str, conversation_id: str) -> ConversationRecord | None:
        query = conversations.select().where(_mine(tenant, conversation_id))
        row = await self._db.read_point(lambda conn: conn.execute(query).first())
        return None if row is None else _conversation(row)

    async def update_metadata(
        self, tenant: str, conversation_id: str, metadata: Mapping[str, str]
    ) -> ConversationRecord | None:
        statement = (
            conversations.update()
            .where(_mine(tenant, conversation_id))
            .values(metadata=dict(metadata))
            .returning(*conversations.c)
        )
        row = await self._db.write(lambda conn: conn.execute(statement).first())
        return None if row is None else _conversation(row)

    async def delete_conversation(self, tenant: str, conversation_id: str) -> bool:
        def work(conn: sa.Connection) -> bool:
            if conn.execute(conversations.delete().where(_mine(tenant, conversation_id))).rowcount != 1:
                return False
            conn.execute(conversation_items.delete().where(_its_items(tenant, conversation_id)))
            return True

        return await self._db.write(work)

    async def append_items(self, tenant: str, conversation_id: str, items: Sequence[Json]) -> bool:
        ids = _unrepeated(items)
        bump = (
            conversations.update()
            .where(_mine(tenant, conversation_id))
            .values(last_seq=conversations.c.last_seq + len(items))
            .returning(conversations.c.last_seq)
        )

        def work(conn: sa.Connection) -> bool:
            last_seq = conn.execute(bump).scalar()
            if last_seq is None:
                return False
            if ids:
                taken = sa.select(conversation_items.c.item_id).where(
                    _its_items(tenant, conversation_id), conversation_items.c.item_id.in_(ids)
                )
                repeated = conn.execute(taken.limit(1)).scalar()
                if repeated is not None:
                    raise _duplicate(repeated)  # the transaction is rolled back: nothing is written
            _insert_items(conn, tenant, conversation_id, items, first_seq=last_seq - len(items) + 1)
            return True

        return await self._db.write(work)

    async def list_items(
        self, tenant: str, conversation_id: str, *, after: str | None, limit: int, order: Order
    ) -> Page[Json] | None:
        ascending = order == "asc"
        query = (
            sa.select(conversation_items.c.item)
            .where(_its_items(tenant, conversation_id))
            .order_by(conversation_items.c.seq.asc() if ascending else conversation_items.c.seq.desc())
            .limit(limit + 1)
        )

        def work(conn: sa.Connection) -> list[str] | None:
            if not _exists(conn, tenant, conversation_id):
                return None
            paged = query
            if after is not None:
                cursor = sa.select(conversation_items.c.seq).where(
                    _its_items(tenant, conversation_id), conversation_items.c.item_id == after
                )
                seq = conn.execute(cursor).scalar()
                if seq is None:
                    return []
                paged = query.where(
                    conversation_items.c.seq > seq if ascending else conversation_items.c.seq < seq
                )
            return list(conn.execute(paged).scalars())

        rows = await self._db.read(work)
        if rows is None:
            return None
        return Page([json.loads(row) for row in rows[:limit]], len(rows) > limit)

    async def all_items(self, tenant: str, conversation_id: str) -> list[Json] | None:
        query = (
            sa.select(conversation_items.c.item)
            .where(_its_items(tenant, conversation_id))
            .order_by(conversation_items.c.seq.asc())
        )

        def work(conn: sa.Connection) -> list[str] | None:
            if not _exists(conn, tenant, conversation_id):
                return None
            return list(conn.execute(query).scalars())

        rows = await self._db.read(work)
        return None if rows is None else [json.loads(row) for row in rows]

    async def get_item(self, tenant: str, conversation_id: str, item_id: str) -> Json | None:
        query = sa.select(conversation_items.c.item).where(
            _its_items(tenant, conversation_id), conversation_items.c.item_id == item_id
        )
        row = await self._db.read_point(lambda conn: conn.execute(query).scalar())
        return None if row is None else json.loads(row)

    async def delete_item(self, tenant: str, conversation_id: str, item_id: str) -> bool:
        statement = conversation_items.delete().where(
            _its_items(tenant, conversation_id), conversation_items.c.item_id == item_id
        )
        return await self._db.write(lambda conn: conn.execute(statement).rowcount == 1)
