"""Llama Stack's Agents API on the agent loop: the service the face calls.

An agent is a saved configuration (``AgentConfig``, checked whole when it is created: its model, its
tools, its settings); a session holds a conversation with it; each turn of a session runs the loop on
the session's context and keeps the ``Turn``: its input messages, its steps, its output message.

A turn runs in two parts, so that a request the server refuses is refused with a status code before any
event: ``start_turn`` (or ``resume``) checks everything and returns a ``TurnRun``; ``events`` runs it
and yields the stream payloads, ``finish`` runs it whole and returns the turn.

- Context: the agent's ``instructions``, then every earlier turn of the session in order (as
  ``messages.turn_messages`` rebuilds it), then the new messages.
- Documents: a turn's ``documents`` go into the session's memory (``memory``) when the turn starts;
  a turn of a session with memory starts with a ``memory_retrieval`` step, whose context its last user
  message carries (``context``). The memory goes with the session.
- Tools: the agent's client tools, and the tools of its tool groups and of the turn's
  (``toolgroups``); the turn's ``tool_config`` in place of the agent's. The MCP servers of the groups
  get the request's ``McpHeaders``, each its own, for the run only: a resume brings its own.
- A call of a client tool pauses the turn (``turn_awaiting_input``): it is kept ``awaiting_input`` with
  an in-progress ``tool_execution`` step, and ``resume`` with the client's ``tool_responses`` (one per
  pending call, no other) completes that step and runs on, as the same turn. ``max_infer_iters`` bounds
  the inference steps of the whole turn, across its resumes; a forced ``tool_choice`` holds for its
  first step only.
- Shields (``core.shields``): the agent's input shields check a new turn's messages before the loop
  runs, its output shields the answer of a turn that ends (not one that pauses), each check a
  ``shield_call`` step; a violation ends the turn there, with the refusal as its ``output_message``.
  The loop knows nothing of them.
- A turn is kept when it ends or pauses, after the last of its steps and before the payload that says
  so; a turn that fails or whose client leaves keeps nothing (a resume that fails leaves the turn
  awaiting input, to be resumed again). Of two resumes of one pause, the second to end is refused.
"""

from __future__ import annotations

import builtins
import contextlib
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Collection
from dataclasses import dataclass, field

from ..errors import Conflict, InvalidInput, NotFound
from ..inference.router import InferenceRouter
from ..ports.agents import AgentRows
from ..ports.inference import Json, ModelType
from ..records import AgentRecord, AgentSessionRecord, Page, ShieldRecord, TurnRecord
from ..safety import violation
from ..shields import Shields
from . import config as agent_config
from .loop import AgentLoop, LoopDone, LoopRequest, ServerTool
from .mcp_tools import NO_HEADERS, McpHeaders
from .memory import SessionMemory
from .messages import as_text, input_message, turn_messages
from .registry import ToolGroups
from .steps import TurnSteps, iso, seconds, step_complete

MAX_PAGE = 100


@dataclass(frozen=True)
class TurnTools:
    """What a turn offers the model, from its agent's configuration and its own settings."""

    functions: list[Json]  # the client's tools
    server: dict[str, ServerTool]
    choice: str | Json


@dataclass
class TurnRun:
    tenant: str
    session_id: str
    turn_id: str
    input_messages: list[Json]
    started_at: float
    steps: TurnSteps
    opening: list[Json]  # the payloads before the loop's: ``turn_start``, or the resumed step's completion
    loop_request: LoopRequest
    overrides: Json  # the turn's own ``toolgroups`` and ``tool_config``, for its resumes
    revision: int | None = None  # of the row a resume read; None for a new turn
    turn: Json | None = None  # the Turn as it ended
    tokens: int = 0  # read and written by the model over the run's steps, once it ended
    input_shields: list[ShieldRecord] = field(default_factory=list)  # none on a resume
    output_shields: list[ShieldRecord] = field(default_factory=list)


class Agents:
    def __init__(
        self,
        rows: AgentRows,
        loop: AgentLoop,
        inference: InferenceRouter,
        memory: SessionMemory,
        tool_groups: ToolGroups,
        shields: Shields,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rows = rows
        self._loop = loop
        self._inference = inference
        self._memory = memory
        self._tool_groups = tool_groups
        self._shields = shields
        self._clock = clock

    # Agents

    async def create(self, tenant: str, config: Json, headers: McpHeaders = NO_HEADERS) -> AgentRecord:
        """``config``: an ``AgentConfig`` as the face completed it; refused (``InvalidInput``) unless
        this server can honour every setting."""
        try:
            await self._inference.catalog.get(config["model"], ModelType.LLM, tenant=tenant)
        except NotFound:
            raise InvalidInput(
                f"The model `{config['model']}` is not available.", param="agent_config.model"
            ) from None
        await self._tools(tenant, config, {}, "agent_config", headers)
        await self._shields_of(tenant, config)
        agent = AgentRecord(str(uuid.uuid4()), tenant, self._clock(), config)
        await self.rows.insert_agent(agent)
        return agent

    async def get(self, tenant: str, agent_id: str) -> AgentRecord:
        agent = await self.rows.get_agent(tenant, agent_id)
        if agent is None:
            raise NotFound(f"Agent '{agent_id[:80]}' not found.", param="agent_id")
        return agent

    async def list(self, tenant: str, *, start_index: int, limit: int) -> Page[AgentRecord]:
        _limit(limit)
        return await self.rows.list_agents(tenant, start=start_index, limit=limit)

    async def delete(self, tenant: str, agent_id: str) -> None:
        """The agent, its sessions, their turns and their memory."""
        sessions: builtins.list[AgentSessionRecord] = []
        while True:
            page = await self.rows.list_sessions(tenant, agent_id, start=len(sessions), limit=MAX_PAGE)
            sessions += page.items
            if not page.has_more:
                break
        if not await self.rows.delete_agent(tenant, agent_id):
            raise NotFound(f"Agent '{agent_id[:80]}' not found.", param="agent_id")
        await self._memory.forget(tenant, sessions)

    # Sessions

    async def create_session(self, tenant: str, agent_id: str, name: str) -> AgentSessionRecord:
        session = AgentSessionRecord(str(uuid.uuid4()), tenant, agent_id, name, self._clock())
        if not await self.rows.insert_session(session):
            raise NotFound(f"Agent '{agent_id[:80]}' not found.", param="agent_id")
        return session

    async def list_sessions(
        self, tenant: str, agent_id: str, *, start_index: int, limit: int
    ) -> Page[AgentSessionRecord]:
        _limit(limit)
        await self.get(tenant, agent_id)
        return await self.rows.list_sessions(tenant, agent_id, start=start_index, limit=limit)

    async def get_session(
        self, tenant: str, agent_id: str, session_id: str, turn_ids: Collection[str] | None = None
    ) -> tuple[AgentSessionRecord, builtins.list[Json]]:
        """The session and its turns in order (those of ``turn_ids`` only, when given)."""
        session = await self._session(tenant, agent_id, session_id)
        turns = await self.rows.turns(tenant, session_id, turn_ids)
        return session, [turn.turn for turn in turns]

    async def delete_session(self, tenant: str, agent_id: str, session_id: str) -> None:
        """The session, its turns and its memory."""
        session = await self._session(tenant, agent_id, session_id)
        if not await self.rows.delete_session(tenant, agent_id, session_id):
            raise _no_session(session_id)  # deleted meanwhile
        await self._memory.forget(tenant, [session])

    # Turns and steps

    async def get_turn(self, tenant: str, agent_id: str, session_id: str, turn_id: str) -> Json:
        return (await self._turn(tenant, agent_id, session_id, turn_id)).turn

    async def get_step(self, tenant: str, agent_id: str, session_id: str, turn_id: str, step_id: str) -> Json:
        """A step of the turn; while the turn awaits input, its in-progress ``tool_execution`` step too."""
        row = await self._turn(tenant, agent_id, session_id, turn_id)
        steps = [*row.turn["steps"], *([row.pending["step"]] if row.pending else [])]
        step: Json | None = next((step for step in steps if step["step_id"] == step_id), None)
        if step is None:
            raise NotFound(f"Step '{step_id[:80]}' not found in turn '{turn_id[:80]}'.", param="step_id")
        return step

    async def start_turn(
        self, tenant: str, agent_id: str, session_id: str, request: Json, headers: McpHeaders = NO_HEADERS
    ) -> TurnRun:
        """``request``: the turn's ``messages`` (user and tool-response messages), its ``documents``
        and its own ``toolgroups`` and ``tool_config``; everything checked, nothing run or written yet
        but the documents, remembered in the session's memory, from which the turn retrieves."""
        agent = await self.get(tenant, agent_id)
        session = await self._session(tenant, agent_id, session_id)
        overrides = {"toolgroups": request.get("toolgroups") or [], "tool_config": request.get("tool_config")}
        tools = await self._tools(tenant, agent.config, overrides, "agent_config", headers)
        history = [
            message
            for turn in await self.rows.turns(tenant, session_id)
            for message in turn_messages(turn.turn)
        ]
        input_shields, output_shields = await self._shields_of(tenant, agent.config)
        turn_id, started_at = str(uuid.uuid4()), self._clock()
        if request.get("documents"):
            await self._memory.remember(tenant, session, request["documents"])
        recalled = await self._memory.recall(tenant, session, turn_id, request["messages"])
        messages = [*history, *(input_message(message) for message in recalled.input_messages)]
        return TurnRun(
            tenant=tenant,
            session_id=session_id,
            turn_id=turn_id,
            input_messages=recalled.input_messages,
            started_at=started_at,
            steps=TurnSteps(turn_id, recalled.steps, agent.config["max_infer_iters"], self._clock),
            opening=[{"event_type": "turn_start", "turn_id": turn_id}, *recalled.payloads],
            loop_request=self._loop_request(tenant, agent.config, tools, messages, tools.choice, 0),
            overrides=overrides,
            input_shields=input_shields,
            output_shields=output_shields,
        )

    async def resume(
        self,
        tenant: str,
        agent_id: str,
        session_id: str,
        turn_id: str,
        tool_responses: builtins.list[Json],
        headers: McpHeaders = NO_HEADERS,
    ) -> TurnRun:
        """Continue a turn that awaits the client's tool results with them, as the same turn."""
        agent = await self.get(tenant, agent_id)
        row = await self._turn(tenant, agent_id, session_id, turn_id)
        if row.status != "awaiting_input" or row.pending is None:
            raise InvalidInput(f"Turn '{turn_id}' is not awaiting input.", param="turn_id")
        pending = row.pending["step"]
        done = {
            **pending,
            "tool_responses": _answers(pending["tool_calls"], tool_responses),
            "completed_at": iso(self._clock()),
        }
        steps = [*row.turn["steps"], done]
        overrides = row.pending["overrides"]
        tools = await self._tools(tenant, agent.config, overrides, "agent_config", headers)
        earlier = []
        for turn in await self.rows.turns(tenant, session_id):
            if turn.id == turn_id:
                break
            earlier += turn_messages(turn.turn)
        messages = [*earlier, *turn_messages({**row.turn, "steps": steps}, current=True)]
        turn_steps = TurnSteps(turn_id, steps, agent.config["max_infer_iters"], self._clock)
        _, output_shields = await self._shields_of(tenant, agent.config)
        return TurnRun(
            tenant=tenant,
            session_id=session_id,
            turn_id=turn_id,
            input_messages=row.turn["input_messages"],
            started_at=seconds(row.turn["started_at"]),
            steps=turn_steps,
            opening=[step_complete(done)],
            loop_request=self._loop_request(
                tenant, agent.config, tools, messages, "auto", turn_steps.inferences
            ),
            overrides=overrides,
            revision=row.revision,
            output_shields=output_shields,
        )

    async def events(self, run: TurnRun) -> AsyncGenerator[Json, None]:
        """The turn's stream payloads, from its first to ``turn_complete`` or ``turn_awaiting_input``;
        a failure is raised (after the payloads before it)."""
        for payload in run.opening:
            yield payload
        refusal = None
        if run.input_shields:
            yield run.steps.shield_started("user-input")
            said = [(message["role"], as_text(message["content"])) for message in run.input_messages]
            refusal = await self._shield_check(run, run.input_shields, said)
            yield run.steps.shield_done(refusal)
        if refusal is None:
            done = None
            events = self._loop.run(run.loop_request)
            async with contextlib.aclosing(events):
                async for event in events:
                    for payload in run.steps.on(event):
                        yield payload
                    done = event
            assert isinstance(done, LoopDone)  # every run ends with it
            run.tokens += done.usage["total_tokens"]
            ending = run.steps.ending(done)
            if ending.pending_step is None and run.output_shields:
                yield run.steps.shield_started("assistant-output")
                answer = [("assistant", as_text(ending.output_message["content"]))]
                refusal = await self._shield_check(run, run.output_shields, answer)
                yield run.steps.shield_done(refusal)
        if refusal is not None:
            ending = run.steps.refused(refusal)
        run.turn = {
            "turn_id": run.turn_id,
            "session_id": run.session_id,
            "input_messages": run.input_messages,
            "steps": run.steps.steps,
            "output_message": ending.output_message,
            "output_attachments": [],
            "started_at": iso(run.started_at),
            "completed_at": iso(self._clock()) if ending.pending_step is None else None,
        }
        pending = (
            None if ending.pending_step is None else {"step": ending.pending_step, "overrides": run.overrides}
        )
        await self._keep(
            run, TurnRecord(run.turn_id, run.tenant, run.session_id, ending.status, run.turn, pending)
        )
        kind = "turn_complete" if ending.pending_step is None else "turn_awaiting_input"
        yield {"event_type": kind, "turn": run.turn}

    async def finish(self, run: TurnRun) -> Json:
        """Run it whole: the turn as it ended (or paused)."""
        async for _ in self.events(run):
            pass
        assert run.turn is not None
        return run.turn

    # Internals

    async def _session(self, tenant: str, agent_id: str, session_id: str) -> AgentSessionRecord:
        session = await self.rows.get_session(tenant, agent_id, session_id)
        if session is None:
            await self.get(tenant, agent_id)
            raise _no_session(session_id)
        return session

    async def _turn(self, tenant: str, agent_id: str, session_id: str, turn_id: str) -> TurnRecord:
        await self._session(tenant, agent_id, session_id)
        row = await self.rows.get_turn(tenant, session_id, turn_id)
        if row is None:
            raise NotFound(f"Turn '{turn_id[:80]}' not found in session '{session_id}'.", param="turn_id")
        return row

    async def _shields_of(
        self, tenant: str, config: Json
    ) -> tuple[builtins.list[ShieldRecord], builtins.list[ShieldRecord]]:
        """The agent's input and output shields; an unknown one is ``InvalidInput``."""
        return (
            await self._shields.resolve(
                tenant, config.get("input_shields") or [], "agent_config.input_shields"
            ),
            await self._shields.resolve(
                tenant, config.get("output_shields") or [], "agent_config.output_shields"
            ),
        )

    async def _shield_check(
        self, run: TurnRun, shields: builtins.list[ShieldRecord], conversation: builtins.list[tuple[str, str]]
    ) -> Json | None:
        """The violation the shields found, if any."""
        verdict = await self._shields.check(run.tenant, shields, conversation)
        run.tokens += verdict.tokens
        return violation(verdict)

    async def _tools(
        self, tenant: str, config: Json, overrides: Json, param: str, headers: McpHeaders
    ) -> TurnTools:
        """The turn's tools, checked: the agent's, and the turn's own ``toolgroups`` and
        ``tool_config``."""
        agent_config.check_tool_config(config.get("tool_config") or {}, f"{param}.tool_config")
        groups = self._tool_groups
        server = await groups.server_tools(
            tenant, config.get("toolgroups") or [], f"{param}.toolgroups", headers
        )
        for name, tool in (
            await groups.server_tools(tenant, overrides.get("toolgroups") or [], "toolgroups", headers)
        ).items():
            if name in server:
                raise InvalidInput(f"The tool `{name}` is named twice.", param="toolgroups")
            server[name] = tool
        functions = agent_config.client_functions(config.get("client_tools") or [], f"{param}.client_tools")
        names = [function["function"]["name"] for function in functions]
        clash = next((name for name in names if name in server or names.count(name) > 1), None)
        if clash is not None:
            raise InvalidInput(f"The tool `{clash}` is named twice.", param=f"{param}.client_tools")
        tool_config, where = config.get("tool_config") or {}, f"{param}.tool_config"
        if overrides.get("tool_config") is not None:
            tool_config, where = overrides["tool_config"], "tool_config"
            agent_config.check_tool_config(tool_config, where)
        choice = agent_config.tool_choice(
            tool_config.get("tool_choice"), [*names, *server], f"{where}.tool_choice"
        )
        return TurnTools(functions, server, choice)

    def _loop_request(
        self,
        tenant: str,
        config: Json,
        tools: TurnTools,
        messages: builtins.list[Json],
        choice: str | Json,
        spent: int,
    ) -> LoopRequest:
        """The loop's request, with the inference steps left to the turn (``spent`` of them ran: a
        turn pauses only with steps left)."""
        instructions = (
            [{"role": "system", "content": config["instructions"]}] if config["instructions"] else []
        )
        return LoopRequest(
            tenant=tenant,
            model=config["model"],
            messages=[*instructions, *messages],
            functions=tools.functions,
            server_tools=tools.server,
            tool_choice=choice,
            max_steps=config["max_infer_iters"] - spent,
            sampling=agent_config.sampling(config),
        )

    async def _keep(self, run: TurnRun, turn: TurnRecord) -> None:
        if run.revision is None:
            if not await self.rows.append_turn(turn):
                raise _no_session(run.session_id)
        elif not await self.rows.replace_turn(turn, run.revision):
            raise Conflict(f"Turn '{run.turn_id}' was resumed meanwhile.")


def _answers(calls: list[Json], responses: list[Json]) -> list[Json]:
    """The client's ``tool_responses``, one per pending call and no other, in the calls' order."""
    by_call = {}
    for at, response in enumerate(responses):
        if response["call_id"] in by_call:
            raise InvalidInput(
                f"Call '{response['call_id']}' is answered twice.", param=f"tool_responses[{at}]"
            )
        by_call[response["call_id"]] = response
    pending = [call["call_id"] for call in calls]
    stray = next((call_id for call_id in by_call if call_id not in pending), None)
    if stray is not None:
        raise InvalidInput(f"No pending call '{stray[:80]}' in this turn.", param="tool_responses")
    missing = [call_id for call_id in pending if call_id not in by_call]
    if missing:
        raise InvalidInput(f"The pending call '{missing[0]}' has no response.", param="tool_responses")
    answers = []
    for call in calls:
        response = by_call[call["call_id"]]
        if response["tool_name"] != call["tool_name"]:
            raise InvalidInput(
                f"Call '{call['call_id']}' was of `{call['tool_name']}`, not `{response['tool_name']}`.",
                param="tool_responses",
            )
        answers.append(response)
    return answers


def _limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}.", param="limit")


def _no_session(session_id: str) -> NotFound:
    return NotFound(f"Session '{session_id[:80]}' not found.", param="session_id")
