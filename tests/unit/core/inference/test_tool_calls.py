"""The tool contract on runtimes without their own: what the model is asked, and how its text is read."""

from __future__ import annotations

import json

import pytest

from cairn.core.inference.tool_calls import ToolCallReader, ToolPlan, plan

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}
ASK = [{"role": "user", "content": "Weather in Paris?"}]


def request(**fields: object) -> dict:
    return {"model": "m", "messages": ASK, "tools": [WEATHER, TIME], **fields}


def read(tool_plan: ToolPlan, *pieces: str) -> tuple[str, dict | None]:
    reader = ToolCallReader(tool_plan)
    passed = "".join(reader.feed(piece) for piece in pieces)
    rest, call = reader.finish()
    return passed + rest, call


def test_none_hides_the_tools_and_passes_text_at_once():
    body, tool_plan = plan(request(tool_choice="none"))
    assert "tools" not in body and "tool_choice" not in body and "response_format" not in body
    assert body["messages"] == ASK
    reader = ToolCallReader(tool_plan)
    assert reader.feed('{"name": "get_weather"') == '{"name": "get_weather"'


def test_required_constrains_generation_to_a_call_of_a_declared_tool():
    body, tool_plan = plan(request(tool_choice="required", parallel_tool_calls=False))
    assert tool_plan.mode == "forced" and "tools" not in body and "parallel_tool_calls" not in body
    schema = body["response_format"]["json_schema"]["schema"]
    assert [option["properties"]["name"] for option in schema["anyOf"]] == [
        {"const": "get_weather"},
        {"const": "get_time"},
    ]
    assert schema["anyOf"][0]["properties"]["arguments"] == WEATHER["function"]["parameters"]
    assert body["messages"][0]["role"] == "system" and "get_weather" in body["messages"][0]["content"]
    text, call = read(tool_plan, '{"name": "get_weather", ', '"arguments": {"city": "Paris"}}')
    assert text == ""
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert call["type"] == "function" and call["id"].startswith("call_")


def test_a_named_choice_offers_only_that_tool_whatever_grammar_the_request_gave():
    named = {"type": "function", "function": {"name": "get_time"}}
    body, tool_plan = plan(request(tool_choice=named, grammar='root ::= "no"'))
    assert "grammar" not in body
    assert list(tool_plan.tools) == ["get_time"]
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["name"] == {"const": "get_time"}
    assert "get_weather" not in body["messages"][0]["content"]


def test_a_forced_call_cut_short_by_length_is_no_call_and_no_text():
    _, tool_plan = plan(request(tool_choice="required"))
    assert read(tool_plan, '{"name": "get_wea') == ("", None)


@pytest.mark.parametrize(
    "written",
    [
        '{"name": "get_weather", "arguments": {"city": "Paris"}}',
        ' \n```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```',
        '<tool_call>{"name": "get_weather", "parameters": {"city": "Paris"}}</tool_call>',
        '{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}',
    ],
)
def test_auto_recognises_a_call_written_bare_fenced_or_tagged(written):
    _, tool_plan = plan(request())
    assert tool_plan.mode == "auto"
    text, call = read(tool_plan, *[written[i : i + 5] for i in range(0, len(written), 5)])
    assert text == ""
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}


def test_auto_streams_plain_text_as_soon_as_it_cannot_be_a_call():
    _, tool_plan = plan(request())
    reader = ToolCallReader(tool_plan)
    assert reader.feed("  ") == ""
    assert reader.feed("It is") == "  It is"
    assert reader.feed(' {"name": "get_weather"}') == ' {"name": "get_weather"}'
    assert reader.finish() == ("", None)


@pytest.mark.parametrize(
    "written",
    ['{"name": "launch_rockets", "arguments": {}}', '{"answer": 42}', "```\nprint(1)\n```", "{not json"],
)
def test_auto_gives_back_as_text_what_is_not_a_call_to_a_declared_tool(written):
    _, tool_plan = plan(request())
    assert read(tool_plan, written) == (written, None)


def test_history_with_calls_and_results_is_written_as_text_any_template_renders():
    messages = [
        {"role": "developer", "content": "Be brief."},
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "18 C, sunny"}]},
    ]
    body, _ = plan({"model": "m", "messages": messages, "tools": [WEATHER], "tool_choice": "auto"})
    system, user, assistant, result = body["messages"]
    assert system["role"] == "system" and system["content"].startswith("Be brief.\n\n")
    assert user == ASK[0]
    assert assistant == {
        "role": "assistant",
        "content": '{"name": "get_weather", "arguments": {"city": "Paris"}}',
    }
    assert result == {"role": "user", "content": "get_weather returned: 18 C, sunny"}
