"""Models a tenant registers (Llama Stack's ``models.register`` / ``unregister``) through Llama Stack's
own client: a tenant's name for a model a provider serves, listed and answering for that tenant alone;
the providers' own models stay as configured."""

from __future__ import annotations

from collections.abc import Iterator

import llama_stack_client
import openai
import pytest

CHAT = "llama-cpp/SmolLM2-135M-Instruct"
EMBED = "onnx/all-MiniLM-L6-v2"
ASK = [{"role": "user", "content": "What is the capital of France?"}]


def client(server, tenant) -> llama_stack_client.LlamaStackClient:
    return llama_stack_client.LlamaStackClient(
        base_url=server.url, api_key=tenant.key, max_retries=0, timeout=120
    )


@pytest.fixture(scope="module")
def llama(model_server, model_tenant) -> Iterator[llama_stack_client.LlamaStackClient]:
    with client(model_server, model_tenant) as llama:
        yield llama


def answer(llama, model: str) -> str:
    completion = llama.chat.completions.create(model=model, messages=ASK, temperature=0, max_tokens=8)
    assert completion.model == model
    return completion.choices[0].message.content


def test_a_registered_model_answers_as_the_model_it_names_until_unregistered(llama):
    with pytest.raises(llama_stack_client.NotFoundError):  # looked up (and remembered) before it exists
        llama.models.retrieve("my-smol")
    model = llama.models.register(
        model_id="my-smol", provider_model_id="SmolLM2-135M-Instruct", metadata={"team": "search", "n": 3}
    )
    assert (model.identifier, model.provider_id, model.provider_resource_id) == (
        "my-smol",
        "llama-cpp",
        "SmolLM2-135M-Instruct",
    )
    assert model.api_model_type == "llm" and model.metadata["team"] == "search"
    assert model.metadata["context_length"] == 2048
    assert "my-smol" in [m.identifier for m in llama.models.list()]
    assert llama.models.retrieve("my-smol").identifier == "my-smol"
    assert answer(llama, "my-smol") == answer(llama, CHAT)

    llama.models.unregister("my-smol")
    assert "my-smol" not in [m.identifier for m in llama.models.list()]
    with pytest.raises(llama_stack_client.NotFoundError):
        llama.models.retrieve("my-smol")
    with pytest.raises(llama_stack_client.NotFoundError):
        llama.models.unregister("my-smol")


def test_an_embedding_model_registers_under_its_type(llama, model_server, model_tenant):
    model = llama.models.register(
        model_id="my-embedder", provider_id="onnx", provider_model_id="all-MiniLM-L6-v2"
    )
    assert model.api_model_type == "embedding" and model.metadata["embedding_dimension"] == 384
    with openai.OpenAI(base_url=model_server.url + "/v1", api_key=model_tenant.key, max_retries=0) as oai:
        embedded = oai.embeddings.create(model="my-embedder", input="a cat on a mat")
        assert embedded.model == "my-embedder" and len(embedded.data[0].embedding) == 384
        with pytest.raises(openai.NotFoundError):  # not a chat model
            oai.chat.completions.create(model="my-embedder", messages=ASK, max_tokens=2)


def test_another_tenant_never_sees_it(llama, model_server):
    llama.models.register(model_id="private-smol", provider_model_id="SmolLM2-135M-Instruct")
    with client(model_server, model_server.new_tenant()) as stranger:
        assert "private-smol" not in [m.identifier for m in stranger.models.list()]
        assert CHAT in [m.identifier for m in stranger.models.list()]
        for call in (
            lambda: stranger.models.retrieve("private-smol"),
            lambda: stranger.models.unregister("private-smol"),
            lambda: stranger.chat.completions.create(model="private-smol", messages=ASK, max_tokens=2),
        ):
            with pytest.raises(llama_stack_client.NotFoundError):
                call()
        stranger.models.register(model_id="private-smol", provider_model_id="SmolLM2-135M-Instruct")
    assert llama.models.retrieve("private-smol").identifier == "private-smol"


def test_a_name_already_taken_is_a_conflict(llama):
    llama.models.register(model_id="taken", provider_model_id="SmolLM2-135M-Instruct")
    for model_id in ("taken", CHAT):
        with pytest.raises(llama_stack_client.ConflictError):
            llama.models.register(model_id=model_id, provider_model_id="SmolLM2-135M-Instruct")


@pytest.mark.parametrize(
    ("fields", "error", "param"),
    [
        ({"provider_model_id": "gpt-5"}, llama_stack_client.NotFoundError, "provider_model_id"),
        (
            {"provider_model_id": "all-MiniLM-L6-v2", "provider_id": "llama-cpp"},
            llama_stack_client.NotFoundError,
            "provider_model_id",
        ),
        (
            {"provider_model_id": "SmolLM2-135M-Instruct", "provider_id": "vllm"},
            llama_stack_client.BadRequestError,
            "provider_id",
        ),
        (
            {"provider_model_id": "SmolLM2-135M-Instruct", "model_type": "embedding"},
            llama_stack_client.BadRequestError,
            "model_type",
        ),
    ],
)
def test_a_model_no_provider_serves_so_is_refused(llama, fields, error, param):
    with pytest.raises(error) as raised:
        llama.models.register(model_id="refused", **fields)
    assert raised.value.body["error"]["param"] == param
    assert "refused" not in [m.identifier for m in llama.models.list()]


def test_a_configured_model_cannot_be_unregistered(llama):
    with pytest.raises(llama_stack_client.BadRequestError):
        llama.models.unregister(CHAT)
    assert CHAT in [m.identifier for m in llama.models.list()]
