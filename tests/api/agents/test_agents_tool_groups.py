"""Llama Stack's tool groups, tools and tool-runtime through its own client (``llama-stack-client`` 0.2)
against a real MCP server (``_mcp``): an MCP group registered, listed, its tools listed and invoked,
registered again and deleted; what is refused; tenants kept apart; and agents whose turns run the
group's tools on the server as ``tool_execution`` steps, on the embedded SmolLM2, greedy, the call
forced."""

from __future__ import annotations

import json
from collections.abc import Iterator

import llama_stack_client
import pytest
from _mcp import closed_url, serving
from llama_stack_client.lib.agents.agent import Agent

CHAT = "llama-cpp/SmolLM2-135M-Instruct"
MCP = "model-context-protocol"
GREEDY = {"strategy": {"type": "greedy"}, "max_tokens": 32}
ASK = [{"role": "user", "content": "Say hello with the tool."}]
SHORT = {"sampling_params": GREEDY, "max_infer_iters": 2}  # the small model would call again and again


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    with serving() as url:
        yield url


@pytest.fixture(scope="module")
def llama(model_server, model_tenant, mcp_url) -> Iterator[llama_stack_client.LlamaStackClient]:
    with llama_stack_client.LlamaStackClient(
        base_url=model_server.url, api_key=model_tenant.key, max_retries=0, timeout=120
    ) as client:
        client.toolgroups.register(toolgroup_id="mcp::calc", provider_id=MCP, mcp_endpoint={"uri": mcp_url})
        yield client


def test_an_mcp_group_is_registered_listed_invoked_and_deleted(llama, mcp_url):
    llama.toolgroups.register(toolgroup_id="mcp::spare", provider_id=MCP, mcp_endpoint={"uri": mcp_url})
    groups = llama.toolgroups.list()
    assert [g.identifier for g in groups] == ["builtin::rag", "mcp::calc", "mcp::spare"]
    spare = llama.toolgroups.get("mcp::spare")
    assert spare.provider_id == MCP and spare.mcp_endpoint.uri == mcp_url and spare.args is None

    tools = llama.tools.list(toolgroup_id="mcp::spare")
    assert [t.identifier for t in tools] == ["add", "echo", "broken"]
    add = tools[0]
    assert (
        add.toolgroup_id == "mcp::spare" and add.provider_id == MCP and add.description == "Add two integers."
    )
    assert [(p.name, p.parameter_type, p.required) for p in add.parameters] == [
        ("a", "integer", True),
        ("b", "integer", True),
    ]
    assert add.metadata == {"endpoint": mcp_url}
    every = [(t.toolgroup_id, t.identifier) for t in llama.tools.list()]
    assert every[:2] == [("builtin::rag", "knowledge_search"), ("mcp::calc", "add")] and len(every) == 7
    assert llama.tools.get("echo").toolgroup_id == "mcp::calc"  # the first group that has it
    defs = llama.tool_runtime.list_tools(tool_group_id="mcp::spare")
    assert [d.name for d in defs] == ["add", "echo", "broken"] and defs[1].parameters[0].name == "text"
    assert [d.name for d in llama.tool_runtime.list_tools(mcp_endpoint={"uri": mcp_url})] == [
        "add",
        "echo",
        "broken",
    ]
    assert [d.name for d in llama.tool_runtime.list_tools(tool_group_id="builtin::rag")] == [
        "knowledge_search"
    ]

    added = llama.tool_runtime.invoke_tool(tool_name="add", kwargs={"a": 2, "b": 3})
    assert added.content[0].text == "5" and added.error_code == 0 and added.error_message is None
    broken = llama.tool_runtime.invoke_tool(tool_name="broken", kwargs={})
    assert broken.error_code == 1 and "the gears are stuck" in broken.error_message

    llama.toolgroups.register(
        toolgroup_id="mcp::spare", provider_id=MCP, mcp_endpoint={"uri": mcp_url}, args={"note": "again"}
    )
    assert [g.identifier for g in llama.toolgroups.list()][-1] == "mcp::spare"
    assert llama.toolgroups.get("mcp::spare").args == {"note": "again"}
    llama.toolgroups.unregister("mcp::spare")
    with pytest.raises(llama_stack_client.NotFoundError):
        llama.toolgroups.get("mcp::spare")
    with pytest.raises(llama_stack_client.NotFoundError):
        llama.tools.list(toolgroup_id="mcp::spare")
    with pytest.raises(llama_stack_client.NotFoundError):
        llama.toolgroups.unregister("mcp::spare")


def test_what_cannot_be_registered_or_run_is_refused(llama, http, mcp_url):
    endpoint = {"uri": mcp_url}
    refused = [
        ({"toolgroup_id": "builtin::rag", "provider_id": "rag-runtime"}, 400, "toolgroup_id"),
        ({"toolgroup_id": "builtin::websearch", "provider_id": "tavily-search"}, 400, "provider_id"),
        ({"toolgroup_id": "mcp::x", "provider_id": MCP}, 400, "mcp_endpoint"),
        ({"toolgroup_id": "mcp::x", "provider_id": MCP, "mcp_endpoint": {"uri": "file:///etc"}}, 400, None),
        ({"toolgroup_id": "mcp::down", "provider_id": MCP, "mcp_endpoint": {"uri": closed_url()}}, 424, None),
        ({"toolgroup_id": "mcp::x", "provider_id": MCP, "mcp_endpoint": endpoint, "extra": 1}, 400, None),
    ]
    for body, status, param in refused:
        answer = http.post("/v1/toolgroups", json=body)
        assert answer.status_code == status, (body, answer.text)
        assert param is None or answer.json()["error"]["param"] == param
    down = http.post("/v1/toolgroups", json=refused[4][0]).json()["error"]["message"]
    assert down.startswith("Error retrieving tool list from MCP server: 'mcp::down'.")
    assert http.get("/v1/toolgroups/mcp::down").status_code == 404  # nothing was kept
    assert http.delete("/v1/toolgroups/builtin::rag").status_code == 400
    assert http.get("/v1/tool-runtime/list-tools").status_code == 400
    elsewhere = http.get("/v1/tool-runtime/list-tools", params={"mcp_endpoint[uri]": "file:///etc"})
    assert elsewhere.status_code == 400 and elsewhere.json()["error"]["param"] == "mcp_endpoint"
    for toolgroups, param in (
        (["mcp::calc/nope"], "agent_config.toolgroups[0]"),
        (["mcp::calc", "mcp::calc/echo"], "agent_config.toolgroups[1]"),  # echo twice
    ):
        config = {"model": CHAT, "instructions": "", "toolgroups": toolgroups}
        made = http.post("/v1/agents", json={"agent_config": config})
        assert made.status_code == 400 and made.json()["error"]["param"] == param
    with pytest.raises(llama_stack_client.NotFoundError):
        llama.tool_runtime.invoke_tool(tool_name="no_such_tool", kwargs={})
    with pytest.raises(llama_stack_client.BadRequestError):  # no vector_db_ids
        llama.tool_runtime.invoke_tool(tool_name="knowledge_search", kwargs={"query": "x"})


def test_another_tenant_cannot_see_or_use_a_group(llama, model_server):
    stranger = model_server.new_tenant()
    with model_server.client(stranger) as theirs:
        assert [g["identifier"] for g in theirs.get("/v1/toolgroups").json()["data"]] == ["builtin::rag"]
        assert theirs.get("/v1/toolgroups/mcp::calc").status_code == 404
        assert theirs.get("/v1/tools", params={"toolgroup_id": "mcp::calc"}).status_code == 404
        assert theirs.get("/v1/tools/add").status_code == 404
        invoked = theirs.post(
            "/v1/tool-runtime/invoke", json={"tool_name": "add", "kwargs": {"a": 1, "b": 1}}
        )
        assert invoked.status_code == 404
        assert theirs.delete("/v1/toolgroups/mcp::calc").status_code == 404
        agent = {"model": CHAT, "instructions": "", "toolgroups": ["mcp::calc"]}
        made = theirs.post("/v1/agents", json={"agent_config": agent})
        assert made.status_code == 400 and made.json()["error"]["param"] == "agent_config.toolgroups[0]"
    assert llama.toolgroups.get("mcp::calc").identifier == "mcp::calc"


def test_an_agent_runs_an_mcp_tool_on_the_server_as_a_tool_execution_step(llama):
    agent = Agent(
        llama,
        model=CHAT,
        instructions="Use the tools.",
        tools=["mcp::calc/echo"],
        tool_config={"tool_choice": "echo"},
        sampling_params=GREEDY,
        max_infer_iters=2,
    )
    assert "echo" in agent.builtin_tools  # the helper lists the group of a group/tool name
    session_id = agent.create_session("mcp")
    turn = agent.create_turn(messages=ASK, session_id=session_id, stream=False)
    assert [step.step_type for step in turn.steps][:3] == ["inference", "tool_execution", "inference"]
    call, response = turn.steps[1].tool_calls[0], turn.steps[1].tool_responses[0]
    assert call.tool_name == "echo" and response.call_id == call.call_id
    assert response.content == call.arguments["text"] and response.metadata is None


def test_a_turns_group_args_are_the_calls_and_a_failure_is_read_by_the_model(llama, http):
    made = http.post(
        "/v1/agents",
        json={"agent_config": {"model": CHAT, "instructions": "Use the tools.", **SHORT}},
    )
    agent_id = made.json()["agent_id"]
    session_id = llama.agents.session.create(agent_id, session_name="args").session_id
    turn = llama.agents.turn.create(
        session_id,
        agent_id=agent_id,
        messages=ASK,
        toolgroups=[{"name": "mcp::calc/echo", "args": {"text": "fixed by args"}}],
        tool_config={"tool_choice": "echo"},
        stream=False,
    )
    assert turn.steps[1].tool_responses[0].content == "fixed by args"

    path = f"/v1/agents/{agent_id}/session/{session_id}/turn"
    body = {
        "messages": ASK,
        "toolgroups": ["mcp::calc"],
        "tool_config": {"tool_choice": "broken"},
        "stream": True,
    }
    with http.stream("POST", path, json=body) as answer:
        lines = [line.removeprefix("data: ") for line in answer.iter_lines() if line.startswith("data: ")]
    payloads = [json.loads(line)["event"]["payload"] for line in lines]
    done = [p["step_details"] for p in payloads if p["event_type"] == "step_complete"]
    assert done[1]["step_type"] == "tool_execution"
    assert "the gears are stuck" in done[1]["tool_responses"][0]["content"]
    assert payloads[-1]["event_type"] == "turn_complete"


def test_a_group_whose_server_is_gone_is_a_424_before_any_turn_starts(model_server):
    tenant = model_server.new_tenant()
    with model_server.client(tenant) as mine:
        with serving() as url:
            body = {"toolgroup_id": "mcp::brief", "provider_id": MCP, "mcp_endpoint": {"uri": url}}
            assert mine.post("/v1/toolgroups", json=body).status_code == 200
        assert mine.get("/v1/tools", params={"toolgroup_id": "mcp::brief"}).status_code == 424
        invoked = mine.post("/v1/tool-runtime/invoke", json={"tool_name": "add", "kwargs": {"a": 1, "b": 2}})
        assert invoked.status_code == 424 and invoked.json()["error"]["param"] == "tool_name"
        config = {"model": CHAT, "instructions": "", "sampling_params": GREEDY}
        agent_id = mine.post("/v1/agents", json={"agent_config": config}).json()["agent_id"]
        session_id = mine.post(f"/v1/agents/{agent_id}/session", json={"session_name": "gone"}).json()[
            "session_id"
        ]
        answer = mine.post(
            f"/v1/agents/{agent_id}/session/{session_id}/turn",
            json={"messages": ASK, "toolgroups": ["mcp::brief"], "stream": True},
        )
    assert answer.status_code == 424 and answer.json()["error"]["param"] == "toolgroups[0]"
    assert answer.json()["error"]["message"].startswith(
        "Error retrieving tool list from MCP server: 'mcp::brief'."
    )
