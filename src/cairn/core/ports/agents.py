"""Agent rows: the agents of Llama Stack's Agents API, their sessions, and the turns of each session, in
order. Used by ``core.agents.service``; implemented by ``adapters.sql.agents``.

Invariants:
- Every read and write names the tenant: a tenant never sees, changes or counts another's rows.
- A session belongs to one agent and is found only through it; deleting an agent deletes its sessions
  and their turns, and deleting a session its turns, each in one transaction. A session is never added
  to an agent that is gone, nor a turn to a session that is gone.
- A session's turns keep the order they were appended in (``append_turn``), whatever the backend:
  ``turns`` returns them in that order, the oldest first. Appends to one session are serialised.
- ``replace_turn`` writes a turn only if its row is still at the ``revision`` the caller read, and
  bumps it: of two writers of one turn, the second finds it changed.
- Agents and sessions list in creation order, ``start`` rows skipped (``start_index``), at most
  ``limit``, with ``has_more`` when rows lie beyond the page.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from ..records import AgentRecord, AgentSessionRecord, Page, TurnRecord


class AgentRows(Protocol):
    async def insert_agent(self, agent: AgentRecord) -> None: ...

    async def get_agent(self, tenant: str, agent_id: str) -> AgentRecord | None: ...

    async def list_agents(self, tenant: str, *, start: int, limit: int) -> Page[AgentRecord]: ...

    async def delete_agent(self, tenant: str, agent_id: str) -> bool:
        """The agent, its sessions and their turns; False if there is no such agent."""

    async def insert_session(self, session: AgentSessionRecord) -> bool:
        """False (nothing written) if the session's agent is not there."""

    async def get_session(self, tenant: str, agent_id: str, session_id: str) -> AgentSessionRecord | None:
        """None if there is no such session of this agent."""

    async def list_sessions(
        self, tenant: str, agent_id: str, *, start: int, limit: int
    ) -> Page[AgentSessionRecord]: ...

    async def delete_session(self, tenant: str, agent_id: str, session_id: str) -> bool:
        """The session and its turns; False if there is no such session of this agent."""

    async def append_turn(self, turn: TurnRecord) -> bool:
        """The turn after the session's last; False (nothing written) if the session is not there."""

    async def replace_turn(self, turn: TurnRecord, revision: int) -> bool:
        """Replace the turn's status, object and pending state if its row is at ``revision``; False if
        it is not (or there is no such turn)."""

    async def get_turn(self, tenant: str, session_id: str, turn_id: str) -> TurnRecord | None: ...

    async def turns(
        self, tenant: str, session_id: str, turn_ids: Collection[str] | None = None
    ) -> list[TurnRecord]:
        """The session's turns in order, the oldest first; only those of ``turn_ids`` when given."""
