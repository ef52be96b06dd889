"""Llama Stack's tool groups, tools and tool-runtime through its own client (``llama-stack-client`` 0.2)
against a real MCP server (``_mcp``): an MCP group registered, listed, its tools listed and invoked,
registered again and deleted; what is refused; tenants kept apart; agents whose turns run the
group's tools on the server as ``tool_execution`` steps, on the embedded SmolLM2, greedy, the call
forced; and servers behind a bearer token, reached with the headers the request's provider data
(``X-LlamaStack-Provider-Data``'s ``mcp_headers``) gives for each."""

from __future__ import annotations

import json
import logging
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
PROVIDER_DATA = "X-LlamaStack-Provider-Data"
TOKENS = ("first-s3cret", "second-s3cret")


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    with serving() as url:
        yield url


@pytest.fixture(scope="module")
def locked() -> Iterator[tuple[str, str]]:
    """Two servers, each asking for its own token."""
    with serving(TOKENS[0]) as first, serving(TOKENS[1]) as second:
        yield first, second


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


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_provider_data_gives_each_server_its_own_headers(model_server, locked, mcp_url):
    first, second = locked
    mcp_headers = {
        first: bearer(TOKENS[0]),
        second.replace("http://", "https://") + "?v=1": bearer(TOKENS[1]),  # Llama Stack's match: host, path
        mcp_url + "/elsewhere": bearer(TOKENS[0]),  # another path: not the open server's
    }
    tenant = model_server.new_tenant()
    with (
        llama_stack_client.LlamaStackClient(
            base_url=model_server.url,
            api_key=tenant.key,
            max_retries=0,
            timeout=120,
            provider_data={"mcp_headers": mcp_headers, "fireworks_api_key": "another provider's"},
        ) as llama,
        model_server.client(tenant) as bare,
    ):
        body = {"toolgroup_id": "mcp::first", "provider_id": MCP, "mcp_endpoint": {"uri": first}}
        assert bare.post("/v1/toolgroups", json=body).status_code == 424  # no token, no listing
        for group, url in (("mcp::first", first), ("mcp::second", second), ("mcp::open", mcp_url)):
            llama.toolgroups.register(toolgroup_id=group, provider_id=MCP, mcp_endpoint={"uri": url})
        assert [t.identifier for t in llama.tools.list(toolgroup_id="mcp::second")] == [
            "add",
            "echo",
            "broken",
        ]
        assert llama.tools.get("add").toolgroup_id == "mcp::first"
        listed = llama.tool_runtime.list_tools(mcp_endpoint={"uri": second})
        assert [d.name for d in listed] == ["add", "echo", "broken"]
        assert llama.tool_runtime.invoke_tool(tool_name="add", kwargs={"a": 2, "b": 5}).content[0].text == "7"

        assert bare.get("/v1/tools", params={"toolgroup_id": "mcp::first"}).status_code == 424
        assert bare.get("/v1/tools/add").status_code == 424
        assert (
            bare.get("/v1/tool-runtime/list-tools", params={"mcp_endpoint[uri]": second}).status_code == 424
        )
        invoked = bare.post("/v1/tool-runtime/invoke", json={"tool_name": "add", "kwargs": {"a": 1, "b": 1}})
        assert invoked.status_code == 424
        swapped = {PROVIDER_DATA: json.dumps({"mcp_headers": {first: bearer(TOKENS[1])}})}
        assert bare.get("/v1/tools/add", headers=swapped).status_code == 424


def test_an_agents_turn_and_resume_reach_a_locked_server_with_the_requests_headers(
    model_server, locked, caplog
):
    first, _ = locked
    caplog.set_level(logging.DEBUG)
    given = {PROVIDER_DATA: json.dumps({"mcp_headers": {first: bearer(TOKENS[0])}})}
    tenant = model_server.new_tenant()
    with model_server.client(tenant) as http:
        body = {"toolgroup_id": "mcp::first", "provider_id": MCP, "mcp_endpoint": {"uri": first}}
        assert http.post("/v1/toolgroups", json=body, headers=given).status_code == 200
        with llama_stack_client.LlamaStackClient(
            base_url=model_server.url, api_key=tenant.key, max_retries=0, timeout=120
        ) as llama:
            agent = Agent(
                llama,
                model=CHAT,
                instructions="Use the tools.",
                tools=["mcp::first/echo"],
                tool_config={"tool_choice": "echo"},
                sampling_params=GREEDY,
                max_infer_iters=2,
                extra_headers=given,
            )
            session_id = agent.create_session("locked")
            chunks = list(agent.create_turn(messages=ASK, session_id=session_id))
        turn = chunks[-1].event.payload.turn
        call, response = turn.steps[1].tool_calls[0], turn.steps[1].tool_responses[0]
        assert turn.steps[1].step_type == "tool_execution" and response.content == call.arguments["text"]

        config = {
            "model": CHAT,
            "instructions": "Use the tools.",
            "toolgroups": ["mcp::first"],
            "client_tools": [{"name": "lookup", "description": "Look a word up.", "parameters": []}],
            "tool_config": {"tool_choice": "lookup"},
            **SHORT,
        }
        made = http.post("/v1/agents", json={"agent_config": config})
        assert made.status_code == 424 and made.json()["error"]["param"] == "agent_config.toolgroups[0]"
        agent_id = http.post("/v1/agents", json={"agent_config": config}, headers=given).json()["agent_id"]
        session = (
            f"/v1/agents/{agent_id}/session/"
            + http.post(f"/v1/agents/{agent_id}/session", json={"session_name": "paused"}).json()[
                "session_id"
            ]
        )
        assert http.post(session + "/turn", json={"messages": ASK, "stream": False}).status_code == 424
        paused = http.post(session + "/turn", json={"messages": ASK, "stream": False}, headers=given).json()
        pending = paused["output_message"]["tool_calls"][0]
        assert pending["tool_name"] == "lookup"
        answer = {
            "tool_responses": [{"call_id": pending["call_id"], "tool_name": "lookup", "content": "A word."}],
            "stream": False,
        }
        resume = f"{session}/turn/{paused['turn_id']}/resume"
        assert http.post(resume, json=answer).status_code == 424  # the pause stays, to be resumed
        resumed = http.post(resume, json=answer, headers=given)
        assert resumed.status_code == 200 and resumed.json()["completed_at"] is not None
        stored = http.get(session).text
    assert paused["turn_id"] in stored and TOKENS[0] not in stored
    server_side = [r.getMessage() for r in caplog.records if not r.name.startswith("llama_stack_client")]
    assert any(first in said for said in server_side)  # its calls to the MCP server are logged: not the token
    assert not any(TOKENS[0] in said for said in server_side)


def test_malformed_provider_data_is_a_400_that_never_repeats_it(http):
    where = {"tool_group_id": "builtin::rag"}
    url = "http://mcp.example/mcp"
    for sent, param in (
        ("not json s3cret", PROVIDER_DATA),
        ("[" * 5000, PROVIDER_DATA),  # nested past the parser's depth
        ('["s3cret"]', PROVIDER_DATA),
        (json.dumps({"mcp_headers": ["s3cret"]}), f"{PROVIDER_DATA}.mcp_headers"),
        (json.dumps({"mcp_headers": {"ftp://s3cret/": {}}}), f"{PROVIDER_DATA}.mcp_headers"),
        (json.dumps({"mcp_headers": {url: "Bearer s3cret"}}), f"{PROVIDER_DATA}.mcp_headers"),
        (json.dumps({"mcp_headers": {url: {"Bad name": "s3cret"}}}), f"{PROVIDER_DATA}.mcp_headers"),
        (json.dumps({"mcp_headers": {url: {f"X-{n}": "s3cret" for n in range(33)}}}), None),
        (json.dumps({"mcp_headers": {f"{url}{n}": {} for n in range(17)}}), None),
    ):
        answer = http.get("/v1/tool-runtime/list-tools", params=where, headers={PROVIDER_DATA: sent})
        assert answer.status_code == 400, sent
        assert "s3cret" not in answer.text and answer.json()["error"]["param"].startswith(
            param or PROVIDER_DATA
        )
    too_long = {PROVIDER_DATA: json.dumps({"mcp_headers": {url: {"X-Key": "k" * 9000}}})}
    assert http.get("/v1/tool-runtime/list-tools", params=where, headers=too_long).status_code == 431
    for fine in ('{"mcp_headers": null}', '{"together_api_key": "another provider\'s"}'):
        answer = http.get("/v1/tool-runtime/list-tools", params=where, headers={PROVIDER_DATA: fine})
        assert answer.status_code == 200
