"""An Agents session survives a restart (issue 16): its turns come back from another server on the same
data directory, in order, and the next turn reads them, through ``llama-stack-client`` 0.2 on the
embedded SmolLM2, greedy."""

from __future__ import annotations

import llama_stack_client

from cairn.settings import Settings

CHAT = "llama-cpp/SmolLM2-135M-Instruct"
INSTRUCTIONS = "Answer briefly."
MAX_TOKENS = 12
SAID = ["My favourite colour is green.", "My cat is called Tom.", "What is my favourite colour?"]


def test_a_session_survives_a_restart_and_its_turns_feed_the_next(tmp_path, start_servers):
    settings = Settings(data_dir=tmp_path, rate_limits=False, chat_context=2048)  # open: one tenant
    first = start_servers(settings)
    with client(first) as llama:
        agent_id = llama.agents.create(
            agent_config={
                "model": CHAT,
                "instructions": INSTRUCTIONS,
                "sampling_params": {"strategy": {"type": "greedy"}, "max_tokens": MAX_TOKENS},
            }
        ).agent_id
        session_id = llama.agents.session.create(agent_id, session_name="kept").session_id
        made = [turn(llama, agent_id, session_id, text) for text in SAID[:2]]
    first.stop()

    second = start_servers(settings)
    with client(second) as llama, second.client() as http:
        session = llama.agents.session.retrieve(session_id, agent_id=agent_id)
        assert [t.turn_id for t in session.turns] == [t.turn_id for t in made]
        assert session.turns == made
        third = turn(llama, agent_id, session_id, SAID[2])
        history = [
            message
            for said, kept in zip(SAID, made, strict=False)
            for message in (user(said), {"role": "assistant", "content": kept.output_message.content})
        ]
        alone = [{"role": "system", "content": INSTRUCTIONS}, user(SAID[2])]
        with_history = [alone[0], *history, alone[1]]
        assert third.output_message.content == answer(http, with_history) != answer(http, alone)


def client(server) -> llama_stack_client.LlamaStackClient:
    return llama_stack_client.LlamaStackClient(base_url=server.url, max_retries=0, timeout=120)


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def turn(llama, agent_id: str, session_id: str, text: str):
    return llama.agents.turn.create(session_id, agent_id=agent_id, messages=[user(text)], stream=False)


def answer(http, messages: list[dict]) -> str:
    body = {"model": CHAT, "messages": messages, "temperature": 0, "max_tokens": MAX_TOKENS}
    completion = http.post("/v1/chat/completions", json=body)
    assert completion.status_code == 200, completion.text
    return completion.json()["choices"][0]["message"]["content"]
