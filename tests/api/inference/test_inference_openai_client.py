"""The inference face on the embedded models, driven by the official ``openai`` client: models, chat
completions (whole and streamed, every ``tool_choice``, structured output), legacy completions and
embeddings, and the errors the client maps. Temperature 0 and few tokens: deterministic and lean."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
from pydantic import BaseModel

CHAT = "llama-cpp/SmolLM2-135M-Instruct"
EMBED = "onnx/all-MiniLM-L6-v2"
ASK = [{"role": "user", "content": "What is the capital of France?"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
    },
}


@pytest.fixture(scope="module")
def oai(model_server, model_tenant) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=model_server.url + "/v1", api_key=model_tenant.key, max_retries=0, timeout=120
    ) as client:
        yield client


def chat(oai: openai.OpenAI, **fields):
    return oai.chat.completions.create(
        **{"model": CHAT, "messages": ASK, "temperature": 0, "max_tokens": 8, **fields}
    )


def test_models_lists_both_embedded_models_in_openai_and_llama_stack_shape(oai):
    models = {model.id: model for model in oai.models.list()}
    assert {CHAT, EMBED} <= set(models)
    llm, embedding = models[CHAT].model_dump(), models[EMBED].model_dump()
    assert llm["object"] == "model" and llm["owned_by"] == "llama-cpp"
    assert llm["model_type"] == "llm" and llm["provider_resource_id"] == "SmolLM2-135M-Instruct"
    assert llm["identifier"] == CHAT and llm["provider_id"] == "llama-cpp"
    assert embedding["model_type"] == "embedding" and embedding["metadata"]["embedding_dimension"] == 384
    assert oai.models.retrieve(CHAT).id == CHAT


def test_an_unknown_model_is_the_404_the_client_maps(oai):
    with pytest.raises(openai.NotFoundError) as raised:
        chat(oai, model="no-such-model")
    assert raised.value.code == "model_not_found"
    assert "no-such-model" in raised.value.message
    with pytest.raises(openai.NotFoundError):
        oai.embeddings.create(model=CHAT, input="a chat model cannot embed")


def test_chat_is_deterministic_at_temperature_zero_and_counts_its_tokens(oai):
    first, second = chat(oai), chat(oai, model="SmolLM2-135M-Instruct")
    assert (
        first.choices[0].message.content
        and first.choices[0].message.content == second.choices[0].message.content
    )
    assert first.id.startswith("chatcmpl-") and first.id != second.id
    assert first.model == CHAT and first.object == "chat.completion"
    assert first.choices[0].finish_reason == "length"
    usage = first.usage
    assert usage.completion_tokens == 8 and usage.prompt_tokens > 5
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_a_stream_says_the_same_in_chunks_then_usage(oai):
    whole = chat(oai).choices[0].message.content
    chunks = list(chat(oai, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 8
    assert len({c.id for c in chunks}) == 1


def test_required_tool_choice_always_calls_a_declared_tool(oai):
    for stream in (False, True):
        answer = chat(oai, tools=[WEATHER, TIME], tool_choice="required", max_tokens=64, stream=stream)
        if stream:
            chunks = list(answer)
            deltas = [d for c in chunks for d in c.choices[0].delta.tool_calls or ()]
            name, arguments = deltas[0].function.name, "".join(d.function.arguments or "" for d in deltas)
            finish = chunks[-1].choices[0].finish_reason
        else:
            call = answer.choices[0].message.tool_calls[0]
            name, arguments, finish = (
                call.function.name,
                call.function.arguments,
                answer.choices[0].finish_reason,
            )
            assert call.id.startswith("call_") and answer.choices[0].message.content is None
        assert finish == "tool_calls"
        assert name in ("get_weather", "get_time")
        assert isinstance(json.loads(arguments), dict)


def test_a_named_tool_choice_calls_that_tool_with_valid_arguments(oai):
    answer = chat(
        oai,
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=64,
    )
    call = answer.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert set(json.loads(call.function.arguments)) == {"city"}


def test_tool_choice_none_never_calls(oai):
    answer = chat(oai, tools=[WEATHER], tool_choice="none")
    assert answer.choices[0].message.tool_calls is None
    assert answer.choices[0].message.content


def test_auto_answers_with_text_or_a_valid_call(oai):
    message = chat(oai, tools=[WEATHER], tool_choice="auto", max_tokens=48).choices[0]
    if message.finish_reason == "tool_calls":
        call = message.message.tool_calls[0]
        assert call.function.name == "get_weather" and isinstance(json.loads(call.function.arguments), dict)
    else:
        assert message.message.content and message.message.tool_calls is None


def test_a_conversation_with_a_tool_round_trip_continues(oai):
    messages = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C and sunny"},
    ]
    answer = chat(oai, messages=messages, tools=[WEATHER])
    assert answer.choices[0].message.content or answer.choices[0].message.tool_calls


class City(BaseModel):
    name: str
    country: str


def test_structured_output_parses_into_the_pydantic_model(oai):
    parsed = oai.chat.completions.parse(
        model=CHAT, messages=ASK, temperature=0, max_tokens=48, response_format=City
    )
    assert isinstance(parsed.choices[0].message.parsed, City)


@pytest.mark.parametrize(
    "fields, param",
    [
        ({"n": 2}, "n"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "user"}]}, "messages"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "launch"}}}, None),
        ({"temperature": 3}, "temperature"),
    ],
)
def test_bad_requests_are_400_with_the_openai_envelope(oai, fields, param):
    with pytest.raises(openai.BadRequestError) as raised:
        chat(oai, **fields)
    assert raised.value.status_code == 400
    assert raised.value.body["type"] == "invalid_request_error"


def test_a_prompt_over_the_context_window_is_context_length_exceeded(oai):
    with pytest.raises(openai.BadRequestError) as raised:
        chat(oai, messages=[{"role": "user", "content": "word " * 3000}])
    assert raised.value.code == "context_length_exceeded"


def test_logprobs_come_with_each_token_whole_and_streamed(oai):
    whole = chat(oai, logprobs=True, top_logprobs=2)
    tokens = whole.choices[0].logprobs.content
    assert "".join(t.token for t in tokens) == whole.choices[0].message.content
    assert all(t.logprob <= 0 and len(t.top_logprobs) == 2 for t in tokens)
    streamed = [c for c in chat(oai, logprobs=True, top_logprobs=2, stream=True) if c.choices]
    assert [t.token for c in streamed if c.choices[0].logprobs for t in c.choices[0].logprobs.content] == [
        t.token for t in tokens
    ]


def test_json_object_answers_are_json(oai):
    answer = chat(
        oai,
        max_tokens=200,
        response_format={"type": "json_object"},
        messages=[{"role": "user", "content": 'Answer as {"capital": "..."}: the capital of France?'}],
    )
    assert answer.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(answer.choices[0].message.content), dict)


def test_an_image_to_a_text_only_model_is_a_clear_400(oai):
    pixel = "data:image/png;base64,iVBORw0KGgo="  # a PNG signature: refused before it is read
    parts = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": pixel}}]
    with pytest.raises(openai.BadRequestError) as raised:
        chat(oai, messages=[{"role": "user", "content": parts}])
    assert "text only" in raised.value.message and raised.value.param == "messages[0].content"
    assert chat(oai, messages=[{"role": "user", "content": [parts[0]]}]).choices[0].message.content


def test_closing_a_stream_early_frees_the_model(oai):
    for _ in range(3):  # more than the slots: each closed stream must have freed its slot
        with chat(oai, stream=True, max_tokens=200) as stream:
            next(iter(stream))
    assert chat(oai).choices[0].message.content


def test_legacy_completions_whole_and_streamed(oai):
    whole = oai.completions.create(model=CHAT, prompt="The capital of France is", temperature=0, max_tokens=6)
    assert whole.object == "text_completion" and whole.choices[0].text
    assert whole.usage.completion_tokens == 6
    streamed = oai.completions.create(
        model=CHAT, prompt="The capital of France is", temperature=0, max_tokens=6, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed if c.choices) == whole.choices[0].text


def test_embeddings_float_base64_and_token_arrays_agree(oai):
    texts = ["The cat sat on the mat.", "A cat was sitting on a rug.", "Quarterly revenue rose by 4%."]
    by_float = oai.embeddings.create(model=EMBED, input=texts, encoding_format="float")
    by_base64 = oai.embeddings.create(model=EMBED, input=texts)  # the client asks for base64 and decodes
    assert [d.index for d in by_float.data] == [0, 1, 2]
    assert by_float.model == EMBED and by_float.usage.prompt_tokens > 10
    for a, b in zip(by_float.data, by_base64.data, strict=True):
        assert len(a.embedding) == 384
        assert max(abs(x - y) for x, y in zip(a.embedding, b.embedding, strict=True)) < 1e-6
    cat, rug, revenue = (d.embedding for d in by_float.data)

    def cosine(u, v):
        return sum(x * y for x, y in zip(u, v, strict=True))

    assert cosine(cat, rug) > cosine(cat, revenue) + 0.2
    one = oai.embeddings.create(model=EMBED, input="The cat sat on the mat.", encoding_format="float")
    assert max(abs(x - y) for x, y in zip(one.data[0].embedding, cat, strict=True)) < 1e-4


def test_embedding_errors_are_clear_400s(oai):
    with pytest.raises(openai.BadRequestError) as raised:
        oai.embeddings.create(model=EMBED, input="word " * 2000)
    assert raised.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as raised:
        oai.embeddings.create(model=EMBED, input="short", dimensions=128)
    assert raised.value.param == "dimensions"
    with pytest.raises(openai.BadRequestError):
        oai.embeddings.create(model=EMBED, input="")


def test_the_openai_alias_prefix_serves_the_same_models(model_server, model_tenant):
    with openai.OpenAI(
        base_url=model_server.url + "/v1/openai/v1", api_key=model_tenant.key, max_retries=0
    ) as alias:
        assert CHAT in {model.id for model in alias.models.list()}


def test_openai_streams_end_with_done_and_llama_stack_streams_without(model_server, model_tenant):
    body = {"model": CHAT, "messages": ASK, "max_tokens": 2, "stream": True}
    with model_server.client(model_tenant) as http:
        for prefix, ending in (
            ("/v1", "data: [DONE]\n\n"),
            ("/v1/openai/v1", '"finish_reason":"length"}]}\n\n'),
        ):
            response = http.post(prefix + "/chat/completions", json=body)
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.text.endswith(ending), prefix
