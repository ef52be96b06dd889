"""The remote provider against real servers: llama.cpp's own HTTP server (SmolLM2-135M, one slot,
behind an API key) for chat, completions, embeddings, discovery and its errors; a scripted HTTP server
(``_openai_servers.ScriptedServer``) for what llama.cpp never answers: 429, 5xx, broken streams,
silence."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from _openai_servers import LlamaServer, ScriptedServer

from cairn.adapters.inference_openai import OpenAICompatibleProvider
from cairn.core.errors import (
    Busy,
    ContextLengthExceeded,
    InvalidInput,
    ModelNotFound,
    Unavailable,
    UpstreamFailed,
    UpstreamTimeout,
)
from cairn.core.ports.inference import ChatRuntime, EmbeddingRuntime, ModelType, ProvidedModel

pytestmark = pytest.mark.anyio

KEY = f"sk-cairn-test-{secrets.token_hex(8)}"
CHAT = {
    "model": "smollm2",
    "messages": [{"role": "user", "content": "Say hello."}],
    "max_tokens": 16,
    "temperature": 0,
}
# Runs until stopped: 400 tokens take several seconds even on a quiet host
ENDLESS = {**CHAT, "max_tokens": 400, "ignore_eos": True}
OVERFLOW = "hello " * 700  # ~700 tokens, over the 512-token window


@pytest.fixture(scope="module")
def chat_server() -> Iterator[LlamaServer]:
    server = LlamaServer.start(api_key=KEY)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def embedding_server() -> Iterator[LlamaServer]:
    server = LlamaServer.start(embedding=True)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    yield server
    server.stop()


@contextlib.asynccontextmanager
async def remote(
    base_url: str, api_key: str | None = KEY, **options: Any
) -> AsyncIterator[OpenAICompatibleProvider]:
    provider = OpenAICompatibleProvider(
        "remote-test", "remote::llama-cpp", base_url, api_key, **{"timeout": 30.0, **options}
    )
    try:
        yield provider
    finally:
        await provider.close()


@pytest.fixture
async def provider(chat_server: LlamaServer) -> AsyncIterator[OpenAICompatibleProvider]:
    async with remote(chat_server.base_url) as built:
        yield built


async def drain(chunks: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return [chunk async for chunk in chunks]


def content(chunks: list[dict[str, Any]]) -> list[str]:
    return [
        c["choices"][0]["delta"]["content"]
        for c in chunks
        if c["choices"] and c["choices"][0]["delta"].get("content")
    ]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_chat_yields_each_chunk_as_the_server_sends_it(provider: OpenAICompatibleProvider) -> None:
    assert isinstance(provider, ChatRuntime) and isinstance(provider, EmbeddingRuntime)
    chunks, arrivals = [], []
    async for chunk in provider.chat(CHAT):
        chunks.append(chunk)
        arrivals.append(time.monotonic())
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert len(content(chunks)) >= 2
    usage = chunks[-1]["usage"]  # asked for with stream_options.include_usage
    assert usage["prompt_tokens"] > 0 and 0 < usage["completion_tokens"] <= 16
    # Chunks that were buffered would arrive together; these are spread over the generation's time
    generation_seconds = chunks[-1]["timings"]["predicted_ms"] / 1000
    assert arrivals[-1] - arrivals[0] > generation_seconds / 2


async def test_complete_yields_text_completion_chunks_with_usage(provider: OpenAICompatibleProvider) -> None:
    body = {"model": "smollm2", "prompt": "Once upon a time", "max_tokens": 8, "temperature": 0}
    chunks = await drain(provider.complete(body))
    assert {chunk["object"] for chunk in chunks} == {"text_completion"}
    assert "".join(chunk["choices"][0]["text"] for chunk in chunks if chunk["choices"]).strip()
    assert chunks[-1]["usage"]["completion_tokens"] == 8


async def test_embed_returns_vectors_in_input_order(embedding_server: LlamaServer) -> None:
    async with remote(embedding_server.base_url, None) as provider:
        texts: list[str | list[int]] = ["The cat sleeps.", "Quarterly revenue grew.", [1, 2, 3]]
        forward = await provider.embed("smollm2", texts)
        backward = await provider.embed("smollm2", texts[::-1])
    assert [len(vector) for vector in forward.vectors] == [576] * 3
    assert forward.vectors[0] != forward.vectors[1]
    for vector, reversed_vector in zip(forward.vectors, backward.vectors[::-1], strict=True):
        assert vector == pytest.approx(reversed_vector, abs=1e-4)
    assert forward.prompt_tokens == backward.prompt_tokens > 3
    async with remote(embedding_server.base_url, None) as provider:
        many = await provider.embed("smollm2", [f"Sentence number {n}." for n in range(40)])
        assert many.vectors[7] == pytest.approx(
            (await provider.embed("smollm2", ["Sentence number 7."])).vectors[0], abs=1e-4
        )


async def test_models_are_discovered_unless_configured(chat_server: LlamaServer) -> None:
    async with remote(chat_server.base_url) as provider:
        assert await provider.models() == [ProvidedModel("smollm2", ModelType.LLM)]
        await provider.ping()
    configured = [ProvidedModel("minilm", ModelType.EMBEDDING, context_length=256, dimension=384)]
    async with remote(f"http://127.0.0.1:{closed_port()}/v1", models=configured) as provider:
        assert await provider.models() == configured  # without asking the (absent) server


async def test_unreachable_server_is_unavailable() -> None:
    async with remote(f"http://127.0.0.1:{closed_port()}/v1") as provider:
        for call in (
            drain(provider.chat(CHAT)),
            provider.embed("m", ["x"]),
            provider.ping(),
            provider.models(),
        ):
            with pytest.raises(Unavailable) as caught:
                await call
            assert type(caught.value) is Unavailable
            assert "'remote-test' cannot be reached" in caught.value.message


async def test_a_refused_key_is_upstream_failed_and_never_quoted(chat_server: LlamaServer) -> None:
    wrong = f"sk-wrong-{secrets.token_hex(8)}"
    async with remote(chat_server.base_url, wrong) as provider:
        for call in (drain(provider.chat(CHAT)), provider.ping()):
            with pytest.raises(UpstreamFailed, match="refused Cairn's key \\(HTTP 401\\)") as caught:
                await call
            assert wrong not in str(caught.value)


async def test_a_key_the_server_echoes_is_masked(scripted: ScriptedServer) -> None:
    async with remote(scripted.base_url("echo-key")) as provider:
        with pytest.raises(InvalidInput, match="Bad header Bearer \\*\\*\\*") as caught:
            await drain(provider.chat(CHAT))
    assert KEY not in str(caught.value)


async def test_a_bad_parameter_is_invalid_input_with_the_servers_reason(
    provider: OpenAICompatibleProvider,
) -> None:
    with pytest.raises(InvalidInput, match=r"HTTP 400.*max_tokens") as caught:
        await drain(provider.chat({**CHAT, "max_tokens": "many"}))
    assert type(caught.value) is InvalidInput


async def test_a_prompt_over_the_window_is_context_length_exceeded(
    provider: OpenAICompatibleProvider, embedding_server: LlamaServer
) -> None:
    with pytest.raises(ContextLengthExceeded, match="exceeds the available context size") as caught:
        await drain(provider.chat({**CHAT, "messages": [{"role": "user", "content": OVERFLOW}]}))
    assert caught.value.param == "messages"
    with pytest.raises(ContextLengthExceeded) as caught:
        await drain(provider.complete({"model": "smollm2", "prompt": OVERFLOW, "max_tokens": 4}))
    assert caught.value.param == "prompt"
    async with remote(embedding_server.base_url, None) as embedder:
        with pytest.raises(ContextLengthExceeded) as caught:
            await embedder.embed("smollm2", ["short", OVERFLOW])
    assert caught.value.param == "input"


async def test_closing_the_stream_stops_generation(
    provider: OpenAICompatibleProvider, chat_server: LlamaServer
) -> None:
    stream = provider.chat(ENDLESS)
    for _ in range(3):
        await anext(stream)
    closed = time.monotonic()
    await stream.aclose()
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}) as client:
        while (await client.get(f"{chat_server.url}/slots")).json()[0]["is_processing"]:
            assert time.monotonic() - closed < 2.0, "the server still generates for a closed stream"
            await asyncio.sleep(0.02)


async def test_over_max_concurrency_and_queue_depth_is_busy_at_once(chat_server: LlamaServer) -> None:
    async with remote(chat_server.base_url, max_concurrency=1, queue_depth=1) as provider:
        first = provider.chat(ENDLESS)
        await anext(first)
        queued = asyncio.create_task(drain(provider.chat(CHAT)))
        await asyncio.sleep(0.2)
        assert not queued.done()
        started = time.monotonic()
        with pytest.raises(Busy) as caught:
            await drain(provider.chat(CHAT))
        assert time.monotonic() - started < 0.1 and caught.value.retry_after == 1.0
        await first.aclose()
        assert content(await asyncio.wait_for(queued, 30))
    async with remote(chat_server.base_url, max_concurrency=1, queue_depth=0) as provider:
        first = provider.chat(ENDLESS)
        await anext(first)
        with pytest.raises(Busy):
            await drain(provider.chat(CHAT))
        await first.aclose()
        assert content(await drain(provider.chat(CHAT)))  # the slot is free again


async def test_a_silent_server_is_upstream_timeout(scripted: ScriptedServer) -> None:
    async with remote(scripted.base_url("silent"), timeout=0.3) as provider:
        for call in (drain(provider.chat(CHAT)), provider.embed("m", ["x"]), provider.ping()):
            started = time.monotonic()
            with pytest.raises(UpstreamTimeout, match=r"longer than 0\.3 s"):
                await call
            assert time.monotonic() - started < 2.0
    async with remote(scripted.base_url("stall-mid-stream"), timeout=0.3) as provider:
        stream = provider.chat(CHAT)
        assert content([await anext(stream)]) == ["Hello"]
        with pytest.raises(UpstreamTimeout):
            await anext(stream)


@pytest.mark.parametrize(
    ("script", "error", "message"),
    [
        ("broken", UpstreamFailed, "HTTP 500.*CUDA error: out of memory"),
        ("wrong-path", UpstreamFailed, "HTTP 404.*Not Found"),
        ("no-model", ModelNotFound, "`gpt-9` does not exist"),
        ("busy", Busy, "HTTP 429.*Rate limit reached"),
        ("tgi-window", ContextLengthExceeded, "`inputs` tokens \\+ `max_new_tokens` must be <= 2048"),
        ("json-answer", UpstreamFailed, "without an event stream"),
    ],
)
async def test_error_answers_translate(
    scripted: ScriptedServer, script: str, error: type[Exception], message: str
) -> None:
    async with remote(scripted.base_url(script)) as provider:
        with pytest.raises(error, match=message) as caught:
            await drain(provider.chat(CHAT))
    assert type(caught.value) is error
    if isinstance(caught.value, Busy):
        assert caught.value.retry_after == 7.0


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("error-mid-stream", "failed during the stream: the engine died"),
        ("not-json-mid-stream", "not a JSON object"),
        ("cut-mid-stream", "the connection broke"),
    ],
)
async def test_a_stream_that_fails_midway_raises_where_it_fails(
    scripted: ScriptedServer, script: str, message: str
) -> None:
    async with remote(scripted.base_url(script)) as provider:
        stream = provider.chat(CHAT)
        assert content([await anext(stream)]) == ["Hello"]
        with pytest.raises(UpstreamFailed, match=message):
            await anext(stream)


async def test_a_malformed_embeddings_answer_is_upstream_failed(scripted: ScriptedServer) -> None:
    async with remote(scripted.base_url("twice-index-0")) as provider:
        with pytest.raises(UpstreamFailed, match="did not answer with 2 well-formed embeddings"):
            await provider.embed("m", ["a", "b"])


async def test_a_stream_without_done_ends_with_the_body(scripted: ScriptedServer) -> None:
    async with remote(scripted.base_url("no-done")) as provider:
        assert content(await drain(provider.chat(CHAT))) == ["Hello", " world"]


async def test_the_event_stream_is_read_as_sse_defines_it(scripted: ScriptedServer) -> None:
    """Comments, multi-line data, every kind of line end, events cut across reads; nothing after [DONE]."""
    async with remote(scripted.base_url("quirky")) as provider:
        assert content(await drain(provider.chat(CHAT))) == ["one", "two", "three"]
