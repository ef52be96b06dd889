"""The in-process embedding runtime on the packaged all-MiniLM-L6-v2 (int8 ONNX graph, real tokenizer):
its vectors, its window and input checks, batching, concurrency and cancellation. One runtime for the
module, loaded once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from cairn.adapters.embed_onnx import OnnxEmbeddingRuntime
from cairn.adapters.packaged_models import PackagedEmbeddingModel, packaged_embedding_model
from cairn.core.errors import Busy, ContextLengthExceeded, InvalidInput, ModelNotFound, Unavailable
from cairn.core.ports.inference import EmbeddingRuntime, ModelType, ProvidedModel

pytestmark = pytest.mark.anyio

MODEL = "all-MiniLM-L6-v2"
MAX_BATCH = 16
TOPICS = (
    "files uploads models tokens vectors batches windows servers agents keys buckets queues threads cores "
    "memory latency documents chunks queries answers"
)
WORDS = TOPICS.split()
# 254 tokens: a batch of 16 of them runs for a second or more on two cores
LONG = "the server embeds every chunk of the uploaded document before it answers " * 18


def cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def packaged() -> PackagedEmbeddingModel:
    model = packaged_embedding_model()
    assert model is not None, "the embedded models are installed by requirements/embedded-models.txt"
    return model


@pytest.fixture(scope="module")
async def runtime(packaged: PackagedEmbeddingModel) -> AsyncIterator[OnnxEmbeddingRuntime]:
    runtime = OnnxEmbeddingRuntime(
        "embedded", MODEL, packaged.onnx, packaged.tokenizer, threads=2, max_batch=MAX_BATCH, max_pending=2
    )
    yield runtime
    await runtime.close()


async def embed(runtime: OnnxEmbeddingRuntime, *inputs: str | list[int]) -> list[list[float]]:
    return (await runtime.embed(MODEL, inputs)).vectors


async def test_it_serves_one_384_dimension_model_with_a_256_token_window(
    runtime: OnnxEmbeddingRuntime,
) -> None:
    assert isinstance(runtime, EmbeddingRuntime)
    assert runtime.provider_type == "inline::onnx"
    assert await runtime.models() == [ProvidedModel(MODEL, ModelType.EMBEDDING, 256, 384)]
    await runtime.ping()


async def test_models_come_from_the_config_without_loading_the_graph(
    tmp_path: Path, packaged: PackagedEmbeddingModel
) -> None:
    """The catalog lists models on its first request: that must not load an encoder. A graph that could
    not even load shows it was never tried; without a config.json the graph is the only source."""
    broken = tmp_path / "graph" / "model.onnx"
    broken.parent.mkdir()
    broken.write_bytes(b"not an onnx graph")
    listed = OnnxEmbeddingRuntime("listed", MODEL, broken, packaged.tokenizer, threads=1)
    alone = tmp_path / "tokenizer" / "tokenizer.json"
    alone.parent.mkdir()
    alone.write_bytes(packaged.tokenizer.read_bytes())
    unlisted = OnnxEmbeddingRuntime("unlisted", MODEL, broken, alone, threads=1)
    try:
        assert await listed.models() == [ProvidedModel(MODEL, ModelType.EMBEDDING, 256, 384)]
        with pytest.raises(Unavailable):
            await unlisted.models()
    finally:
        await listed.close()
        await unlisted.close()


async def test_a_graph_that_contradicts_its_config_is_unavailable(
    tmp_path: Path, packaged: PackagedEmbeddingModel
) -> None:
    tokenizer = tmp_path / "tokenizer.json"
    tokenizer.write_bytes(packaged.tokenizer.read_bytes())
    (tmp_path / "config.json").write_text('{"hidden_size": 768}')
    runtime = OnnxEmbeddingRuntime("other", MODEL, packaged.onnx, tokenizer, threads=1)
    try:
        assert (await runtime.models())[0].dimension == 768
        with pytest.raises(Unavailable, match=r"config\.json"):
            await runtime.embed(MODEL, ["hello"])
    finally:
        await runtime.close()


async def test_vectors_have_the_model_dimension_and_unit_norm(runtime: OnnxEmbeddingRuntime) -> None:
    embedded = await runtime.embed(MODEL, ["Hello world", "How do I rotate an API key?"])
    assert embedded.prompt_tokens == 4 + 10  # [CLS] hello world [SEP], [CLS] how do i rotate … ? [SEP]
    assert [len(vector) for vector in embedded.vectors] == [384, 384]
    assert np.allclose(np.linalg.norm(embedded.vectors, axis=1), 1.0, atol=1e-5)


async def test_a_paraphrase_is_closer_than_an_unrelated_sentence(runtime: OnnxEmbeddingRuntime) -> None:
    query, paraphrase, unrelated = await embed(
        runtime,
        "How do I reset my password?",
        "What are the steps to change my account password?",
        "The recipe needs two cups of flour and an egg.",
    )
    assert cosine(query, paraphrase) > 0.6
    assert cosine(query, unrelated) < 0.3


async def test_order_survives_batches_and_length_sorting(runtime: OnnxEmbeddingRuntime) -> None:
    """40 inputs of 1 to 40 words, shuffled: three batches of inputs sorted by length, each vector
    back in its input's place and equal to the vector of the input alone."""
    order = np.random.default_rng(7).permutation(40)
    texts = [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(n + 1)) for i, n in enumerate(order)]
    together = await embed(runtime, *texts)
    alone = [(await embed(runtime, text))[0] for text in texts]
    assert min(cosine(a, b) for a, b in zip(together, alone, strict=True)) >= 0.9999


async def test_a_token_array_is_the_same_input_as_its_text(
    runtime: OnnxEmbeddingRuntime, packaged: PackagedEmbeddingModel
) -> None:
    text = "Tokens in, the same vector out."
    tokenizer = Tokenizer.from_file(str(packaged.tokenizer))
    tokenizer.no_padding()  # the file pads to 128
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    embedded = await runtime.embed(MODEL, [text, ids])
    assert embedded.prompt_tokens == 2 * (len(ids) + 2)
    assert cosine(*embedded.vectors) >= 0.9999


async def test_the_window_counts_the_special_tokens(runtime: OnnxEmbeddingRuntime) -> None:
    fits = await runtime.embed(MODEL, [[1037] * 254])  # "a" × 254, with [CLS] and [SEP]: 256
    assert fits.prompt_tokens == 256
    with pytest.raises(ContextLengthExceeded) as raised:
        await runtime.embed(MODEL, ["short", [1037] * 255])
    assert raised.value.param == "input[1]"
    assert "257 tokens" in raised.value.message and "256" in raised.value.message


async def test_an_over_long_text_is_refused_not_truncated(runtime: OnnxEmbeddingRuntime) -> None:
    with pytest.raises(ContextLengthExceeded) as raised:
        await runtime.embed(MODEL, ["fine", "also fine", "word " * 300, "word " * 400])
    assert raised.value.param == "input[2]"  # the first one over the window
    assert "input[2]" in raised.value.message


@pytest.mark.parametrize(
    ("inputs", "param", "says"),
    [
        (["ok", [101, 30522]], "input[1]", "token id 30522 at position 1 is outside"),
        ([[-1]], "input[0]", "token id -1 at position 0"),
        (["ok", "", [99999]], "input[1]", "empty"),
        ([[]], "input[0]", "non-empty array"),
        ([[1.5, 2.0]], "input[0]", "token ids"),
    ],
)
async def test_bad_inputs_are_named_by_index(
    runtime: OnnxEmbeddingRuntime, inputs: list[str | list[int]], param: str, says: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        await runtime.embed(MODEL, inputs)
    assert not isinstance(raised.value, ContextLengthExceeded)
    assert raised.value.param == param
    assert says in raised.value.message


async def test_no_inputs_or_another_model_is_refused(runtime: OnnxEmbeddingRuntime) -> None:
    with pytest.raises(InvalidInput) as raised:
        await runtime.embed(MODEL, [])
    assert raised.value.param == "input"
    with pytest.raises(ModelNotFound):
        await runtime.embed("text-embedding-3-small", ["hello"])


async def test_concurrent_requests_both_get_their_own_vectors(runtime: OnnxEmbeddingRuntime) -> None:
    first = [f"first request, text {i}: {WORDS[i]}" for i in range(20)]
    second = [f"second request, text {i}: " + " ".join(WORDS[: i + 3]) for i in range(20)]
    one, two = await asyncio.gather(embed(runtime, *first), embed(runtime, *second))
    for together, alone in ((one, await embed(runtime, *first)), (two, await embed(runtime, *second))):
        assert min(cosine(a, b) for a, b in zip(together, alone, strict=True)) >= 0.9999


async def test_a_request_over_the_pending_limit_is_busy(runtime: OnnxEmbeddingRuntime) -> None:
    results = await asyncio.gather(
        *(embed(runtime, f"request {i}") for i in range(3)), return_exceptions=True
    )
    assert [type(result) for result in results[:2]] == [list, list]
    assert isinstance(results[2], Busy) and results[2].retry_after > 0


async def test_cancelling_a_request_stops_its_running_batch_and_starts_no_other(
    runtime: OnnxEmbeddingRuntime,
) -> None:
    task = asyncio.create_task(runtime.embed(MODEL, [LONG] * (4 * MAX_BATCH)))
    await asyncio.sleep(0.2)  # tokenized; its first batch is running
    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - cancelled_at < 0.5  # where the batch alone runs for a second or more
    cpu = time.process_time()  # every thread of the process
    await asyncio.sleep(0.5)
    assert time.process_time() - cpu < 0.1
    assert len((await embed(runtime, "still serving"))[0]) == 384


async def test_a_model_that_cannot_load_is_unavailable(
    tmp_path: Path, packaged: PackagedEmbeddingModel
) -> None:
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"not an onnx graph")
    runtime = OnnxEmbeddingRuntime("broken", MODEL, broken, packaged.tokenizer, threads=1)
    try:
        with pytest.raises(Unavailable):
            await runtime.ping()
        with pytest.raises(Unavailable):
            await runtime.embed(MODEL, ["hello"])
    finally:
        await runtime.close()
    with pytest.raises(Unavailable, match="closed"):
        await runtime.models()
