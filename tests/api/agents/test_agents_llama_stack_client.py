"""Llama Stack's Agents API through its own client (``llama-stack-client`` 0.2) on the embedded SmolLM2,
greedy: the ``Agent`` helper with a client tool, streamed through the pause and the resume and whole;
the turn's steps in order; agents and sessions; a session's turns in order; knowledge search over a
vector store; turn documents in the session's memory; a grammar response format; the errors the client
maps; and tenants kept apart."""

from __future__ import annotations

import io
import json
from datetime import datetime

import httpx
import llama_stack_client
import openai
import pytest
from llama_stack_client.lib.agents.agent import Agent
from llama_stack_client.lib.agents.client_tool import client_tool

CHAT = "llama-cpp/SmolLM2-135M-Instruct"
GREEDY = {"strategy": {"type": "greedy"}, "max_tokens": 48}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
asked: list[str] = []


@client_tool
def get_weather(city: str) -> str:
    """The current weather in a city.

    :param city: the name of the city
    """
    asked.append(city)
    return "Sunny, 24 C"


def weather_agent(llama, **settings) -> Agent:
    return Agent(
        llama,
        model=CHAT,
        instructions="You answer questions about the weather.",
        tools=[get_weather],
        tool_config={"tool_choice": "get_weather"},
        sampling_params=GREEDY,
        max_infer_iters=2,  # then the turn ends: the small model would call the tool again and again
        **settings,
    )


def plain_agent(http: httpx.Client, **config) -> str:
    body = {"model": CHAT, "instructions": "Answer briefly.", "sampling_params": {**GREEDY, "max_tokens": 4}}
    made = http.post("/v1/agents", json={"agent_config": {**body, **config}})
    assert made.status_code == 200, made.text
    return made.json()["agent_id"]


def times(step) -> tuple[datetime, datetime]:
    return step.started_at, step.completed_at


def test_the_agent_helper_pauses_for_a_client_tool_and_resumes_the_same_turn(llama):
    asked.clear()
    agent = weather_agent(llama)
    session_id = agent.create_session("weather")
    chunks = list(agent.create_turn(messages=ASK, session_id=session_id))
    payloads = [chunk.event.payload for chunk in chunks]
    kinds = [payload.event_type for payload in payloads]
    assert kinds[:2] == ["turn_start", "step_start"] and kinds[-1] == "turn_complete"
    paused = kinds.index("turn_awaiting_input")
    assert kinds[paused - 1] == "step_complete" and kinds[paused + 1] == "step_complete"
    awaiting = payloads[paused].turn
    call = awaiting.output_message.tool_calls[0]
    assert awaiting.output_message.stop_reason == "end_of_message" and call.tool_name == "get_weather"
    assert asked == [call.arguments["city"]] and json.loads(call.arguments_json) == call.arguments
    assert [step.step_type for step in awaiting.steps] == ["inference"] and awaiting.completed_at is None
    progress = [p.delta for p in payloads[:paused] if p.event_type == "step_progress"]
    assert [d.parse_status for d in progress if d.type == "tool_call"][-1] == "succeeded"
    turn = payloads[-1].turn
    assert turn.turn_id == payloads[0].turn_id == awaiting.turn_id
    assert [step.step_type for step in turn.steps] == ["inference", "tool_execution", "inference"]
    assert [m.content for m in turn.input_messages] == [ASK[0]["content"]]
    tool_step = turn.steps[1]
    assert tool_step.tool_calls[0].call_id == call.call_id
    assert tool_step.tool_responses[0].content == json.dumps("Sunny, 24 C")
    moments = [moment for step in turn.steps for moment in times(step)]
    assert moments == sorted(moments) and turn.started_at <= moments[0] <= moments[-1] <= turn.completed_at
    assert turn.output_message.stop_reason != "end_of_message"  # the last step: no more resumes
    assert llama.agents.turn.retrieve(turn.turn_id, agent_id=agent.agent_id, session_id=session_id) == turn
    step = llama.agents.steps.retrieve(
        tool_step.step_id, agent_id=agent.agent_id, session_id=session_id, turn_id=turn.turn_id
    )
    assert step.step == tool_step


def test_a_whole_turn_through_the_helper_and_through_the_routes(llama):
    asked.clear()
    agent = weather_agent(llama)
    session_id = agent.create_session("whole")
    turn = agent.create_turn(messages=ASK, session_id=session_id, stream=False)
    assert [step.step_type for step in turn.steps] == ["inference", "tool_execution", "inference"]
    assert len(asked) == 1
    paused = llama.agents.turn.create(session_id, agent_id=agent.agent_id, messages=ASK, stream=False)
    call = paused.output_message.tool_calls[0]
    assert paused.steps[-1].step_type == "inference" and call.tool_name == "get_weather"
    answer = {"call_id": call.call_id, "tool_name": "get_weather", "content": "Rain, 12 C"}
    resumed = llama.agents.turn.resume(
        paused.turn_id, agent_id=agent.agent_id, session_id=session_id, tool_responses=[answer], stream=False
    )
    assert resumed.turn_id == paused.turn_id and resumed.output_message.stop_reason != "end_of_message"
    assert [step.step_type for step in resumed.steps] == ["inference", "tool_execution", "inference"]
    assert resumed.steps[0] == paused.steps[0] and resumed.steps[1].tool_responses[0].content == "Rain, 12 C"
    session = llama.agents.session.retrieve(session_id, agent_id=agent.agent_id)
    assert [t.turn_id for t in session.turns] == [turn.turn_id, resumed.turn_id]
    with pytest.raises(llama_stack_client.BadRequestError):  # the pause was answered already
        llama.agents.turn.resume(
            paused.turn_id, agent_id=agent.agent_id, session_id=session_id, tool_responses=[answer]
        )


def test_a_resume_must_answer_the_pending_calls(llama):
    agent = weather_agent(llama)
    session_id = agent.create_session("strict")
    paused = llama.agents.turn.create(session_id, agent_id=agent.agent_id, messages=ASK, stream=False)
    call = paused.output_message.tool_calls[0]
    wrong = [
        [{"call_id": "call_other", "tool_name": "get_weather", "content": "x"}],
        [{"call_id": call.call_id, "tool_name": "other_tool", "content": "x"}],
        [{"call_id": call.call_id, "tool_name": "get_weather", "content": "x"}] * 2,
    ]
    for responses in wrong:
        with pytest.raises(llama_stack_client.BadRequestError) as caught:
            llama.agents.turn.resume(
                paused.turn_id, agent_id=agent.agent_id, session_id=session_id, tool_responses=responses
            )
        assert caught.value.body["error"]["param"].startswith("tool_responses")
    kept = llama.agents.turn.retrieve(paused.turn_id, agent_id=agent.agent_id, session_id=session_id)
    assert kept == paused  # still awaiting its answer


def test_a_sessions_turns_come_back_in_order_and_feed_the_next(llama, http):
    agent_id = plain_agent(http)
    session_id = llama.agents.session.create(agent_id, session_name="order").session_id
    said = ["one", "two", "three", "four"]
    made = [
        llama.agents.turn.create(
            session_id, agent_id=agent_id, messages=[{"role": "user", "content": word}], stream=False
        )
        for word in said
    ]
    session = llama.agents.session.retrieve(session_id, agent_id=agent_id)
    assert [t.turn_id for t in session.turns] == [t.turn_id for t in made]
    assert [t.input_messages[0].content for t in session.turns] == said
    picked = llama.agents.session.retrieve(
        session_id, agent_id=agent_id, turn_ids=[made[3].turn_id, made[1].turn_id]
    )
    assert [t.input_messages[0].content for t in picked.turns] == ["two", "four"]
    assert session.session_name == "order" and session.started_at <= made[0].started_at


def frames(http: httpx.Client, path: str, body: dict) -> list[dict]:
    with http.stream("POST", path, json=body) as answer:
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in answer.iter_lines() if line and not line.startswith(":")]
    assert all(line.startswith("data: ") for line in lines)
    return [json.loads(line.removeprefix("data: ")) for line in lines]


def test_a_streamed_turn_is_llama_stacks_frames_and_a_failure_comes_in_band(llama, http):
    agent_id = plain_agent(http)
    session_id = llama.agents.session.create(agent_id, session_name="raw").session_id
    path = f"/v1/agents/{agent_id}/session/{session_id}/turn"
    payloads = [frame["event"]["payload"] for frame in frames(http, path, {"messages": ASK, "stream": True})]
    kinds = [payload["event_type"] for payload in payloads]
    progress = kinds.count("step_progress")
    assert progress and kinds == ["turn_start", "step_start"] + ["step_progress"] * progress + [
        "step_complete",
        "turn_complete",
    ]
    step = payloads[-2]["step_details"]
    assert payloads[1]["step_id"] == payloads[-2]["step_id"] == step["step_id"]
    text = "".join(p["delta"]["text"] for p in payloads if p["event_type"] == "step_progress")
    turn = payloads[-1]["turn"]
    assert turn["output_message"] == step["model_response"] and step["model_response"]["content"] == text
    assert turn["output_message"]["stop_reason"] == "out_of_tokens"  # max_tokens 4
    too_long = [{"role": "user", "content": "tell me more " * 1500}]  # over the 2048-token window
    failed = frames(http, path, {"messages": too_long, "stream": True})
    assert failed[0]["event"]["payload"]["event_type"] == "turn_start"
    assert "context window" in failed[-1]["error"]["message"] and len(failed[-1]) == 1
    kept = llama.agents.session.retrieve(session_id, agent_id=agent_id).turns
    assert [t.turn_id for t in kept] == [turn["turn_id"]]  # a failed turn keeps nothing


def test_agents_and_sessions_are_listed_read_and_deleted(llama, http, model_server):
    tenant = model_server.new_tenant()
    with model_server.client(tenant) as mine:
        ids = [plain_agent(mine, name=f"agent {n}") for n in range(3)]
        listed = mine.get("/v1/agents", params={"start_index": 1, "limit": 1}).json()
        assert [a["agent_id"] for a in listed["data"]] == ids[1:2] and listed["has_more"] is True
        every = mine.get("/v1alpha/agents").json()
        assert [a["agent_config"]["name"] for a in every["data"]] == ["agent 0", "agent 1", "agent 2"]
        agent = mine.get(f"/v1/agents/{ids[0]}").json()
        config = agent["agent_config"]
        assert config["tool_config"] == {
            "tool_choice": "auto",
            "tool_prompt_format": None,
            "system_message_behavior": "append",
        }
        assert config["max_infer_iters"] == 10 and config["input_shields"] == [] and agent["created_at"]
        sessions = [mine.post(f"/v1/agents/{ids[0]}/session", json={"session_name": n}).json() for n in "ab"]
        page = mine.get(f"/v1/agents/{ids[0]}/sessions").json()
        assert [s["session_name"] for s in page["data"]] == ["a", "b"] and page["has_more"] is False
        assert mine.delete(f"/v1/agents/{ids[0]}/session/{sessions[0]['session_id']}").status_code == 200
        assert mine.get(f"/v1/agents/{ids[0]}/session/{sessions[0]['session_id']}").status_code == 404
        assert mine.delete(f"/v1/agents/{ids[0]}").status_code == 200
        assert mine.get(f"/v1/agents/{ids[0]}/session/{sessions[1]['session_id']}").status_code == 404
        assert mine.get(f"/v1/agents/{ids[0]}").status_code == 404
        assert len(mine.get("/v1/agents").json()["data"]) == 2


def test_knowledge_search_runs_here_as_a_tool_execution_step(llama, model_server, model_tenant):
    with openai.OpenAI(base_url=model_server.url + "/v1", api_key=model_tenant.key, max_retries=0) as oai:
        store = oai.vector_stores.create(name="facts")
        text = "The Zanzibar project codename is BLUE HERON. It ships in March."
        attached = oai.vector_stores.files.upload_and_poll(
            vector_store_id=store.id, file=("facts.txt", io.BytesIO(text.encode())), poll_interval_ms=50
        )
    assert [t.identifier for t in llama.toolgroups.list()] == ["builtin::rag"]
    rag = {"name": "builtin::rag/knowledge_search", "args": {"vector_db_ids": [store.id]}}
    agent = Agent(
        llama,
        model=CHAT,
        instructions="Answer from the knowledge base.",
        tools=[rag],
        tool_config={"tool_choice": "knowledge_search"},
        sampling_params={**GREEDY, "max_tokens": 128},
        max_infer_iters=2,
    )
    assert set(agent.builtin_tools) == {"knowledge_search"}
    session_id = agent.create_session("rag")
    turn = agent.create_turn(
        messages=[{"role": "user", "content": "What is the Zanzibar codename?"}],
        session_id=session_id,
        stream=False,
    )
    assert [step.step_type for step in turn.steps][:3] == ["inference", "tool_execution", "inference"]
    response = turn.steps[1].tool_responses[0]
    assert response.tool_name == "knowledge_search" and "BLUE HERON" in response.content
    assert response.metadata["document_ids"] == [attached.id]  # the model's query found the one file
    searched = llama.tool_runtime.invoke_tool(
        tool_name="knowledge_search", kwargs={"query": "Zanzibar codename", "vector_db_ids": [store.id]}
    )
    assert "BLUE HERON" in searched.content[0].text and searched.metadata["document_ids"] == [attached.id]


def test_turn_documents_are_remembered_and_retrieved_in_every_turn(llama, http, model_server, model_tenant):
    with openai.OpenAI(base_url=model_server.url + "/v1", api_key=model_tenant.key, max_retries=0) as oai:
        notes = oai.files.create(
            file=("notes.md", io.BytesIO(b"The office cat is named Biscuit.")), purpose="assistants"
        )
    agent_id = plain_agent(http)
    session_id = llama.agents.session.create(agent_id, session_name="docs").session_id
    documents = [
        {"content": "The Zanzibar project codename is BLUE HERON.", "mime_type": "text/plain"},
        {"content": {"uri": f"{model_server.url}/v1/files/{notes.id}/content"}, "mime_type": "text/markdown"},
    ]
    ask = [{"role": "user", "content": "What is the Zanzibar codename?"}]
    chunks = list(
        llama.agents.turn.create(
            session_id, agent_id=agent_id, messages=ask, documents=documents, stream=True
        )
    )
    payloads = [chunk.event.payload for chunk in chunks]
    assert [(p.event_type, getattr(p, "step_type", None)) for p in payloads[:4]] == [
        ("turn_start", None),
        ("step_start", "memory_retrieval"),
        ("step_complete", "memory_retrieval"),
        ("step_start", "inference"),
    ]
    turn = payloads[-1].turn
    memory = turn.steps[0]
    assert memory == payloads[2].step_details and memory.step_type == "memory_retrieval"
    assert "BLUE HERON" in memory.inserted_context and "Biscuit" in memory.inserted_context
    assert memory.inserted_context.index("BLUE HERON") < memory.inserted_context.index("Biscuit")
    assert memory.started_at <= memory.completed_at <= turn.steps[1].started_at
    assert turn.input_messages[0].context == memory.inserted_context
    assert http.get(f"/v1/vector_stores/{memory.vector_db_ids}").json()["file_counts"]["completed"] == 2
    step = llama.agents.steps.retrieve(
        memory.step_id, agent_id=agent_id, session_id=session_id, turn_id=turn.turn_id
    )
    assert step.step == memory

    later = llama.agents.turn.create(
        session_id, agent_id=agent_id, messages=[{"role": "user", "content": "Name the cat."}], stream=False
    )
    again = later.steps[0]
    assert again.step_type == "memory_retrieval" and again.vector_db_ids == memory.vector_db_ids
    assert again.inserted_context.index("Biscuit") < again.inserted_context.index("BLUE HERON")

    for uri in ("https://example.com/notes.md", f"https://example.com/v1/files/{notes.id}/content"):
        with pytest.raises(llama_stack_client.BadRequestError) as caught:
            llama.agents.turn.create(
                session_id,
                agent_id=agent_id,
                messages=ask,
                documents=[{"content": uri, "mime_type": "text/plain"}],
            )
        assert caught.value.body["error"]["param"] == "documents[0].content" and "fetches no" in str(
            caught.value
        )
    stranger = model_server.new_tenant()
    with model_server.client(stranger) as theirs:
        agent = theirs.post("/v1/agents", json={"agent_config": {"model": CHAT, "instructions": ""}}).json()
        session = theirs.post(f"/v1/agents/{agent['agent_id']}/session", json={"session_name": "x"}).json()
        stolen = {"content": {"uri": notes.id}, "mime_type": "text/plain"}
        answer = theirs.post(
            f"/v1/agents/{agent['agent_id']}/session/{session['session_id']}/turn",
            json={"messages": ask, "documents": [stolen]},
        )
        assert answer.status_code == 404 and "Biscuit" not in answer.text
        assert theirs.get(f"/v1/vector_stores/{memory.vector_db_ids}").status_code == 404
    assert len(llama.agents.session.retrieve(session_id, agent_id=agent_id).turns) == 2
    llama.agents.session.delete(session_id, agent_id=agent_id)
    assert http.get(f"/v1/vector_stores/{memory.vector_db_ids}").status_code == 404


def test_a_grammar_constrains_every_answer_and_an_invalid_one_is_refused(llama):
    def agent(bnf: dict) -> str:
        config = {
            "model": CHAT,
            "instructions": "Answer the question.",
            "sampling_params": {"strategy": {"type": "greedy"}, "max_tokens": 8},
            "response_format": {"type": "grammar", "bnf": bnf},
        }
        return llama.agents.create(agent_config=config).agent_id

    def ask(agent_id: str, question: str) -> llama_stack_client.types.agents.Turn:
        session_id = llama.agents.session.create(agent_id, session_name="grammar").session_id
        question = [{"role": "user", "content": question}]
        return llama.agents.turn.create(session_id, agent_id=agent_id, messages=question, stream=False)

    yes_or_no = agent({"root": "answer", "answer": '"yes" | "no"'})
    for question in ("Is the sky blue?", "Write a poem about the sea."):
        assert ask(yes_or_no, question).output_message.content in ("yes", "no")
    with pytest.raises(llama_stack_client.BadRequestError) as caught:  # no root rule
        agent({"answer": '"yes" | "no"'})
    assert caught.value.body["error"]["param"].startswith("agent_config.response_format")
    undefined = agent({"root": "answer"})  # llama.cpp parses the grammar with the first inference step
    with pytest.raises(llama_stack_client.BadRequestError) as caught:
        ask(undefined, "Is the sky blue?")
    assert caught.value.body["error"]["param"] == "grammar"


def test_what_the_server_cannot_honour_is_refused_by_name(llama, http):
    refused = {
        "toolgroups": (["builtin::websearch"], "agent_config.toolgroups[0]"),
        "input_shields": (["llama-guard"], "agent_config.input_shields"),
        "tool_config": ({"tool_choice": "no_such_tool"}, "agent_config.tool_config.tool_choice"),
        "model": ("no-such-model", "agent_config.model"),
    }
    for field, (value, param) in refused.items():
        made = http.post(
            "/v1/agents", json={"agent_config": {"model": CHAT, "instructions": "", field: value}}
        )
        assert made.status_code == 400, field
        assert made.json()["error"]["param"] == param, made.json()
    contradictory = {"tool_choice": "required", "tool_config": {"tool_choice": "auto"}}
    made = http.post(
        "/v1/agents", json={"agent_config": {"model": CHAT, "instructions": "", **contradictory}}
    )
    assert made.status_code == 400
    with pytest.raises(llama_stack_client.BadRequestError):
        llama.agents.create(agent_config={"model": CHAT, "instructions": "", "temperature": 0})
    agent_id = plain_agent(http)
    session_id = llama.agents.session.create(agent_id, session_name="s").session_id
    turn = f"/v1/agents/{agent_id}/session/{session_id}/turn"
    ask = [{"role": "user", "content": "hi"}]
    answer = http.post(turn, json={"messages": ask, "toolgroups": ["mcp::github"]})
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "toolgroups[0]"


def test_unknown_ids_are_not_found(llama, http):
    with pytest.raises(llama_stack_client.NotFoundError):
        llama.agents.session.create("no-such-agent", session_name="s")
    agent_id = plain_agent(http)
    with pytest.raises(llama_stack_client.NotFoundError):
        llama.agents.session.retrieve("no-such-session", agent_id=agent_id)
    with pytest.raises(llama_stack_client.NotFoundError):
        llama.agents.turn.create("no-such-session", agent_id=agent_id, messages=ASK)
    session_id = llama.agents.session.create(agent_id, session_name="s").session_id
    with pytest.raises(llama_stack_client.NotFoundError):
        llama.agents.turn.retrieve("no-such-turn", agent_id=agent_id, session_id=session_id)
    assert http.get("/v1/toolgroups/builtin::websearch").status_code == 404


def test_another_tenant_sees_nothing(llama, http, model_server):
    agent_id = plain_agent(http)
    session_id = llama.agents.session.create(agent_id, session_name="mine").session_id
    stranger = model_server.new_tenant()
    with model_server.client(stranger) as theirs:
        assert theirs.get("/v1/agents").json()["data"] == []
        assert theirs.get(f"/v1/agents/{agent_id}").status_code == 404
        assert theirs.get(f"/v1/agents/{agent_id}/sessions").status_code == 404
        assert theirs.post(f"/v1/agents/{agent_id}/session", json={"session_name": "x"}).status_code == 404
        assert theirs.get(f"/v1/agents/{agent_id}/session/{session_id}").status_code == 404
        turn = theirs.post(f"/v1/agents/{agent_id}/session/{session_id}/turn", json={"messages": ASK})
        assert turn.status_code == 404
        assert theirs.delete(f"/v1/agents/{agent_id}").status_code == 404
    assert llama.agents.session.retrieve(session_id, agent_id=agent_id).session_name == "mine"
