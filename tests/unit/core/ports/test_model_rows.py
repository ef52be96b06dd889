"""The ``ModelRows`` contract (``core/ports/models.py``), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from _adapters import on

from cairn.core.errors import Conflict
from cairn.core.ports.models import ModelRows
from cairn.core.records import RegisteredModel

pytestmark = [pytest.mark.anyio, on("sqlite", "postgres")]

NOW = 1_800_000_000


def registered(tenant: str, identifier: str, created_at: int = NOW) -> RegisteredModel:
    return RegisteredModel(
        tenant=tenant,
        identifier=identifier,
        provider_id="llama-cpp",
        provider_model_id="SmolLM2-135M-Instruct",
        model_type="llm",
        metadata={"team": "search", "limits": {"max": 3}, "tags": ["a", "b"]},
        created_at=created_at,
    )


async def test_a_model_is_found_listed_and_deleted_by_its_tenant_alone(model_rows: ModelRows) -> None:
    mine, theirs = registered("alice", "my/smol"), registered("bob", "my/smol")
    for model in (mine, theirs):
        await model_rows.insert_model(model)
    assert await model_rows.get_model("alice", "my/smol") == mine
    assert await model_rows.get_model("carol", "my/smol") is None
    assert await model_rows.list_models("bob") == [theirs]
    assert await model_rows.delete_model("carol", "my/smol") is False
    assert await model_rows.delete_model("alice", "my/smol") is True
    assert await model_rows.delete_model("alice", "my/smol") is False
    assert await model_rows.list_models("alice") == []
    assert await model_rows.get_model("bob", "my/smol") == theirs


async def test_a_tenant_registers_an_identifier_once(model_rows: ModelRows) -> None:
    await model_rows.insert_model(registered("alice", "smol"))
    with pytest.raises(Conflict):
        await model_rows.insert_model(registered("alice", "smol", created_at=NOW + 1))
    assert [m.created_at for m in await model_rows.list_models("alice")] == [NOW]


async def test_models_are_listed_oldest_first(model_rows: ModelRows) -> None:
    for identifier, created in (("b", NOW + 2), ("c", NOW), ("a", NOW + 2)):
        await model_rows.insert_model(registered("alice", identifier, created))
    assert [m.identifier for m in await model_rows.list_models("alice")] == ["c", "a", "b"]
