"""The Responses API through Llama Stack's current client (``llama-stack-client`` 0.7, which drives
Responses and Conversations), in a Python 3.12 environment of its own (``_py312``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _py312 import client_environment, run_script

CLIENT = "llama-stack-client==0.7.5"
CHAT = "llama-cpp/SmolLM2-135M-Instruct"
SCRIPT = """
import json, sys
import llama_stack_client
url, key, model = sys.argv[1:4]
client = llama_stack_client.LlamaStackClient(base_url=url, api_key=key, max_retries=0, timeout=120)
made = client.responses.create(model=model, input="What is the capital of France?", temperature=0,
                               max_output_tokens=8, presence_penalty=0.5)
streamed = list(client.responses.create(model=model, input="Say hi.", temperature=0, max_output_tokens=4,
                                        stream=True))
conversation = client.conversations.create(items=[])
client.responses.create(model=model, input="Hello.", temperature=0, max_output_tokens=4,
                        conversation=conversation.id)
items = client.conversations.items.list(conversation.id, order="asc")
print(json.dumps({
    "id": made.id, "status": made.status, "text": made.output[0].content[0].text,
    "presence_penalty": made.presence_penalty,
    "retrieved": client.responses.retrieve(made.id).id,
    "input_items": [item.role for item in client.responses.input_items.list(made.id).data],
    "listed": made.id in [r.id for r in client.responses.list(limit=50).data],
    "stream": [event.type for event in streamed],
    "conversation": [item.role for item in items.data],
}))
"""


@pytest.fixture(scope="module")
def client_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return client_environment(tmp_path_factory, CLIENT)


def test_llama_stack_client_07_creates_streams_lists_and_converses(client_python, model_server, model_tenant):
    seen = run_script(client_python, SCRIPT, model_server.url, model_tenant.key, CHAT)
    assert seen["status"] == "incomplete" and seen["text"] and seen["retrieved"] == seen["id"]
    assert seen["presence_penalty"] == 0.5 and seen["input_items"] == ["user"] and seen["listed"]
    assert seen["stream"][0] == "response.created" and seen["stream"][-1] == "response.incomplete"
    assert "response.output_text.done" in seen["stream"]
    assert seen["conversation"] == ["user", "assistant"]
