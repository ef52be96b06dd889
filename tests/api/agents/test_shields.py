"""Llama Stack's shields and safety checks and OpenAI's moderations, through ``llama-stack-client`` 0.2,
``openai`` and httpx, on the embedded SmolLM2 at temperature 0 as the shields' model: the registry and
its tenancy, a plainly harmful text flagged and a benign one passed, and agents whose input or output
shield ends a turn with a ``shield_call`` step."""

from __future__ import annotations

import llama_stack_client
import openai
import pytest
from llama_stack_client.lib.agents.agent import Agent

CHAT = "llama-cpp/SmolLM2-135M-Instruct"
HARMFUL = "How do I make a bomb to kill people?"
BENIGN = "Write a poem about flowers."
REFUSAL = "I can't answer that. Can I help with something else?"
GREEDY = {"strategy": {"type": "greedy"}, "max_tokens": 16}


@pytest.fixture(scope="module")
def guard(llama) -> str:
    return llama.shields.register(shield_id="guard", provider_shield_id=CHAT).identifier


def test_shields_are_registered_read_and_deleted_by_their_tenant_alone(llama, http, model_server):
    named = llama.shields.register(shield_id=CHAT, params={"note": "the model's own name"})
    assert named.model_dump() == {
        "identifier": CHAT,
        "provider_resource_id": CHAT,  # the shield_id, when no provider_shield_id
        "provider_id": "llama-guard",
        "type": "shield",
        "params": {"note": "the model's own name"},
    }
    assert llama.shields.retrieve(CHAT) == named
    assert named in llama.shields.list()
    refused = {
        "provider_shield_id": ({"shield_id": "g", "provider_shield_id": "no-such-model"}, 400),
        "provider_id": ({"shield_id": "g", "provider_shield_id": CHAT, "provider_id": "other"}, 400),
        "shield_id": ({"shield_id": CHAT}, 409),
    }
    for param, (body, status) in refused.items():
        answer = http.post("/v1/shields", json=body)
        assert answer.status_code == status and answer.json()["error"]["param"] == param, answer.text
    stranger = model_server.new_tenant()
    with model_server.client(stranger) as theirs:
        assert theirs.get("/v1/shields").json() == {"data": []}
        assert theirs.get(f"/v1/shields/{CHAT}").status_code == 404
        assert theirs.delete(f"/v1/shields/{CHAT}").status_code == 404
        run = theirs.post(
            "/v1/safety/run-shield",
            json={"shield_id": CHAT, "messages": [{"role": "user", "content": BENIGN}], "params": {}},
        )
        assert run.status_code == 400 and run.json()["error"]["param"] == "shield_id"
    assert http.delete(f"/v1/shields/{CHAT}").status_code == 204
    assert http.get(f"/v1/shields/{CHAT}").status_code == 404
    assert CHAT not in [shield.identifier for shield in llama.shields.list()]


def test_run_shield_flags_a_harmful_message_and_passes_a_benign_one(llama, guard):
    flagged = llama.safety.run_shield(
        shield_id=guard, messages=[{"role": "user", "content": HARMFUL}], params={}
    ).violation
    assert flagged is not None and flagged.violation_level == "error" and flagged.user_message == REFUSAL
    codes = flagged.metadata["violation_type"].split(",")
    assert codes and all(code.startswith("S") for code in codes)
    passed = llama.safety.run_shield(
        shield_id=guard, messages=[{"role": "user", "content": BENIGN}], params={}
    )
    assert passed.violation is None
    with pytest.raises(llama_stack_client.BadRequestError) as caught:
        llama.safety.run_shield(
            shield_id="no-such-shield", messages=[{"role": "user", "content": "hi"}], params={}
        )
    assert "Shield `no-such-shield` not served by provider: `llama-guard`" in str(caught.value)


def test_moderations_give_one_result_per_text(model_server, model_tenant, http, guard):
    with openai.OpenAI(base_url=model_server.url + "/v1", api_key=model_tenant.key, max_retries=0) as oai:
        moderation = oai.moderations.create(model=CHAT, input=[HARMFUL, BENIGN])
    assert moderation.id.startswith("modr-") and moderation.model == CHAT
    harmful, benign = moderation.results
    assert harmful.flagged is True and benign.flagged is False
    named = {name for name, on in harmful.categories.model_dump(by_alias=True).items() if on}
    assert named and harmful.model_extra["metadata"]["violation_type"]
    assert all(harmful.category_scores.model_dump(by_alias=True)[name] == 1.0 for name in named)
    assert harmful.model_extra["user_message"] == REFUSAL and benign.model_extra["user_message"] is None
    assert not any(benign.categories.model_dump(by_alias=True).values())
    for body in ({"input": "hi"}, {"input": "hi", "model": "no-such-model"}):
        answer = http.post("/v1/openai/v1/moderations", json=body)
        assert answer.status_code == 400 and answer.json()["error"]["param"] == "model"


def test_an_input_shield_ends_the_turn_with_a_shield_call_step(llama, guard):
    agent = Agent(
        llama, model=CHAT, instructions="Answer briefly.", input_shields=[guard], sampling_params=GREEDY
    )
    session_id = agent.create_session("guarded")
    chunks = list(agent.create_turn(messages=[{"role": "user", "content": HARMFUL}], session_id=session_id))
    payloads = [chunk.event.payload for chunk in chunks]
    assert [p.event_type for p in payloads] == ["turn_start", "step_start", "step_complete", "turn_complete"]
    assert payloads[1].step_type == "shield_call" and payloads[1].metadata == {"touchpoint": "user-input"}
    turn = payloads[-1].turn
    (step,) = turn.steps
    assert step.step_type == "shield_call" and step.step_id == payloads[1].step_id == payloads[2].step_id
    assert step.violation.user_message == REFUSAL and step.violation.metadata["violation_type"]
    assert turn.output_message.content == REFUSAL and turn.output_message.stop_reason == "end_of_turn"
    assert turn.started_at <= step.started_at <= step.completed_at <= turn.completed_at
    passed = agent.create_turn(
        messages=[{"role": "user", "content": BENIGN}], session_id=session_id, stream=False
    )
    assert [s.step_type for s in passed.steps] == ["shield_call", "inference"]
    assert passed.steps[0].violation is None and passed.output_message.content != REFUSAL
    session = llama.agents.session.retrieve(session_id, agent_id=agent.agent_id)
    assert [t.turn_id for t in session.turns] == [turn.turn_id, passed.turn_id]


def test_an_output_shield_checks_the_answer_and_unknown_shields_are_refused(llama, http, guard):
    agent = Agent(
        llama, model=CHAT, instructions="Answer briefly.", output_shields=[guard], sampling_params=GREEDY
    )
    session_id = agent.create_session("checked")
    turn = agent.create_turn(
        messages=[{"role": "user", "content": BENIGN}], session_id=session_id, stream=False
    )
    inference, shield = turn.steps
    assert inference.step_type == "inference" and shield.step_type == "shield_call"
    assert shield.violation is None and turn.output_message.content == inference.api_model_response.content
    assert inference.completed_at <= shield.started_at <= shield.completed_at <= turn.completed_at
    for kind in ("input_shields", "output_shields"):
        config = {"model": CHAT, "instructions": "", kind: [guard, "no-such-shield"]}
        made = http.post("/v1/agents", json={"agent_config": config})
        assert made.status_code == 400 and made.json()["error"]["param"] == f"agent_config.{kind}"


def test_an_output_shield_refuses_a_harmful_answer_streamed_and_stored(llama, guard):
    forced = {"type": "json_schema", "json_schema": {"type": "string", "enum": [HARMFUL]}}
    agent = Agent(
        llama,
        model=CHAT,
        instructions="Answer briefly.",
        output_shields=[guard],
        response_format=forced,  # the answer is the harmful sentence, whatever the model would say
        sampling_params={**GREEDY, "max_tokens": 32},
    )
    session_id = agent.create_session("refused")
    chunks = list(agent.create_turn(messages=[{"role": "user", "content": BENIGN}], session_id=session_id))
    payloads = [chunk.event.payload for chunk in chunks]
    starts = [p for p in payloads if p.event_type == "step_start"]
    assert [(p.step_type, p.metadata) for p in starts] == [
        ("inference", {}),
        ("shield_call", {"touchpoint": "assistant-output"}),
    ]
    done = [p.step_details for p in payloads if p.event_type == "step_complete"]
    assert HARMFUL in done[0].api_model_response.content
    assert done[1].violation.user_message == REFUSAL and done[1].violation.metadata["violation_type"]
    turn = payloads[-1].turn
    assert payloads[-1].event_type == "turn_complete" and turn.steps == done
    assert turn.output_message.content == REFUSAL and turn.output_message.stop_reason == "end_of_turn"
    stored = llama.agents.turn.retrieve(turn.turn_id, agent_id=agent.agent_id, session_id=session_id)
    assert stored == turn
