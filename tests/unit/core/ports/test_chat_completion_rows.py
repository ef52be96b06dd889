"""The ``ChatCompletionRows`` contract (``core/ports/completions.py``), on SQLite and PostgreSQL."""

from __future__ import annotations

import secrets

import pytest
from _adapters import on

from cairn.core.ports.completions import ChatCompletionRows
from cairn.core.records import StoredChatCompletion

pytestmark = [pytest.mark.anyio, on("sqlite", "postgres")]

NOW = 1_800_000_000


def completion(
    tenant: str = "alice", created_at: int = NOW, model: str = "m", metadata: dict[str, str] | None = None
) -> StoredChatCompletion:
    return StoredChatCompletion(
        id="chatcmpl-" + secrets.token_hex(12),
        tenant=tenant,
        created_at=created_at,
        model=model,
        input_messages=[{"role": "user", "content": [{"type": "text", "text": "Bonjour ✓"}]}],
        choices=[{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
        usage={"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        metadata=metadata or {},
    )


async def page_ids(
    rows: ChatCompletionRows, tenant: str = "alice", **query: object
) -> tuple[list[str], bool]:
    arguments: dict[str, object] = {
        "after": None,
        "limit": 100,
        "order": "asc",
        "model": None,
        "metadata": {},
    }
    page = await rows.list_completions(tenant, **{**arguments, **query})  # type: ignore[arg-type]
    return [item.id for item in page.items], page.has_more


async def test_a_completion_comes_back_whole_to_its_tenant_alone(completion_rows: ChatCompletionRows) -> None:
    kept = completion(metadata={"topic": "greeting"})
    await completion_rows.insert_completion(kept)
    assert await completion_rows.get_completion("alice", kept.id) == kept
    assert await completion_rows.get_completion("bob", kept.id) is None
    assert await page_ids(completion_rows, "bob") == ([], False)
    assert await completion_rows.update_metadata("bob", kept.id, {"x": "y"}) is None
    assert await completion_rows.delete_completion("bob", kept.id) is False
    assert await completion_rows.get_completion("alice", kept.id) == kept


async def test_pages_follow_creation_time_then_id_both_ways(completion_rows: ChatCompletionRows) -> None:
    kept = [completion(created_at=NOW + second) for second in (0, 1, 1, 1, 2)]
    for item in kept:
        await completion_rows.insert_completion(item)
    oldest_first = [c.id for c in sorted(kept, key=lambda c: (c.created_at, c.id))]
    assert await page_ids(completion_rows) == (oldest_first, False)
    assert await page_ids(completion_rows, order="desc") == (oldest_first[::-1], False)
    for order, expected in (("asc", oldest_first), ("desc", oldest_first[::-1])):
        walked, after, more = [], None, True
        while more:
            ids, more = await page_ids(completion_rows, order=order, after=after, limit=2)
            walked += ids
            after = ids[-1]
        assert walked == expected
    assert await page_ids(completion_rows, after="chatcmpl-unknown") == ([], False)


async def test_lists_filter_on_model_and_every_metadata_pair(completion_rows: ChatCompletionRows) -> None:
    first = completion(model="a", metadata={"team": "x", "stage": "prod"})
    second = completion(model="b", metadata={"team": "x", "stage": "dev"}, created_at=NOW + 1)
    for item in (first, second):
        await completion_rows.insert_completion(item)
    assert await page_ids(completion_rows, model="b") == ([second.id], False)
    assert await page_ids(completion_rows, metadata={"team": "x"}) == ([first.id, second.id], False)
    assert await page_ids(completion_rows, metadata={"team": "x", "stage": "prod"}) == ([first.id], False)
    assert await page_ids(completion_rows, metadata={"team": "y"}) == ([], False)


async def test_metadata_is_replaced_and_a_deleted_completion_is_gone(
    completion_rows: ChatCompletionRows,
) -> None:
    kept = completion(metadata={"old": "1"})
    await completion_rows.insert_completion(kept)
    updated = await completion_rows.update_metadata("alice", kept.id, {"new": "2"})
    assert updated is not None and updated.metadata == {"new": "2"} and updated.choices == kept.choices
    assert await page_ids(completion_rows, metadata={"old": "1"}) == ([], False)
    assert await completion_rows.delete_completion("alice", kept.id) is True
    assert await completion_rows.delete_completion("alice", kept.id) is False
    assert await completion_rows.get_completion("alice", kept.id) is None
