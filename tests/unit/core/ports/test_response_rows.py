"""The ``ResponseRows`` contract (``core/ports/responses.py``), on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import secrets

import anyio
import pytest
from _adapters import on

from cairn.core.ports.responses import ResponseRows
from cairn.core.records import StoredResponse

pytestmark = [pytest.mark.anyio, on("sqlite", "postgres")]

NOW = 1_800_000_000
UNFINISHED = ("queued", "in_progress")


def response(
    tenant: str = "alice", n: int = 0, model: str = "m", status: str = "in_progress"
) -> StoredResponse:
    response_id = f"resp_{(NOW + n) * 1000:012x}{secrets.token_hex(10)}"
    return StoredResponse(
        id=response_id,
        tenant=tenant,
        created_at=NOW + n,
        model=model,
        status=status,
        previous_response_id="resp_earlier",
        conversation_id="conv_1",
        response={"id": response_id, "object": "response", "status": status, "model": model, "output": []},
        input_items=[
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Bonjour ✓"}]}
        ],
    )


def shown(kept: StoredResponse, status: str, text: str = "Hi") -> StoredResponse:
    """The same response as a later event shows it: another status, another object."""
    output = [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}]
    return dataclasses.replace(
        kept, status=status, response={**kept.response, "status": status, "output": output}
    )


async def page_ids(rows: ResponseRows, tenant: str = "alice", **query: object) -> tuple[list[str], bool]:
    arguments: dict[str, object] = {"after": None, "limit": 100, "order": "asc", "model": None}
    page = await rows.list_responses(tenant, **{**arguments, **query})  # type: ignore[arg-type]
    return [item.id for item in page.items], page.has_more


async def test_a_response_comes_back_whole_to_its_tenant_alone(response_rows: ResponseRows) -> None:
    kept = response()
    await response_rows.insert_response(kept)
    assert await response_rows.get_response("alice", kept.id) == kept
    assert await response_rows.get_response("bob", kept.id) is None
    assert await page_ids(response_rows, "bob") == ([], False)
    theirs = dataclasses.replace(shown(kept, "completed"), tenant="bob")
    assert await response_rows.update_response(theirs) is False
    assert await response_rows.finish_response(theirs, UNFINISHED) is False
    assert await response_rows.delete_response("bob", kept.id) is False
    assert await response_rows.get_response("alice", kept.id) == kept


async def test_an_update_replaces_status_and_object_and_a_deleted_response_stays_deleted(
    response_rows: ResponseRows,
) -> None:
    kept = response()
    await response_rows.insert_response(kept)
    later = shown(kept, "completed")
    assert await response_rows.update_response(dataclasses.replace(later, input_items=[], model="x")) is True
    assert await response_rows.get_response("alice", kept.id) == later  # its input and model as inserted
    assert await response_rows.delete_response("alice", kept.id) is True
    assert await response_rows.delete_response("alice", kept.id) is False
    assert await response_rows.update_response(later) is False
    assert await response_rows.get_response("alice", kept.id) is None


async def test_a_response_finishes_once_from_an_unfinished_state(response_rows: ResponseRows) -> None:
    queued = response(status="queued")
    await response_rows.insert_response(queued)
    assert await response_rows.finish_response(shown(queued, "in_progress"), UNFINISHED) is True
    cancelled = shown(queued, "cancelled", text="")
    assert await response_rows.finish_response(cancelled, UNFINISHED) is True
    assert await response_rows.finish_response(shown(queued, "completed"), UNFINISHED) is False
    assert await response_rows.get_response("alice", queued.id) == cancelled
    assert await response_rows.finish_response(response(), UNFINISHED) is False  # no such row


async def test_of_a_cancel_and_a_completion_racing_exactly_one_lands(response_rows: ResponseRows) -> None:
    kept = response()
    await response_rows.insert_response(kept)
    endings = [shown(kept, "cancelled", text=""), shown(kept, "completed")]
    landed: dict[str, bool] = {}

    async def finish(ending: StoredResponse) -> None:
        landed[ending.status] = await response_rows.finish_response(ending, UNFINISHED)

    async with anyio.create_task_group() as group:
        for ending in endings:
            group.start_soon(finish, ending)
    assert sorted(landed.values()) == [False, True]
    (winner,) = (ending for ending in endings if landed[ending.status])
    assert await response_rows.get_response("alice", kept.id) == winner


async def test_pages_follow_ids_both_ways_and_filter_on_model(response_rows: ResponseRows) -> None:
    made = [response(n=n, model="a" if n % 2 else "b") for n in range(5)]
    for each in made:
        await response_rows.insert_response(each)
    await response_rows.insert_response(response("bob", n=9))
    ids = [r.id for r in made]
    assert await page_ids(response_rows) == (ids, False)
    assert await page_ids(response_rows, order="desc", limit=2) == (ids[:2:-1], True)
    assert await page_ids(response_rows, order="desc", after=ids[3]) == (ids[2::-1], False)
    assert await page_ids(response_rows, after=ids[1], limit=2) == (ids[2:4], True)
    assert await page_ids(response_rows, after=ids[2], limit=2) == (ids[3:], False)
    assert await page_ids(response_rows, model="a") == ([ids[1], ids[3]], False)
    assert await page_ids(response_rows, model="b", order="desc", after=ids[4], limit=1) == ([ids[2]], True)
    assert await page_ids(response_rows, after="resp_unknown") == ([], False)
    theirs = (await page_ids(response_rows, "bob"))[0][0]
    assert await page_ids(response_rows, after=theirs, order="desc") == ([], False)


async def test_a_megabyte_response_round_trips(response_rows: ResponseRows) -> None:
    text = "✓" + "x" * (1 << 20)
    kept = shown(response(), "completed", text=text)
    await response_rows.insert_response(kept)
    assert await response_rows.get_response("alice", kept.id) == kept
    page = await response_rows.list_responses("alice", after=None, limit=1, order="asc", model=None)
    assert page.items == [kept]
