"""The Agents service (``core.agents.service``) on the embedded SmolLM2, greedy: a turn's context is the
session's earlier turns in order, a turn left early keeps nothing, and of two resumes of one pause only
the first is kept."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from _agent_configs import WEATHER, config, said

from cairn.compose import Composition, composed
from cairn.core.agents.service import Agents
from cairn.core.errors import Conflict
from cairn.settings import Settings

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def composition(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Composition]:
    data = tmp_path_factory.mktemp("agents")
    async with composed(Settings(data_dir=data, rate_limits=False, chat_context=2048)) as built:
        yield built


@pytest.fixture(scope="module")
def agents(composition: Composition) -> Agents:
    return composition.services.agents


async def test_a_turn_reads_the_sessions_earlier_turns_in_order(agents: Agents) -> None:
    agent = await agents.create(
        "t", config(sampling_params={"strategy": {"type": "greedy"}, "max_tokens": 3})
    )
    session = await agents.create_session("t", agent.id, "history")
    first = await agents.finish(
        await agents.start_turn("t", agent.id, session.id, {"messages": [said("one")]})
    )
    second = await agents.start_turn("t", agent.id, session.id, {"messages": [said("two")]})
    assert second.loop_request.messages == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": first["output_message"]["content"] or None},
        {"role": "user", "content": "two"},
    ]
    assert second.loop_request.sampling == {"temperature": 0.0, "max_tokens": 3}


async def test_a_turn_left_before_its_end_keeps_nothing(agents: Agents) -> None:
    agent = await agents.create("t", config())
    session = await agents.create_session("t", agent.id, "left")
    run = await agents.start_turn("t", agent.id, session.id, {"messages": [said("Tell me a story.")]})
    events = agents.events(run)
    assert (await anext(events))["event_type"] == "turn_start"
    assert (await anext(events))["event_type"] == "step_start"
    await events.aclose()
    assert (await agents.get_session("t", agent.id, session.id))[1] == []


async def test_of_two_resumes_of_one_pause_the_second_is_refused(agents: Agents) -> None:
    forced = config(client_tools=[WEATHER], tool_config={"tool_choice": "get_weather"}, max_infer_iters=2)
    agent = await agents.create("t", forced)
    session = await agents.create_session("t", agent.id, "race")
    ask = {"messages": [said("Weather in Paris?")]}
    paused = await agents.finish(await agents.start_turn("t", agent.id, session.id, ask))
    call = paused["output_message"]["tool_calls"][0]
    answer = [{"call_id": call["call_id"], "tool_name": "get_weather", "content": "Sunny", "metadata": None}]
    first = await agents.resume("t", agent.id, session.id, paused["turn_id"], answer)
    second = await agents.resume("t", agent.id, session.id, paused["turn_id"], answer)
    assert first.loop_request.tool_choice == "auto" and first.loop_request.max_steps == 1
    done = await agents.finish(first)
    with pytest.raises(Conflict):
        await agents.finish(second)
    assert await agents.get_turn("t", agent.id, session.id, paused["turn_id"]) == done
    assert [step["step_type"] for step in done["steps"]] == ["inference", "tool_execution", "inference"]
