"""The OpenAI Agents SDK against Cairn's Responses API: ``Runner.run`` with a function tool that the SDK
runs itself (the tool call forced on the first turn, so the small embedded model makes it), a run
streamed, and ``OpenAIConversationsSession`` as a runner's memory; and Llama Stack's client creating a
response."""

from __future__ import annotations

import asyncio

import llama_stack_client
import openai
from agents import Agent, ModelSettings, OpenAIResponsesModel, RunConfig, Runner, function_tool
from agents.memory import OpenAIConversationsSession

CHAT = "llama-cpp/SmolLM2-135M-Instruct"


def run_with_client(server, tenant, go):
    """``go(model)`` in a loop of its own, with a client made and closed inside that loop: a client left
    open would be closed by the garbage collector on some later test's loop."""

    async def main():
        async with openai.AsyncOpenAI(
            base_url=server.url + "/v1", api_key=tenant.key, max_retries=0, timeout=120
        ) as client:
            return await go(OpenAIResponsesModel(model=CHAT, openai_client=client))

    return asyncio.run(main())


def test_runner_calls_the_function_tool_and_finishes(model_server, model_tenant):
    asked: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        asked.append(city)
        return f"It is sunny in {city}."

    async def go(model):
        agent = Agent(
            name="weather",
            instructions="Answer questions about the weather.",
            model=model,
            tools=[get_weather],
            model_settings=ModelSettings(temperature=0, tool_choice="get_weather", max_tokens=48),
            tool_use_behavior="stop_on_first_tool",  # the small model, left to choose, would call it again
        )
        config = RunConfig(tracing_disabled=True)
        return await Runner.run(agent, "What is the weather in Paris?", run_config=config, max_turns=3)

    result = run_with_client(model_server, model_tenant, go)
    assert asked, "the SDK ran the tool the model called"
    kinds = [item.type for item in result.new_items]
    assert kinds == ["tool_call_item", "tool_call_output_item"]
    assert result.final_output == f"It is sunny in {asked[0]}."


def test_a_streamed_run_yields_text_deltas(model_server, model_tenant):
    async def go(model) -> tuple[list[str], str]:
        agent = Agent(
            name="plain",
            instructions="Answer in one short sentence.",
            model=model,
            model_settings=ModelSettings(temperature=0, max_tokens=12),
        )
        streamed = Runner.run_streamed(agent, "Name a colour.", run_config=RunConfig(tracing_disabled=True))
        deltas = [
            event.data.delta
            async for event in streamed.stream_events()
            if event.type == "raw_response_event" and event.data.type == "response.output_text.delta"
        ]
        return deltas, str(streamed.final_output)

    deltas, final = run_with_client(model_server, model_tenant, go)
    assert deltas and "".join(deltas) == final


def test_llama_stack_client_creates_a_response(model_server, model_tenant):
    with llama_stack_client.LlamaStackClient(
        base_url=model_server.url, api_key=model_tenant.key, max_retries=0, timeout=120
    ) as llama:
        made = llama.responses.create(model=CHAT, input="Say hello.", temperature=0)
        assert made.status in ("completed", "incomplete") and made.output[0].type == "message"
        assert llama.responses.retrieve(made.id).id == made.id


def test_conversations_session_is_the_runners_memory(model_server, model_tenant):
    """``OpenAIConversationsSession`` on Cairn's Conversations API: two runs in one session, the second
    reading the first's items; then the session's own calls (get, pop, clear)."""

    async def go(model):
        session = OpenAIConversationsSession(openai_client=model._client)
        agent = Agent(
            name="memory",
            instructions="Reply with one word.",
            model=model,
            model_settings=ModelSettings(
                temperature=0, max_tokens=96
            ),  # the SDK refuses an incomplete answer
        )
        config = RunConfig(tracing_disabled=True)
        await Runner.run(agent, "My name is Ada.", session=session, run_config=config)
        await Runner.run(agent, "What is my name?", session=session, run_config=config)
        items = await session.get_items()
        latest = await session.get_items(limit=1)
        popped = await session.pop_item()
        after_pop = await session.get_items()
        await session.clear_session()
        return items, latest, popped, after_pop

    items, latest, popped, after_pop = run_with_client(model_server, model_tenant, go)
    roles = [item.get("role") for item in items]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert "My name is Ada." in str(items[0]["content"])
    assert latest == [items[-1]] and popped == items[-1] and after_pop == items[:-1]
