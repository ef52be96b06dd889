"""The ``ShieldRows`` contract (``core/ports/shields.py``), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from _adapters import on

from cairn.core.errors import Conflict
from cairn.core.ports.shields import ShieldRows
from cairn.core.records import ShieldRecord

pytestmark = [pytest.mark.anyio, on("sqlite", "postgres")]

NOW = 1_800_000_000.5


def shield(tenant: str, identifier: str, created_at: float = NOW) -> ShieldRecord:
    params = {"excluded": ["S6"], "strict": True, "nested": {"n": 1}}
    return ShieldRecord(tenant, identifier, "llama-cpp/SmolLM2-135M-Instruct", params, created_at)


async def test_a_shield_is_found_listed_and_deleted_by_its_tenant_alone(shield_rows: ShieldRows) -> None:
    mine, theirs = shield("alice", "guard/1"), shield("bob", "guard/1")
    for row in (mine, theirs):
        await shield_rows.insert_shield(row)
    assert await shield_rows.get_shield("alice", "guard/1") == mine
    assert await shield_rows.get_shield("carol", "guard/1") is None
    assert await shield_rows.list_shields("bob") == [theirs]
    assert await shield_rows.delete_shield("carol", "guard/1") is False
    assert await shield_rows.delete_shield("alice", "guard/1") is True
    assert await shield_rows.delete_shield("alice", "guard/1") is False
    assert await shield_rows.list_shields("alice") == []
    assert await shield_rows.get_shield("bob", "guard/1") == theirs


async def test_a_tenant_registers_an_identifier_once(shield_rows: ShieldRows) -> None:
    await shield_rows.insert_shield(shield("alice", "guard"))
    with pytest.raises(Conflict):
        await shield_rows.insert_shield(shield("alice", "guard", created_at=NOW + 1))
    assert [s.created_at for s in await shield_rows.list_shields("alice")] == [NOW]


async def test_shields_are_listed_oldest_first(shield_rows: ShieldRows) -> None:
    for identifier, created in (("b", NOW + 2), ("c", NOW), ("a", NOW + 2)):
        await shield_rows.insert_shield(shield("alice", identifier, created))
    assert [s.identifier for s in await shield_rows.list_shields("alice")] == ["c", "a", "b"]
