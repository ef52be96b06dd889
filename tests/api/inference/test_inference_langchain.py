"""The inference face through LangChain's OpenAI integration (``langchain-openai``): ``ChatOpenAI``
whole, streamed and with a forced tool call, ``OpenAIEmbeddings`` for documents and a query.

``check_embedding_ctx_length=False``: otherwise ``OpenAIEmbeddings`` counts tokens with tiktoken, which
downloads its encodings on first use (these tests run offline) and would split texts by OpenAI's
tokenizer rather than the model's."""

from __future__ import annotations

import math

import openai
import pytest
from langchain_openai import ChatOpenAI, OpenAIEmbeddings
from pydantic import BaseModel

CHAT = "llama-cpp/SmolLM2-135M-Instruct"
EMBED = "onnx/all-MiniLM-L6-v2"
ASK = "What is the capital of France?"


class GetWeather(BaseModel):
    """Get the current weather in a city."""

    city: str


@pytest.fixture(scope="module")
def chat(model_server, model_tenant) -> ChatOpenAI:
    return ChatOpenAI(
        model=CHAT,
        base_url=model_server.url + "/v1",
        api_key=model_tenant.key,
        temperature=0,
        max_completion_tokens=8,
        max_retries=0,
        timeout=120,
    )


def test_chat_whole_and_streamed_say_the_same(chat):
    whole = chat.invoke(ASK)
    assert whole.content and whole.response_metadata["finish_reason"] == "length"
    assert whole.usage_metadata["output_tokens"] == 8
    assert "".join(chunk.content for chunk in chat.stream(ASK)) == whole.content


def test_a_forced_tool_call_is_a_valid_call(chat):
    answer = chat.bind_tools([GetWeather], tool_choice="GetWeather").invoke(
        "What is the weather in Paris?", max_completion_tokens=64
    )
    (call,) = answer.tool_calls
    assert call["name"] == "GetWeather"
    assert isinstance(GetWeather.model_validate(call["args"]).city, str)


def test_embeddings_of_documents_and_a_query(model_server, model_tenant):
    embeddings = OpenAIEmbeddings(
        model=EMBED,
        base_url=model_server.url + "/v1",
        api_key=model_tenant.key,
        check_embedding_ctx_length=False,
        max_retries=0,
    )
    documents = embeddings.embed_documents(["Paris is in France.", "Bananas are yellow."])
    query = embeddings.embed_query("Which country is Paris in?")
    assert [len(v) for v in documents] == [384, 384] and len(query) == 384
    similarity = [sum(a * b for a, b in zip(query, v, strict=True)) for v in documents]
    assert similarity[0] > similarity[1]
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-3) for v in documents)


def test_an_unknown_model_is_the_openai_error_langchain_raises(model_server, model_tenant):
    lost = ChatOpenAI(model="no-such-model", base_url=model_server.url + "/v1", api_key=model_tenant.key)
    with pytest.raises(openai.NotFoundError, match="no-such-model"):
        lost.invoke(ASK)
