"""The ``AgentRows`` contract (``core/ports/agents.py``), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace

import pytest
from _adapters import on

from cairn.core.ports.agents import AgentRows
from cairn.core.records import AgentRecord, AgentSessionRecord, TurnRecord

pytestmark = [pytest.mark.anyio, on("sqlite", "postgres")]

NOW = 1_800_000_000.25


def agent(tenant: str = "alice", at: float = NOW) -> AgentRecord:
    return AgentRecord(str(uuid.uuid4()), tenant, at, {"model": "m", "instructions": "Be brief ✓"})


def session(of: AgentRecord, name: str = "chat", at: float = NOW) -> AgentSessionRecord:
    return AgentSessionRecord(str(uuid.uuid4()), of.tenant, of.id, name, at)


def turn(of: AgentSessionRecord, text: str, status: str = "completed") -> TurnRecord:
    turn_id = str(uuid.uuid4())
    shown = {"turn_id": turn_id, "session_id": of.id, "input_messages": [{"role": "user", "content": text}]}
    return TurnRecord(turn_id, of.tenant, of.id, status, shown)


def texts(turns: list[TurnRecord]) -> list[str]:
    return [t.turn["input_messages"][0]["content"] for t in turns]


async def test_agents_sessions_and_turns_are_their_tenants_alone(agent_rows: AgentRows) -> None:
    rows = agent_rows
    mine = agent()
    await rows.insert_agent(mine)
    chat = session(mine)
    assert await rows.insert_session(chat) is True
    first = turn(chat, "hello")
    assert await rows.append_turn(first) is True
    assert await rows.get_agent("alice", mine.id) == mine
    assert await rows.get_session("alice", mine.id, chat.id) == chat
    assert await rows.get_turn("alice", chat.id, first.id) == first
    assert await rows.get_agent("bob", mine.id) is None
    assert (await rows.list_agents("bob", start=0, limit=10)).items == []
    assert await rows.insert_session(session(agent("bob"))) is False  # bob has no such agent
    assert await rows.insert_session(AgentSessionRecord("s", "bob", mine.id, "x", NOW)) is False
    assert await rows.get_session("bob", mine.id, chat.id) is None
    assert (await rows.list_sessions("bob", mine.id, start=0, limit=10)).items == []
    assert await rows.append_turn(TurnRecord("t", "bob", chat.id, "completed", {})) is False
    assert await rows.get_turn("bob", chat.id, first.id) is None
    assert await rows.turns("bob", chat.id) == []
    assert await rows.replace_turn(TurnRecord(first.id, "bob", chat.id, "completed", {}), 0) is False
    assert await rows.delete_session("bob", mine.id, chat.id) is False
    assert await rows.delete_agent("bob", mine.id) is False
    assert await rows.turns("alice", chat.id) == [first]


async def test_a_session_is_found_only_through_its_agent(agent_rows: AgentRows) -> None:
    rows = agent_rows
    one, other = agent(), agent()
    await rows.insert_agent(one)
    await rows.insert_agent(other)
    chat = session(one)
    await rows.insert_session(chat)
    assert await rows.get_session("alice", other.id, chat.id) is None
    assert await rows.delete_session("alice", other.id, chat.id) is False
    assert await rows.get_session("alice", one.id, chat.id) == chat


async def test_turns_keep_their_order_and_filter_in_it(agent_rows: AgentRows) -> None:
    rows = agent_rows
    mine = agent()
    await rows.insert_agent(mine)
    chat = session(mine)
    await rows.insert_session(chat)
    made = [turn(chat, f"turn {n}") for n in range(12)]  # random ids: any order by id would shuffle them
    for each in made:
        assert await rows.append_turn(each)
    assert texts(await rows.turns("alice", chat.id)) == [f"turn {n}" for n in range(12)]
    picked = {made[9].id, made[2].id, made[5].id}
    assert texts(await rows.turns("alice", chat.id, picked)) == ["turn 2", "turn 5", "turn 9"]
    assert await rows.turns("alice", chat.id, []) == []


async def test_concurrent_appends_to_one_session_all_land_in_turn(agent_rows: AgentRows) -> None:
    rows = agent_rows
    mine = agent()
    await rows.insert_agent(mine)
    chat = session(mine)
    await rows.insert_session(chat)
    made = [turn(chat, f"turn {n}") for n in range(8)]
    assert all(await asyncio.gather(*(rows.append_turn(each) for each in made)))
    kept = await rows.turns("alice", chat.id)
    assert sorted(texts(kept)) == sorted(texts(made))


async def test_a_turn_is_replaced_only_at_the_revision_read(agent_rows: AgentRows) -> None:
    rows = agent_rows
    mine = agent()
    await rows.insert_agent(mine)
    chat = session(mine)
    await rows.insert_session(chat)
    paused = replace(turn(chat, "weather?", "awaiting_input"), pending={"step": {"step_id": "s1"}})
    await rows.append_turn(paused)
    done = TurnRecord(paused.id, "alice", chat.id, "completed", {**paused.turn, "steps": [1]})
    assert await rows.replace_turn(done, revision=0) is True
    assert await rows.replace_turn(done, revision=0) is False  # a second resume of the same pause
    kept = await rows.get_turn("alice", chat.id, paused.id)
    assert kept == TurnRecord(paused.id, "alice", chat.id, "completed", done.turn, None, revision=1)


async def test_agents_and_sessions_list_in_creation_order_by_index(agent_rows: AgentRows) -> None:
    rows = agent_rows
    tenant = "carol-" + uuid.uuid4().hex
    made = [agent(tenant, NOW + n) for n in range(5)]
    for each in reversed(made):
        await rows.insert_agent(each)
    first = await rows.list_agents(tenant, start=0, limit=2)
    assert [a.id for a in first.items] == [a.id for a in made[:2]] and first.has_more
    last = await rows.list_agents(tenant, start=3, limit=2)
    assert [a.id for a in last.items] == [a.id for a in made[3:]] and not last.has_more
    assert (await rows.list_agents(tenant, start=5, limit=2)).items == []
    chats = [session(made[0], f"s{n}", NOW + n) for n in range(3)]
    for each in reversed(chats):
        await rows.insert_session(each)
    listed = await rows.list_sessions(tenant, made[0].id, start=1, limit=5)
    assert [s.name for s in listed.items] == ["s1", "s2"] and not listed.has_more


async def test_deleting_goes_down_to_the_turns(agent_rows: AgentRows) -> None:
    rows = agent_rows
    mine = agent()
    await rows.insert_agent(mine)
    kept, dropped = session(mine, "kept"), session(mine, "dropped")
    for chat in (kept, dropped):
        await rows.insert_session(chat)
        await rows.append_turn(turn(chat, chat.name))
    assert await rows.delete_session("alice", mine.id, dropped.id) is True
    assert await rows.turns("alice", dropped.id) == []
    assert await rows.append_turn(turn(dropped, "late")) is False
    assert texts(await rows.turns("alice", kept.id)) == ["kept"]
    assert await rows.delete_agent("alice", mine.id) is True
    assert await rows.get_agent("alice", mine.id) is None
    assert await rows.get_session("alice", mine.id, kept.id) is None
    assert await rows.turns("alice", kept.id) == []
    assert await rows.insert_session(session(mine)) is False
    assert await rows.delete_agent("alice", mine.id) is False
