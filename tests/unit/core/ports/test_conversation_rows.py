"""The ``ConversationRows`` contract (``core/ports/conversations.py``), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from _adapters import on

from cairn.core.errors import InvalidInput
from cairn.core.ports.conversations import ConversationRows
from cairn.core.records import ConversationRecord

pytestmark = [pytest.mark.anyio, on("sqlite", "postgres")]

NOW = 1_800_000_000


def conversation(tenant: str = "alice") -> ConversationRecord:
    return ConversationRecord(
        id="conv_" + secrets.token_hex(24), tenant=tenant, created_at=NOW, metadata={"topic": "tea"}
    )


def message(text: str) -> dict:
    return {
        "type": "message",
        "id": "msg_" + secrets.token_hex(24),
        "role": "user",
        "status": "completed",
        "content": [{"type": "input_text", "text": text}],
    }


async def page(rows: ConversationRows, conv: ConversationRecord, **query: object) -> tuple[list[str], bool]:
    arguments: dict[str, object] = {"after": None, "limit": 100, "order": "asc", **query}
    listed = await rows.list_items(conv.tenant, conv.id, **arguments)  # type: ignore[arg-type]
    assert listed is not None
    return [item["content"][0]["text"] for item in listed.items], listed.has_more


async def test_a_conversation_and_its_items_are_its_tenants_alone(
    conversation_rows: ConversationRows,
) -> None:
    rows = conversation_rows
    mine = conversation()
    first = message("Bonjour ✓")
    await rows.insert_conversation(mine, [first])
    assert await rows.get_conversation("alice", mine.id) == mine
    assert await rows.all_items("alice", mine.id) == [first]
    assert await rows.get_item("alice", mine.id, first["id"]) == first
    assert await rows.get_conversation("bob", mine.id) is None
    assert await rows.update_metadata("bob", mine.id, {}) is None
    assert await rows.append_items("bob", mine.id, [message("intruder")]) is False
    assert await rows.list_items("bob", mine.id, after=None, limit=10, order="asc") is None
    assert await rows.all_items("bob", mine.id) is None
    assert await rows.get_item("bob", mine.id, first["id"]) is None
    assert await rows.delete_item("bob", mine.id, first["id"]) is False
    assert await rows.delete_conversation("bob", mine.id) is False
    assert await rows.all_items("alice", mine.id) == [first]
    updated = await rows.update_metadata("alice", mine.id, {"topic": "coffee"})
    assert updated == ConversationRecord(mine.id, "alice", NOW, {"topic": "coffee"})


async def test_items_keep_their_order_and_page_both_ways(conversation_rows: ConversationRows) -> None:
    rows = conversation_rows
    conv = conversation()
    await rows.insert_conversation(conv, [message("a"), message("b")])
    assert await rows.append_items("alice", conv.id, [message("c"), message("d")]) is True
    assert await rows.append_items("alice", conv.id, []) is True
    assert await rows.append_items("alice", conv.id, [message("e")]) is True
    items = await rows.all_items("alice", conv.id)
    assert items is not None
    ids = {item["content"][0]["text"]: item["id"] for item in items}
    assert list(ids) == ["a", "b", "c", "d", "e"]
    assert await page(rows, conv, limit=2) == (["a", "b"], True)
    assert await page(rows, conv, limit=2, after=ids["b"]) == (["c", "d"], True)
    assert await page(rows, conv, limit=2, after=ids["d"]) == (["e"], False)
    assert await page(rows, conv, limit=3, order="desc") == (["e", "d", "c"], True)
    assert await page(rows, conv, limit=2, order="desc", after=ids["c"]) == (["b", "a"], False)
    assert await page(rows, conv, after="msg_unknown") == ([], False)
    assert await page(rows, conv, limit=5) == (["a", "b", "c", "d", "e"], False)


async def test_deleting_an_item_keeps_the_rest_in_order(conversation_rows: ConversationRows) -> None:
    rows = conversation_rows
    conv = conversation()
    kept = [message("a"), message("b"), message("c")]
    await rows.insert_conversation(conv, kept)
    assert await rows.delete_item("alice", conv.id, kept[1]["id"]) is True
    assert await rows.delete_item("alice", conv.id, kept[1]["id"]) is False
    assert await rows.get_item("alice", conv.id, kept[1]["id"]) is None
    await rows.append_items("alice", conv.id, [message("d")])
    assert await page(rows, conv) == (["a", "c", "d"], False)


async def test_a_repeated_item_id_is_refused_and_nothing_is_written(
    conversation_rows: ConversationRows,
) -> None:
    rows = conversation_rows
    conv = conversation()
    first = message("a")
    await rows.insert_conversation(conv, [first])
    for batch in (
        [message("b"), first],
        [message("c"), {**message("d"), "id": "msg_twice"}, {**message("e"), "id": "msg_twice"}],
    ):
        with pytest.raises(InvalidInput) as caught:
            await rows.append_items("alice", conv.id, batch)
        assert caught.value.param == "items" and batch[-1]["id"] in caught.value.message
    assert await page(rows, conv) == (["a"], False)
    with pytest.raises(InvalidInput):
        await rows.insert_conversation(conversation(), [first, first])
    other = conversation()
    await rows.insert_conversation(other, [first])  # an id is unique within its conversation only
    assert await rows.all_items("alice", other.id) == [first]


async def test_concurrent_appends_each_land_whole_and_in_order(conversation_rows: ConversationRows) -> None:
    rows = conversation_rows
    conv = conversation()
    await rows.insert_conversation(conv, [])
    batches = [[message(f"{batch}.{n}") for n in range(3)] for batch in range(6)]
    assert all(await asyncio.gather(*(rows.append_items("alice", conv.id, batch) for batch in batches)))
    texts, _ = await page(rows, conv)
    assert sorted(texts) == sorted(f"{batch}.{n}" for batch in range(6) for n in range(3))
    for start in range(0, len(texts), 3):
        run = texts[start : start + 3]
        assert [text.split(".")[1] for text in run] == ["0", "1", "2"]
        assert len({text.split(".")[0] for text in run}) == 1


async def test_deleting_a_conversation_deletes_its_items(conversation_rows: ConversationRows) -> None:
    rows = conversation_rows
    conv = conversation()
    kept = message("a")
    await rows.insert_conversation(conv, [kept])
    assert await rows.delete_conversation("alice", conv.id) is True
    assert await rows.get_conversation("alice", conv.id) is None
    assert await rows.get_item("alice", conv.id, kept["id"]) is None
    assert await rows.all_items("alice", conv.id) is None
    assert await rows.delete_conversation("alice", conv.id) is False
    again = ConversationRecord(conv.id, "alice", NOW, {})  # its id is free again, and holds nothing
    await rows.insert_conversation(again, [])
    assert await rows.all_items("alice", conv.id) == []
