"""The OpenAI Agents SDK against Cairn's Responses API: ``Runner.run`` with a function tool that the SDK
runs itself (the tool call forced on the first turn, so the small embedded model makes it), and a run
streamed; and Llama Stack's client creating a response."""

from __future__ import annotations

import asyncio

import llama_stack_client
import openai
from agents import Agent, ModelSettings, OpenAIResponsesModel, RunConfig, Runner, function_tool

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
