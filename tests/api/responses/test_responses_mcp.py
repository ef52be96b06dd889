"""The Responses API's ``mcp`` tool through the official ``openai`` client, against a real MCP server
(the ``mcp`` package's ``MCPServer``, formerly FastMCP, serving streamable HTTP on a free port of
127.0.0.1 and asking for a bearer token), on the embedded SmolLM2 at temperature 0 with the calls
forced: the listing and its reuse in the chain, a call and its output, the streamed events, a tool's
failure, approvals (approved, refused), ``allowed_tools``, and a server that cannot list its tools."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
from _mcp import closed_url, serving

CHAT = "llama-cpp/SmolLM2-135M-Instruct"
TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    with serving(TOKEN) as url:
        yield url


@pytest.fixture(scope="module")
def oai(model_server, model_tenant) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=model_server.url + "/v1", api_key=model_tenant.key, max_retries=0, timeout=120
    ) as client:
        yield client


def calc(url: str, **fields) -> dict:
    return {
        "type": "mcp",
        "server_label": "calc",
        "server_url": url,
        "authorization": TOKEN,
        "require_approval": "never",
        **fields,
    }


def forced(name: str) -> dict:
    return {"type": "mcp", "server_label": "calc", "name": name}


def respond(oai: openai.OpenAI, tool: dict, **fields):
    return oai.responses.create(
        **{
            "model": CHAT,
            "input": "Use the tool.",
            "tools": [tool],
            "temperature": 0,
            "max_tool_calls": 1,  # then the small model answers, rather than calling again
            "max_output_tokens": 64,
            **fields,
        }
    )


def test_a_call_runs_on_the_server_and_the_chain_keeps_the_listing(oai, mcp_url):
    made = respond(oai, calc(mcp_url), tool_choice=forced("add"))
    listing, call = made.output[0], made.output[1]
    assert listing.type == "mcp_list_tools" and listing.server_label == "calc" and listing.error is None
    assert [tool.name for tool in listing.tools] == ["add", "echo", "broken"]
    assert listing.tools[0].input_schema["required"] == ["a", "b"]
    arguments = json.loads(call.arguments)
    assert call.type == "mcp_call" and call.name == "add" and call.server_label == "calc"
    assert call.status == "completed" and call.error is None and call.approval_request_id is None
    assert call.output == str(arguments["a"] + arguments["b"])
    assert made.output[-1].type == "message" and made.status in ("completed", "incomplete")
    assert made.tools[0].authorization is None and made.tools[0].server_url == mcp_url
    assert oai.responses.retrieve(made.id).output[1].output == call.output

    again = respond(oai, calc(mcp_url), tool_choice=forced("echo"), previous_response_id=made.id)
    assert [item.type for item in again.output][:1] == ["mcp_call"]  # no new listing: the chain's
    echoed = again.output[0]
    assert echoed.name == "echo" and echoed.output == json.loads(echoed.arguments)["text"]


def test_a_streamed_call_sends_openai_events(oai, mcp_url):
    events = list(respond(oai, calc(mcp_url), tool_choice=forced("add"), stream=True))
    kinds = [event.type for event in events]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert kinds[:6] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.mcp_list_tools.in_progress",
        "response.mcp_list_tools.completed",
        "response.output_item.done",
    ]
    at = kinds.index("response.mcp_call_arguments.done")
    deltas = kinds.count("response.mcp_call_arguments.delta")
    assert kinds[at - deltas - 1 : at + 4] == [
        "response.output_item.added",
        *["response.mcp_call_arguments.delta"] * deltas,
        "response.mcp_call_arguments.done",
        "response.mcp_call.in_progress",
        "response.mcp_call.completed",
        "response.output_item.done",
    ]
    added, done = events[at - deltas - 1].item, events[at + 3].item
    assert added.type == "mcp_call" and added.arguments == "" and added.output is None
    written = "".join(event.delta for event in events if event.type == "response.mcp_call_arguments.delta")
    assert written == events[at].arguments == done.arguments and done.status == "completed"
    assert events[at + 1].item_id == done.id and done.output
    assert kinds[-1] in ("response.completed", "response.incomplete")
    assert events[-1].response.output[1].output == done.output


def test_a_tools_failure_is_the_calls_error_which_the_model_reads(oai, mcp_url):
    made = respond(oai, calc(mcp_url), tool_choice=forced("broken"))
    call = made.output[1]
    assert call.type == "mcp_call" and call.status == "failed" and call.output is None
    assert call.error.type == "mcp_tool_execution_error"
    assert "the gears are stuck" in call.error.content[0]["text"]
    assert made.output[-1].type == "message"


def test_approval_holds_the_call_until_approved(oai, mcp_url):
    tool = calc(mcp_url, require_approval={"never": {"tool_names": ["echo"]}})
    asked = respond(oai, tool, tool_choice=forced("add"))
    assert [item.type for item in asked.output] == ["mcp_list_tools", "mcp_approval_request"]
    request = asked.output[1]
    assert request.name == "add" and request.server_label == "calc" and asked.status == "completed"
    answer = {"type": "mcp_approval_response", "approval_request_id": request.id}
    then = {"tool_choice": "none", "previous_response_id": asked.id}  # the model answers, not calls again

    approved = respond(oai, tool, **then, input=[{**answer, "approve": True}])
    call = approved.output[0]
    assert call.type == "mcp_call" and call.approval_request_id == request.id
    arguments = json.loads(request.arguments)
    assert call.arguments == request.arguments and call.output == str(arguments["a"] + arguments["b"])
    assert approved.output[-1].type == "message"
    with pytest.raises(openai.BadRequestError) as twice:
        respond(oai, tool, previous_response_id=approved.id, input=[{**answer, "approve": True}])
    assert "answered already" in twice.value.body["message"]

    refused = respond(oai, tool, **then, input=[{**answer, "approve": False}])
    assert "mcp_call" not in [item.type for item in refused.output] and refused.output[-1].type == "message"

    with pytest.raises(openai.BadRequestError) as unknown:
        respond(oai, tool, **then, input=[{**answer, "approve": True, "approval_request_id": "mcpr_x"}])
    assert unknown.value.body["param"] == "input[0].approval_request_id"


def test_allowed_tools_are_all_the_model_is_offered(oai, mcp_url):
    made = respond(oai, calc(mcp_url, allowed_tools=["echo"]), tool_choice="required")
    assert [item.name for item in made.output if item.type == "mcp_call"] == ["echo"]
    with pytest.raises(openai.BadRequestError) as caught:
        respond(oai, calc(mcp_url, allowed_tools=["echo"]), tool_choice=forced("add"))
    assert caught.value.body["param"] == "tool_choice.name"


def test_a_server_that_cannot_list_its_tools_fails_the_request_with_424(oai, mcp_url):
    down = closed_url()
    with pytest.raises(openai.APIStatusError) as caught:
        respond(oai, calc(down, server_label="down"))
    assert caught.value.status_code == 424 and caught.value.body["param"] == "tools[0]"
    assert caught.value.body["message"].startswith("Error retrieving tool list from MCP server: 'down'.")
    with pytest.raises(openai.APIStatusError) as refused:
        respond(oai, calc(mcp_url, authorization="wrong"), stream=True)
    assert refused.value.status_code == 424 and "HTTP 401" in refused.value.body["message"]


def test_requests_the_server_refuses_before_listing(oai, mcp_url):
    for tools, param in [
        ([calc("file:///etc/passwd")], "tools[0].server_url"),
        ([{"type": "mcp", "server_label": "x", "connector_id": "connector_gmail"}], "tools[0].server_url"),
        ([calc(mcp_url), calc(mcp_url, server_label="twin")], "tools"),  # add, echo, broken twice
    ]:
        with pytest.raises(openai.BadRequestError) as caught:
            oai.responses.create(model=CHAT, input="hi", tools=tools)
        assert caught.value.body["param"] == param
