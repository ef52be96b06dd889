"""The Agents API at ``/v1alpha`` through ``llama-stack-client`` 0.3 (``client.alpha.agents``), and its
``Agent`` helper, which in 0.3 drives Responses and Conversations with a client tool; in a Python 3.12
environment of its own (``_py312``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _py312 import client_environment, run_script

CLIENT = "llama-stack-client==0.3.5"
CHAT = "llama-cpp/SmolLM2-135M-Instruct"
SCRIPT = """
import json, sys
import llama_stack_client
from llama_stack_client.lib.agents.agent import Agent
url, key, model = sys.argv[1:4]
client = llama_stack_client.LlamaStackClient(base_url=url, api_key=key, max_retries=0, timeout=120)
config = {"model": model, "instructions": "Answer briefly.",
          "sampling_params": {"strategy": {"type": "greedy"}, "max_tokens": 6}}
agents = client.alpha.agents
agent = agents.create(agent_config=config)
session = agents.session.create(agent.agent_id, session_name="s")
turn = agents.turn.create(session.session_id, agent_id=agent.agent_id, stream=False,
                          messages=[{"role": "user", "content": "What is the capital of France?"}])
streamed = list(agents.turn.create(session.session_id, agent_id=agent.agent_id, stream=True,
                                   messages=[{"role": "user", "content": "And of Italy?"}]))
kept = agents.session.retrieve(session.session_id, agent_id=agent.agent_id)
listed = agents.list()
agents.delete(agent.agent_id)
gone = False
try:
    agents.retrieve(agent.agent_id)
except llama_stack_client.NotFoundError:
    gone = True

helper = Agent(client, model=model, instructions="Answer briefly.")
helper_session = helper.create_session("helper")
answered = helper.create_turn(messages=[{"role": "user", "content": "Say hi."}], session_id=helper_session,
                              stream=False)
print(json.dumps({
    "turn_steps": [step.step_type for step in turn.steps],
    "turn_text": turn.output_message.content,
    "stream": [chunk.event.payload.event_type for chunk in streamed],
    "session_turns": [t.turn_id for t in kept.turns],
    "first_turn": turn.turn_id,
    "listed": agent.agent_id in [a["agent_id"] if isinstance(a, dict) else a.agent_id for a in listed.data],
    "gone": gone,
    "helper_text": answered.output_text if hasattr(answered, "output_text") else str(answered),
}))
"""


@pytest.fixture(scope="module")
def client_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return client_environment(tmp_path_factory, CLIENT)


def test_llama_stack_client_03_agents_and_its_agent_helper(client_python, model_server, model_tenant):
    seen = run_script(client_python, SCRIPT, model_server.url, model_tenant.key, CHAT)
    assert seen["turn_steps"] == ["inference"] and seen["turn_text"]
    assert seen["stream"][0] == "turn_start" and seen["stream"][-1] == "turn_complete"
    assert "step_progress" in seen["stream"]
    assert seen["session_turns"][0] == seen["first_turn"] and len(seen["session_turns"]) == 2
    assert seen["listed"] and seen["gone"]
    assert seen["helper_text"]
