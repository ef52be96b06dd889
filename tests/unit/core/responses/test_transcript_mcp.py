"""What the model reads of MCP items: a call and its output or error, an approval request with its
answer (the call that ran, or the refusal), an unanswered request and a listing not at all."""

from __future__ import annotations

import pytest

from cairn.core.responses.transcript import messages_for

pytestmark = pytest.mark.anyio

ASK = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Add 2 and 3."}]}
LISTING = {"type": "mcp_list_tools", "id": "mcpl_1", "server_label": "calc", "tools": []}
REQUEST = {
    "type": "mcp_approval_request",
    "id": "mcpr_1",
    "server_label": "calc",
    "name": "add",
    "arguments": '{"a": 2, "b": 3}',
}


def answer(approve: bool, **fields) -> dict:
    return {"type": "mcp_approval_response", "approval_request_id": "mcpr_1", "approve": approve, **fields}


def call(**fields) -> dict:
    return {
        "type": "mcp_call",
        "id": "mcp_1",
        "server_label": "calc",
        "name": "add",
        "arguments": '{"a": 2, "b": 3}',
        "output": None,
        "error": None,
        **fields,
    }


def assistant_call(call_id: str) -> dict:
    function = {"name": "add", "arguments": '{"a": 2, "b": 3}'}
    tool_call = {"id": call_id, "type": "function", "function": function}
    return {"role": "assistant", "content": None, "tool_calls": [tool_call]}


async def read(items: list[dict]) -> list[dict]:
    async def no_files(file_id: str):
        raise AssertionError("no file is read")

    return (await messages_for(items, None, no_files))[1:]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_call_is_the_assistants_call_and_its_answer():
    assert await read([ASK, LISTING, call(output="5")]) == [
        assistant_call("mcp_1"),
        {"role": "tool", "tool_call_id": "mcp_1", "content": "5"},
    ]
    failed = call(error={"type": "mcp_tool_execution_error", "content": [{"type": "text", "text": "stuck"}]})
    assert (await read([ASK, failed]))[-1]["content"] == "stuck"
    unreachable = call(error={"type": "http_error", "code": 502, "message": "Cannot be reached."})
    assert (await read([ASK, unreachable]))[-1]["content"] == "Cannot be reached."


async def test_an_approved_call_answers_its_request():
    ran = call(approval_request_id="mcpr_1", output="5")
    assert await read([ASK, REQUEST, answer(True), ran]) == [
        assistant_call("mcpr_1"),
        {"role": "tool", "tool_call_id": "mcpr_1", "content": "5"},
    ]
    # the request being approved now: the loop runs the call and adds its answer
    assert await read([ASK, REQUEST, answer(True)]) == [assistant_call("mcpr_1")]


async def test_a_refusal_is_what_the_model_reads_and_an_open_request_is_left_out():
    refused = await read([ASK, REQUEST, answer(False, reason="not now")])
    assert refused[0] == assistant_call("mcpr_1")
    assert refused[1]["tool_call_id"] == "mcpr_1" and "did not approve" in refused[1]["content"]
    assert "not now" in refused[1]["content"]
    assert await read([ASK, REQUEST]) == []
