"""Agent rows in SQL (``core.ports.agents``). Configurations and turns are JSON as text. A session's turns
are numbered by ``seq`` within it: an append first bumps the session's ``last_seq`` (which says whether
the session exists, and on PostgreSQL locks its row until the append commits), then inserts the turn
after the last. Deletions go down from the row that owns the rest (the agent, then its sessions, whose
rows they lock, then their turns), so an append that raced a deletion either lands before it, and goes
with it, or finds its session gone. Agents and sessions list in ``(created_at, id)`` order."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

import sqlalchemy as sa

from ...core.records import AgentRecord, AgentSessionRecord, Page, TurnRecord
from .engine import SqlDatabase
from .schema import agent_sessions as sessions
from .schema import agent_turns, agents


def _agent(row: sa.Row[Any]) -> AgentRecord:
    return AgentRecord(id=row.id, tenant=row.tenant, created_at=row.created_at, config=json.loads(row.config))


def _session(row: sa.Row[Any]) -> AgentSessionRecord:
    return AgentSessionRecord(
        id=row.id, tenant=row.tenant, agent_id=row.agent_id, name=row.name, started_at=row.started_at
    )


def _turn(row: sa.Row[Any]) -> TurnRecord:
    return TurnRecord(
        id=row.turn_id,
        tenant=row.tenant,
        session_id=row.session_id,
        status=row.status,
        turn=json.loads(row.turn),
        pending=None if row.pending is None else json.loads(row.pending),
        revision=row.revision,
    )


def _pending(turn: TurnRecord) -> str | None:
    return None if turn.pending is None else json.dumps(turn.pending)


def _its_agent(tenant: str, agent_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(agents.c.tenant == tenant, agents.c.id == agent_id)


def _its_session(tenant: str, session_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(sessions.c.tenant == tenant, sessions.c.id == session_id)


def _page(rows: Sequence[sa.Row[Any]], limit: int) -> tuple[Sequence[sa.Row[Any]], bool]:
    return rows[:limit], len(rows) > limit


def _delete_turns(conn: sa.Connection, tenant: str, session_ids: Sequence[str]) -> None:
    if session_ids:
        conn.execute(
            agent_turns.delete().where(
                agent_turns.c.tenant == tenant, agent_turns.c.session_id.in_(session_ids)
            )
        )


class SqlAgentRows:
    def __init__(self, database: SqlDatabase) -> None:
        self._db = database.runner

    # Agents

    async def insert_agent(self, agent: AgentRecord) -> None:
        values = {
            "id": agent.id,
            "tenant": agent.tenant,
            "created_at": agent.created_at,
            "config": json.dumps(agent.config),
        }
        await self._db.write(lambda conn: conn.execute(agents.insert(), values))

    async def get_agent(self, tenant: str, agent_id: str) -> AgentRecord | None:
        query = agents.select().where(_its_agent(tenant, agent_id))
        row = await self._db.read_point(lambda conn: conn.execute(query).first())
        return None if row is None else _agent(row)

    async def list_agents(self, tenant: str, *, start: int, limit: int) -> Page[AgentRecord]:
        query = (
            agents.select()
            .where(agents.c.tenant == tenant)
            .order_by(agents.c.created_at, agents.c.id)
            .offset(start)
            .limit(limit + 1)
        )
        rows, more = _page(await self._db.read(lambda conn: list(conn.execute(query).all())), limit)
        return Page([_agent(row) for row in rows], more)

    async def delete_agent(self, tenant: str, agent_id: str) -> bool:
        def work(conn: sa.Connection) -> bool:
            if conn.execute(agents.delete().where(_its_agent(tenant, agent_id))).rowcount != 1:
                return False
            gone = sessions.delete().where(sessions.c.tenant == tenant, sessions.c.agent_id == agent_id)
            _delete_turns(conn, tenant, list(conn.execute(gone.returning(sessions.c.id)).scalars()))
            return True

        return await self._db.write(work)

    # Sessions

    async def insert_session(self, session: AgentSessionRecord) -> bool:
        agent = sa.select(agents.c.id).where(_its_agent(session.tenant, session.agent_id)).with_for_update()
        values = {
            "id": session.id,
            "tenant": session.tenant,
            "agent_id": session.agent_id,
            "name": session.name,
            "started_at": session.started_at,
            "last_seq": 0,
        }

        def work(conn: sa.Connection) -> bool:
            if conn.execute(agent).first() is None:
                return False
            conn.execute(sessions.insert(), values)
            return True

        return await self._db.write(work)

    async def get_session(self, tenant: str, agent_id: str, session_id: str) -> AgentSessionRecord | None:
        query = sessions.select().where(_its_session(tenant, session_id), sessions.c.agent_id == agent_id)
        row = await self._db.read_point(lambda conn: conn.execute(query).first())
        return None if row is None else _session(row)

    async def list_sessions(
        self, tenant: str, agent_id: str, *, start: int, limit: int
    ) -> Page[AgentSessionRecord]:
        query = (
            sessions.select()
            .where(sessions.c.tenant == tenant, sessions.c.agent_id == agent_id)
            .order_by(sessions.c.started_at, sessions.c.id)
            .offset(start)
            .limit(limit + 1)
        )
        rows, more = _page(await self._db.read(lambda conn: list(conn.execute(query).all())), limit)
        return Page([_session(row) for row in rows], more)

    async def delete_session(self, tenant: str, agent_id: str, session_id: str) -> bool:
        statement = sessions.delete().where(_its_session(tenant, session_id), sessions.c.agent_id == agent_id)

        def work(conn: sa.Connection) -> bool:
            if conn.execute(statement).rowcount != 1:
                return False
            _delete_turns(conn, tenant, [session_id])
            return True

        return await self._db.write(work)

    # Turns

    async def append_turn(self, turn: TurnRecord) -> bool:
        bump = (
            sessions.update()
            .where(_its_session(turn.tenant, turn.session_id))
            .values(last_seq=sessions.c.last_seq + 1)
            .returning(sessions.c.last_seq)
        )
        values = {
            "session_id": turn.session_id,
            "tenant": turn.tenant,
            "turn_id": turn.id,
            "status": turn.status,
            "turn": json.dumps(turn.turn),
            "pending": _pending(turn),
            "revision": turn.revision,
        }

        def work(conn: sa.Connection) -> bool:
            seq = conn.execute(bump).scalar()
            if seq is None:
                return False
            conn.execute(agent_turns.insert(), {**values, "seq": seq})
            return True

        return await self._db.write(work)

    async def replace_turn(self, turn: TurnRecord, revision: int) -> bool:
        statement = (
            agent_turns.update()
            .where(
                agent_turns.c.tenant == turn.tenant,
                agent_turns.c.session_id == turn.session_id,
                agent_turns.c.turn_id == turn.id,
                agent_turns.c.revision == revision,
            )
            .values(
                status=turn.status,
                turn=json.dumps(turn.turn),
                pending=_pending(turn),
                revision=revision + 1,
            )
        )
        return await self._db.write(lambda conn: conn.execute(statement).rowcount == 1)

    async def get_turn(self, tenant: str, session_id: str, turn_id: str) -> TurnRecord | None:
        query = agent_turns.select().where(
            agent_turns.c.tenant == tenant,
            agent_turns.c.session_id == session_id,
            agent_turns.c.turn_id == turn_id,
        )
        row = await self._db.read_point(lambda conn: conn.execute(query).first())
        return None if row is None else _turn(row)

    async def turns(
        self, tenant: str, session_id: str, turn_ids: Collection[str] | None = None
    ) -> list[TurnRecord]:
        query = agent_turns.select().where(
            agent_turns.c.tenant == tenant, agent_turns.c.session_id == session_id
        )
        if turn_ids is not None:
            query = query.where(agent_turns.c.turn_id.in_(list(turn_ids)))
        query = query.order_by(agent_turns.c.seq)
        rows = await self._db.read(lambda conn: list(conn.execute(query).all()))
        return [_turn(row) for row in rows]
