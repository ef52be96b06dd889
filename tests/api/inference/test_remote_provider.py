"""A remote provider, end to end: one Cairn serves its embedded models, a second Cairn (embedded models
off) routes to the first as an OpenAI-compatible server. What a client of the second sees: the remote
models under the provider's id, streams passed through, the tool contract kept, the upstream's errors
as its own, and an upstream that is gone as 503."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from cairn.settings import Settings

REMOTE_CHAT = "upstream/llama-cpp/SmolLM2-135M-Instruct"
REMOTE_EMBED = "upstream/onnx/all-MiniLM-L6-v2"
ASK = [{"role": "user", "content": "What is the capital of France?"}]


def router_settings(data_dir, upstream_url: str, key: str) -> Settings:
    provider = {
        "id": "upstream",
        "type": "remote::openai",
        "base_url": upstream_url + "/v1",
        "api_key": key,
        "timeout": 60,
        "models": [
            {"id": "llama-cpp/SmolLM2-135M-Instruct"},
            {"id": "onnx/all-MiniLM-L6-v2", "type": "embedding", "dimension": 384},
        ],
    }
    return Settings(data_dir=data_dir, rate_limits=False, embedded_models=False, providers=[provider])


@pytest.fixture(scope="module")
def router_server(tmp_path_factory, start_servers, model_server, model_tenant):
    return start_servers(
        router_settings(tmp_path_factory.mktemp("router"), model_server.url, model_tenant.key)
    )


@pytest.fixture(scope="module")
def oai(router_server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=router_server.url + "/v1", api_key="open-mode", max_retries=0, timeout=120
    ) as client:
        yield client


def test_the_remote_models_are_listed_under_the_providers_id(oai):
    models = {model.id: model.model_dump() for model in oai.models.list()}
    assert set(models) == {REMOTE_CHAT, REMOTE_EMBED}
    assert models[REMOTE_CHAT]["provider_id"] == "upstream"
    assert models[REMOTE_EMBED]["metadata"]["embedding_dimension"] == 384


def test_chat_through_the_provider_says_what_the_upstream_says(oai, model_server, model_tenant):
    with openai.OpenAI(base_url=model_server.url + "/v1", api_key=model_tenant.key, max_retries=0) as direct:
        expected = direct.chat.completions.create(
            model="llama-cpp/SmolLM2-135M-Instruct", messages=ASK, temperature=0, max_tokens=8
        )
    whole = oai.chat.completions.create(model=REMOTE_CHAT, messages=ASK, temperature=0, max_tokens=8)
    assert whole.model == REMOTE_CHAT
    assert whole.choices[0].message.content == expected.choices[0].message.content
    assert whole.usage.completion_tokens == 8
    chunks = list(
        oai.chat.completions.create(
            model=REMOTE_CHAT,
            messages=ASK,
            temperature=0,
            max_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == whole.choices[0].message.content
    )
    assert chunks[-1].usage.completion_tokens == 8


def test_a_required_tool_call_comes_through_whole(oai):
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
    answer = oai.chat.completions.create(
        model=REMOTE_CHAT, messages=ASK, temperature=0, max_tokens=48, tools=[tool], tool_choice="required"
    )
    call = answer.choices[0].message.tool_calls[0]
    assert answer.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    assert "city" in json.loads(call.function.arguments)


def test_embeddings_through_the_provider(oai):
    embedded = oai.embeddings.create(model=REMOTE_EMBED, input=["a cat on a mat", "quarterly revenue"])
    assert [len(item.embedding) for item in embedded.data] == [384, 384]
    with pytest.raises(openai.BadRequestError) as raised:
        oai.embeddings.create(model=REMOTE_EMBED, input="word " * 2000)
    assert raised.value.code == "context_length_exceeded"


def test_an_upstream_that_is_gone_is_503(tmp_path, start_servers):
    upstream = start_servers(Settings(data_dir=tmp_path / "gone", rate_limits=False, embedded_models=False))
    upstream.stop()
    live = start_servers(router_settings(tmp_path / "router", upstream.url, "unused"))
    client = openai.OpenAI(base_url=live.url + "/v1", api_key="open-mode", max_retries=0)
    with client, pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(model=REMOTE_CHAT, messages=ASK, max_tokens=4)
    assert raised.value.status_code == 503


def test_the_upstream_refusing_cairns_key_is_a_502_that_does_not_echo_it(
    tmp_path, start_servers, model_server
):
    live = start_servers(router_settings(tmp_path / "router", model_server.url, "cairn-not-a-key"))
    client = openai.OpenAI(base_url=live.url + "/v1", api_key="open-mode", max_retries=0)
    with client, pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model=REMOTE_CHAT, messages=ASK, max_tokens=4)
    assert raised.value.status_code == 502
    assert "cairn-not-a-key" not in raised.value.response.text
