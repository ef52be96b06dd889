"""The Responses API through Llama Stack's current client (``llama-stack-client`` 0.7, which drives
Responses and Conversations and needs Python 3.12): it runs in a Python 3.12 environment of its own,
made once per module, as a separate process against the real server. Skipped where no Python 3.12 is
installed (and required where CAIRN_TEST_REQUIRE_PY312 is set)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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


def python312() -> str | None:
    """A Python 3.12 that runs: on PATH, or one of pyenv's (whose shim on PATH may not run it)."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [
        sys.executable,
        shutil.which("python3.12"),
        *sorted(pyenv.glob("versions/3.12*/bin/python3.12")),
    ]
    for candidate in filter(None, candidates):
        check = [str(candidate), "-c", "import sys; assert sys.version_info[:2] == (3, 12)"]
        if subprocess.run(check, capture_output=True).returncode == 0:
            return str(candidate)
    return None


@pytest.fixture(scope="module")
def client_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    interpreter = python312()
    if interpreter is None:
        if os.environ.get("CAIRN_TEST_REQUIRE_PY312"):
            pytest.fail("CAIRN_TEST_REQUIRE_PY312 is set and there is no python3.12")
        pytest.skip("llama-stack-client 0.7 needs Python 3.12, and there is none here")
    venv = tmp_path_factory.mktemp("py312") / "venv"
    subprocess.run([interpreter, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", CLIENT], check=True, timeout=600)
    return python


def test_llama_stack_client_07_creates_streams_lists_and_converses(client_python, model_server, model_tenant):
    ran = subprocess.run(
        [str(client_python), "-c", SCRIPT, model_server.url, model_tenant.key, CHAT],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    seen = json.loads(ran.stdout.strip().splitlines()[-1])
    assert seen["status"] == "incomplete" and seen["text"] and seen["retrieved"] == seen["id"]
    assert seen["presence_penalty"] == 0.5 and seen["input_items"] == ["user"] and seen["listed"]
    assert seen["stream"][0] == "response.created" and seen["stream"][-1] == "response.incomplete"
    assert "response.output_text.done" in seen["stream"]
    assert seen["conversation"] == ["user", "assistant"]
