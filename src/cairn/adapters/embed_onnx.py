"""Embeddings in process: a sentence-transformers-style ONNX encoder (all-MiniLM-L6-v2 by default) run by
onnxruntime, its text tokenized by Hugging Face ``tokenizers`` (D26).

Vectors: the mean of the model's token embeddings (its first output) over the attention mask, then
L2-normalised, which is what sentence-transformers computes for all-MiniLM-L6-v2 (its ``Pooling(mean)``
and ``Normalize`` modules). Padding is masked out, so a vector does not depend on the batch it was
computed in beyond float rounding.

Inputs are strings or token-id arrays; an array is a text's tokens without the special ones (what the
tokenizer gives with ``add_special_tokens=False``), and the tokenizer's template (``[CLS] … [SEP]``)
is added to both. Nothing is truncated: an input of more than ``context_length`` tokens, special
tokens included, is ``ContextLengthExceeded``; an empty string or array, or an id outside the
vocabulary, is ``InvalidInput``; both name the first such input's index (``input[i]``).
``prompt_tokens`` counts every token, special ones included. The default window is 256 tokens:
sentence-transformers' ``max_seq_length`` for this model, so its vectors are the ones every other user
of the model computes. The model was fine-tuned on 128-token pairs; its positions go to 512, but past
256 nobody has measured what its vectors are worth.

Work: tokenizing a request and running each of its batches happen in the runtime's own worker threads
(``parallel`` of them, each run using ``threads`` cores; onnxruntime and tokenizers release the GIL),
never on the event loop, niced below it (``background_threads``: the threads onnxruntime and the
tokenizer create from them are too). Inputs are sorted by token count and cut into batches of at most
``max_batch`` inputs and ``MAX_BATCH_TOKENS`` padded tokens, which bounds a run's memory (attention
grows with batch × length²: 64 inputs of 256 tokens peaked at 1.5 GB); vectors come back in input order.
A request runs its batches one after another, so concurrent requests take turns batch by batch. At most
``max_pending`` requests are admitted (running or waiting for a worker); another is ``Busy`` at once.

Cancellation: a cancelled request starts no further batch; its batch in flight is told to stop
(``RunOptions.terminate``, which onnxruntime checks between operators) and the cancellation goes on
only once that thread is done, so a worker is free when its request is gone.

Lifetime: the first ``embed`` or ``ping`` loads the tokenizer and the session in a worker thread; a
model that cannot be loaded is ``Unavailable``, and the next call tries again. ``models`` does not load
when the model's Hugging Face ``config.json`` (beside the tokenizer or the graph) declares its vector
length (``hidden_size``); the graph must then agree, or it is not loaded (``Unavailable``). ``close()``
waits for the running work, then releases the session; every later call is ``Unavailable``.

Session: no CPU memory arena (it would keep a run's peak resident for good), no spinning of idle
worker threads (they would burn the cores the server shares), one inter-op thread. What a request of
``TRIM_AFTER_TOKENS`` padded tokens or more freed is given back to the system once it is done
(``native_memory``), so that the resident size follows the work instead of its highest mark.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import onnxruntime as ort  # type: ignore[import-untyped]
from tokenizers import Tokenizer

from ..core.errors import Busy, ContextLengthExceeded, InvalidInput, ModelNotFound, Unavailable
from ..core.ports.inference import Embedded, ModelType, ProvidedModel
from .background_threads import lower_priority
from .native_memory import release_free_memory

log = logging.getLogger("cairn.inference")

PROVIDER_TYPE = "inline::onnx"
CONTEXT_LENGTH = 256
MAX_BATCH_TOKENS = 4096  # padded tokens in one run: 16 inputs of 256 tokens, ~230 MB at its peak
BUSY_RETRY_SECONDS = 1.0
TRIM_AFTER_TOKENS = 512  # padded tokens of a request after which its freed memory goes back to the system
FEEDS = frozenset({"input_ids", "attention_mask", "token_type_ids"})

T = TypeVar("T")
Ids = npt.NDArray[np.int64]


class OnnxEmbeddingRuntime:
    """An ``EmbeddingRuntime`` serving one ONNX encoder as ``model_id``."""

    provider_type = PROVIDER_TYPE

    def __init__(
        self,
        provider_id: str,
        model_id: str,
        model_path: Path,
        tokenizer_path: Path,
        *,
        threads: int,
        max_batch: int = 64,
        context_length: int = CONTEXT_LENGTH,
        parallel: int = 1,
        max_pending: int = 64,
    ) -> None:
        if context_length > MAX_BATCH_TOKENS:
            raise ValueError(f"context_length must be at most MAX_BATCH_TOKENS ({MAX_BATCH_TOKENS})")
        self.provider_id = provider_id
        self.model_id = model_id
        self.context_length = context_length
        self._paths = (model_path, tokenizer_path)
        self._declared_dimension = _declared_dimension(tokenizer_path.parent, model_path.parent)
        self._threads = threads
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._pending = 0
        self._workers = ThreadPoolExecutor(
            parallel, thread_name_prefix=f"cairn-embed-{provider_id}", initializer=lower_priority
        )
        self._loading = asyncio.Lock()
        self._encoder: _Encoder | None = None
        self._closed = False

    async def models(self) -> list[ProvidedModel]:
        if self._closed:
            raise Unavailable(f"The embedding model `{self.model_id}` is closed.")
        dimension = self._declared_dimension or (await self._loaded()).dimension
        return [ProvidedModel(self.model_id, ModelType.EMBEDDING, self.context_length, dimension)]

    async def ping(self) -> None:
        await self._loaded()

    async def close(self) -> None:
        self._closed = True
        await asyncio.to_thread(self._workers.shutdown)
        self._encoder = None

    async def embed(self, model: str, inputs: Sequence[str | Sequence[int]]) -> Embedded:
        if model != self.model_id:
            raise ModelNotFound(f"The model `{model}` does not exist.", param="model")
        if not inputs:
            raise InvalidInput("'input' must not be empty.", param="input")
        if self._pending >= self._max_pending:
            raise Busy(
                f"The embedding model `{self.model_id}` has its queue full; retry shortly.",
                retry_after=BUSY_RETRY_SECONDS,
            )
        self._pending += 1
        try:
            encoder = await self._loaded()
            rows = await self._in_worker(encoder.tokenize, inputs, self.context_length)
            vectors: list[list[float]] = [[] for _ in rows]
            padded = 0
            for batch in _batches([len(row) for row in rows], self._max_batch):
                stop = ort.RunOptions()
                pooled = await self._in_worker(encoder.run, [rows[i] for i in batch], stop, stop=stop)
                for index, vector in zip(batch, pooled, strict=True):
                    vectors[index] = vector
                padded += len(batch) * max(len(rows[i]) for i in batch)
            if padded >= TRIM_AFTER_TOKENS:
                await self._in_worker(release_free_memory)
            return Embedded(vectors, sum(len(row) for row in rows))
        finally:
            self._pending -= 1

    async def _loaded(self) -> _Encoder:
        async with self._loading:
            if self._encoder is None:
                encoder = await self._in_worker(_Encoder.load, *self._paths, self._threads)
                if self._declared_dimension not in (None, encoder.dimension):
                    log.error(
                        "embed_onnx.dimension_mismatch model=%s config=%s graph=%s",
                        self._paths[0],
                        self._declared_dimension,
                        encoder.dimension,
                    )
                    raise Unavailable("The embedding model is not the one its config.json describes.")
                self._encoder = encoder
            return self._encoder

    async def _in_worker(self, work: Callable[..., T], *args: Any, stop: Any = None) -> T:
        """``work(*args)`` in a worker thread. Cancelled, it never starts or, with ``stop`` (its
        ``RunOptions``), is told to stop; either way the cancellation goes on once the thread is done."""
        if self._closed:
            raise Unavailable(f"The embedding model `{self.model_id}` is closed.")
        job = self._workers.submit(work, *args)
        done = asyncio.wrap_future(job)
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            if not job.cancel():
                if stop is not None:
                    stop.terminate = True
                await asyncio.wait([done])
                done.exception()  # retrieved: the failure of a stopped run goes with the cancellation
            raise


def _declared_dimension(*directories: Path) -> int | None:
    """The ``hidden_size`` of the first ``config.json`` in ``directories`` that declares one."""
    for directory in dict.fromkeys(directories):
        try:
            config = json.loads((directory / "config.json").read_bytes())
        except (OSError, ValueError):
            continue
        size = config.get("hidden_size") if isinstance(config, dict) else None
        if isinstance(size, int) and size > 0:
            return size
    return None


def _batches(lengths: list[int], max_batch: int) -> list[list[int]]:
    """Input indices, shortest first, cut at ``max_batch`` inputs or ``MAX_BATCH_TOKENS`` padded tokens
    (each input is the longest of its batch so far)."""
    batches: list[list[int]] = []
    current: list[int] = []
    for index in sorted(range(len(lengths)), key=lengths.__getitem__):
        if current and (len(current) == max_batch or (len(current) + 1) * lengths[index] > MAX_BATCH_TOKENS):
            batches.append(current)
            current = []
        current.append(index)
    batches.append(current)
    return batches


@dataclass(frozen=True)
class _Encoder:
    """A loaded model; its methods run in worker threads."""

    session: Any
    tokenizer: Tokenizer
    output: str
    dimension: int
    token_types: bool  # the graph takes ``token_type_ids`` (all zero: one segment)
    prefix: Ids  # the special tokens the tokenizer's template puts around a text
    suffix: Ids
    vocabulary: int

    @classmethod
    def load(cls, model_path: Path, tokenizer_path: Path, threads: int) -> _Encoder:
        try:
            tokenizer = Tokenizer.from_file(str(tokenizer_path))
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.enable_cpu_mem_arena = False
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # tokenizers raises bare Exceptions, onnxruntime its own classes
            log.error("embed_onnx.load_failed model=%s error=%s", model_path, exc)
            raise Unavailable("The embedding model cannot be loaded; see the server log.") from exc
        tokenizer.no_truncation()
        tokenizer.no_padding()
        with_specials = tokenizer.encode("a").ids
        plain = tokenizer.encode("a", add_special_tokens=False).ids
        at = next((i for i in range(len(with_specials)) if with_specials[i : i + len(plain)] == plain), None)
        inputs = {node.name for node in session.get_inputs()}
        output = session.get_outputs()[0]
        if not {"input_ids", "attention_mask"} <= inputs <= FEEDS or len(output.shape) != 3 or at is None:
            log.error("embed_onnx.not_an_encoder model=%s inputs=%s output=%s", model_path, inputs, output)
            raise Unavailable("The embedding model is not a token-embedding encoder; see the server log.")
        return cls(
            session=session,
            tokenizer=tokenizer,
            output=output.name,
            dimension=int(output.shape[2]),
            token_types="token_type_ids" in inputs,
            prefix=np.array(with_specials[:at], np.int64),
            suffix=np.array(with_specials[at + len(plain) :], np.int64),
            vocabulary=tokenizer.get_vocab_size(with_added_tokens=True),
        )

    def tokenize(self, inputs: Sequence[str | Sequence[int]], window: int) -> list[Ids]:
        encodings = iter(self.tokenizer.encode_batch([item for item in inputs if isinstance(item, str)]))
        rows = []
        for index, item in enumerate(inputs):
            name = f"input[{index}]"
            if isinstance(item, str):
                row = np.array(next(encodings).ids, np.int64)
                if not item:
                    raise InvalidInput(f"Invalid '{name}': the string is empty.", param=name)
            else:
                row = np.concatenate([self.prefix, self._token_ids(name, item), self.suffix])
            if len(row) > window:
                raise ContextLengthExceeded(
                    f"Invalid '{name}': {len(row)} tokens, over the model's maximum context length of "
                    f"{window} tokens.",
                    param=name,
                )
            rows.append(row)
        return rows

    def _token_ids(self, name: str, item: Sequence[int]) -> Ids:
        ids = np.asarray(item)
        if ids.ndim != 1 or not len(ids) or ids.dtype.kind not in "iu":
            raise InvalidInput(f"Invalid '{name}': expected a non-empty array of token ids.", param=name)
        outside = np.flatnonzero((ids < 0) | (ids >= self.vocabulary))
        if len(outside):
            raise InvalidInput(
                f"Invalid '{name}': token id {ids[outside[0]]} at position {outside[0]} is outside the "
                f"model's vocabulary (0 to {self.vocabulary - 1}).",
                param=name,
            )
        return ids.astype(np.int64)

    def run(self, rows: list[Ids], stop: Any) -> list[list[float]]:
        ids = np.zeros((len(rows), max(len(row) for row in rows)), np.int64)
        mask = np.zeros_like(ids)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if self.token_types:
            feeds["token_type_ids"] = np.zeros_like(ids)
        try:
            hidden = self.session.run([self.output], feeds, stop)[0]
        except Exception as exc:  # onnxruntime's own classes, none of them a RuntimeError
            if not stop.terminate:
                log.error("embed_onnx.run_failed shape=%s error=%s", ids.shape, exc)
            raise Unavailable("The embedding model failed; see the server log.") from exc
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / weights.sum(axis=1)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        vectors: list[list[float]] = (pooled / norms).tolist()
        return vectors
