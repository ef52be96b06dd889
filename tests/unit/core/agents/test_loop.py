"""The agent loop on the embedded SmolLM2 (temperature 0, tool calls forced where a test needs one):
events in order, Cairn's tools run between steps, a stop for the client's tools, and every bound."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cairn.compose import Composition, composed
from cairn.core.agents.loop import (
    AgentLoop,
    InferenceDone,
    LoopDone,
    LoopRequest,
    ServerTool,
    StepStarted,
    TextDelta,
    ToolCallDelta,
    ToolDone,
    ToolOutput,
    ToolStarted,
)
from cairn.core.errors import InvalidInput
from cairn.settings import Settings

pytestmark = pytest.mark.anyio

CHAT = "llama-cpp/SmolLM2-135M-Instruct"
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def function(name: str) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": CITY}}


def forced(name: str) -> dict:
    return {"type": "function", "function": {"name": name}}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def composition(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Composition]:
    data = tmp_path_factory.mktemp("loop")
    async with composed(Settings(data_dir=data, rate_limits=False, chat_context=2048)) as built:
        yield built


@pytest.fixture(scope="module")
def loop(composition: Composition) -> AgentLoop:
    return AgentLoop(composition.services.inference)


async def run(loop: AgentLoop, **fields) -> list:
    request = LoopRequest(
        **{"tenant": "t", "model": CHAT, "messages": ASK, "sampling": {"temperature": 0}, **fields}
    )
    return [event async for event in loop.run(request)]


async def test_a_text_answer_is_one_step(loop):
    events = await run(loop, max_output_tokens=6)
    assert isinstance(events[0], StepStarted) and isinstance(events[-1], LoopDone)
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    done = next(e for e in events if isinstance(e, InferenceDone))
    assert "".join(deltas) == done.text and done.finish_reason == "length" and not done.calls
    assert events[-1].status == "incomplete" and events[-1].reason == "max_output_tokens"
    assert events[-1].usage["output_tokens"] == 6
    assert events[-1].messages[-1] == {"role": "assistant", "content": done.text}


async def test_a_client_tool_call_stops_the_run(loop):
    events = await run(loop, functions=[function("get_weather")], tool_choice=forced("get_weather"))
    pieces = [e for e in events if isinstance(e, ToolCallDelta)]
    assert pieces[0].name == "get_weather" and pieces[0].call_id
    end = events[-1]
    assert end.status == "requires_action" and [c.name for c in end.pending] == ["get_weather"]
    assert "city" in end.pending[0].parsed()
    assert end.messages[-1]["tool_calls"][0]["id"] == end.pending[0].call_id


async def test_a_server_tool_runs_and_the_model_reads_its_output(loop):
    seen = []

    async def lookup(arguments: dict) -> ToolOutput:
        seen.append(arguments)
        return ToolOutput("Sunny, 24 C", details={"source": "test"})

    tool = ServerTool("lookup", function("lookup"), lookup)
    events = await run(
        loop, server_tools={"lookup": tool}, tool_choice=forced("lookup"), max_output_tokens=40
    )
    kinds = [type(e).__name__ for e in events]
    assert kinds[:1] == ["StepStarted"] and "ToolStarted" in kinds and kinds.count("StepStarted") == 2
    done = next(e for e in events if isinstance(e, ToolDone))
    assert done.output.details == {"source": "test"} and done.started_at <= done.completed_at
    assert seen and "city" in seen[0]
    tool_message = next(m for m in events[-1].messages if m["role"] == "tool")
    assert tool_message == {"role": "tool", "tool_call_id": done.call.call_id, "content": "Sunny, 24 C"}
    assert events[-1].status in ("completed", "incomplete")  # the second step answers in text


async def test_a_tool_error_reaches_the_model_not_the_caller(loop):
    async def refuse(arguments: dict) -> ToolOutput:
        raise InvalidInput("No such city.")

    tool = ServerTool("lookup", function("lookup"), refuse)
    events = await run(loop, server_tools={"lookup": tool}, tool_choice=forced("lookup"), max_steps=1)
    done = next(e for e in events if isinstance(e, ToolDone))
    assert done.output.error == "No such city."
    assert events[-1].status == "incomplete" and events[-1].reason == "max_steps"


async def test_no_tool_calls_allowed_offers_no_tool(loop):
    calls = []

    async def count(arguments: dict) -> ToolOutput:
        calls.append(arguments)
        return ToolOutput("ok")

    tool = ServerTool("lookup", function("lookup"), count)
    events = await run(
        loop,
        server_tools={"lookup": tool},
        tool_choice="required",
        max_tool_calls=0,
        max_steps=1,
        max_output_tokens=8,
    )
    assert calls == [] and not any(isinstance(e, ToolStarted) for e in events)
    assert next(e for e in events if isinstance(e, InferenceDone)).text


async def test_spent_tool_calls_leave_the_model_only_text(loop):
    async def lookup(arguments: dict) -> ToolOutput:
        return ToolOutput("Sunny, 24 C")

    tool = ServerTool("lookup", function("lookup"), lookup)
    events = await run(
        loop,
        server_tools={"lookup": tool},
        tool_choice=forced("lookup"),
        max_tool_calls=1,
        max_output_tokens=60,
    )
    assert sum(isinstance(e, ToolDone) for e in events) == 1
    steps = [e for e in events if isinstance(e, InferenceDone)]
    assert len(steps) == 2 and steps[1].calls == [] and steps[1].text


async def test_closing_the_run_stops_the_model(loop):
    request = LoopRequest(
        tenant="t", model=CHAT, messages=ASK, max_output_tokens=400, sampling={"temperature": 0}
    )
    events = loop.run(request)
    first = [await anext(events) for _ in range(3)]
    assert isinstance(first[0], StepStarted)
    await events.aclose()  # the model's stream closes with it; a next run is served at once
    assert (await run(loop, max_output_tokens=2))[-1].status == "incomplete"
