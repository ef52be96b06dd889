"""Tool group rows in SQL (``core.ports.tool_groups``), keyed by (tenant, id); ``args`` and the tools'
names are JSON as text. Registering a group again is one upsert (the dialect's ``ON CONFLICT … DO
UPDATE``), which leaves ``created_at`` as it was."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ...core.records import ToolGroupRecord
from .engine import SqlDatabase
from .schema import tool_groups

REPLACED = ("provider_id", "mcp_uri", "args", "tools")


def _group(row: sa.Row[Any]) -> ToolGroupRecord:
    return ToolGroupRecord(
        id=row.id,
        tenant=row.tenant,
        created_at=row.created_at,
        provider_id=row.provider_id,
        mcp_uri=row.mcp_uri,
        args=None if row.args is None else json.loads(row.args),
        tools=json.loads(row.tools),
    )


def _its(tenant: str, group_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(tool_groups.c.tenant == tenant, tool_groups.c.id == group_id)


class SqlToolGroupRows:
    def __init__(self, database: SqlDatabase) -> None:
        self._db = database.runner

    async def put_group(self, group: ToolGroupRecord) -> None:
        values = {
            "tenant": group.tenant,
            "id": group.id,
            "created_at": group.created_at,
            "provider_id": group.provider_id,
            "mcp_uri": group.mcp_uri,
            "args": None if group.args is None else json.dumps(group.args),
            "tools": json.dumps(group.tools),
        }

        def work(conn: sa.Connection) -> None:
            insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(tool_groups)
            statement = insert.values(values).on_conflict_do_update(
                index_elements=[tool_groups.c.tenant, tool_groups.c.id],
                set_={name: insert.excluded[name] for name in REPLACED},
            )
            conn.execute(statement)

        await self._db.write(work)

    async def get_group(self, tenant: str, group_id: str) -> ToolGroupRecord | None:
        query = tool_groups.select().where(_its(tenant, group_id))
        row = await self._db.read_point(lambda conn: conn.execute(query).first())
        return None if row is None else _group(row)

    async def list_groups(self, tenant: str) -> list[ToolGroupRecord]:
        query = (
            tool_groups.select()
            .where(tool_groups.c.tenant == tenant)
            .order_by(tool_groups.c.created_at, tool_groups.c.id)
        )
        rows = await self._db.read(lambda conn: list(conn.execute(query).all()))
        return [_group(row) for row in rows]

    async def delete_group(self, tenant: str, group_id: str) -> bool:
        statement = tool_groups.delete().where(_its(tenant, group_id))
        return await self._db.write(lambda conn: conn.execute(statement).rowcount == 1)
