"""The ``ToolGroupRows`` contract (``core/ports/tool_groups.py``), on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

import pytest
from _adapters import on

from cairn.core.ports.tool_groups import ToolGroupRows
from cairn.core.records import ToolGroupRecord

pytestmark = [pytest.mark.anyio, on("sqlite", "postgres")]

NOW = 1_800_000_000.25


def group(group_id: str, tenant: str = "alice", at: float = NOW) -> ToolGroupRecord:
    return ToolGroupRecord(
        group_id, tenant, at, "model-context-protocol", "http://mcp.test/mcp", {"k": "v ✓"}, ["add", "echo"]
    )


async def test_groups_are_their_tenants_alone_and_list_in_registration_order(
    tool_group_rows: ToolGroupRows,
) -> None:
    rows = tool_group_rows
    late, early = group("mcp::b", at=NOW + 1), group("mcp::a", at=NOW)
    await rows.put_group(late)
    await rows.put_group(early)
    await rows.put_group(group("mcp::a", tenant="bob"))
    assert await rows.get_group("alice", "mcp::a") == early
    assert [g.id for g in await rows.list_groups("alice")] == ["mcp::a", "mcp::b"]
    assert [g.tenant for g in await rows.list_groups("bob")] == ["bob"]
    assert await rows.get_group("carol", "mcp::a") is None
    assert await rows.delete_group("carol", "mcp::a") is False
    assert await rows.delete_group("alice", "mcp::a") is True
    assert await rows.delete_group("alice", "mcp::a") is False
    assert await rows.get_group("alice", "mcp::a") is None
    assert (await rows.get_group("bob", "mcp::a")) is not None


async def test_registering_again_replaces_the_group_but_keeps_its_place(
    tool_group_rows: ToolGroupRows,
) -> None:
    rows = tool_group_rows
    await rows.put_group(group("mcp::first"))
    await rows.put_group(group("mcp::second", at=NOW + 1))
    again = replace(group("mcp::first", at=NOW + 2), mcp_uri="https://other.test/mcp", args=None, tools=[])
    await rows.put_group(again)
    kept = await rows.get_group("alice", "mcp::first")
    assert kept == replace(again, created_at=NOW)
    assert [g.id for g in await rows.list_groups("alice")] == ["mcp::first", "mcp::second"]
