"""Model runtimes: what generates text and embeddings for the inference router (``core.inference``).
Implemented in process (``adapters.inference_llamacpp`` for GGUF chat models, ``adapters.embed_onnx``
for ONNX embedding models) and by any OpenAI-compatible server (``adapters.inference_openai``).

Requests and chunks are OpenAI wire objects (``dict``): the router validates a request, names the
provider's own model id in it and hands it over; the runtime answers with the same objects the OpenAI
API streams, which the router re-labels (ids, model names) and checks. A runtime never sees a tenant.

Errors: ``ContextLengthExceeded`` when the prompt does not fit the model's window, ``Busy`` when every
slot is taken and the queue is full, ``Unavailable`` when the runtime cannot be reached, ``UpstreamFailed``
/ ``UpstreamTimeout`` for a remote server's failure; never a bare exception of the runtime.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

Json = dict[str, Any]


class ModelType(StrEnum):
    LLM = "llm"
    EMBEDDING = "embedding"


@dataclass(frozen=True)
class ProvidedModel:
    """A model as its runtime knows it."""

    provider_model_id: str
    model_type: ModelType
    context_length: int | None = None
    dimension: int | None = None  # embedding models: the length of a vector


@dataclass(frozen=True)
class Embedded:
    vectors: list[list[float]]
    prompt_tokens: int


class InferenceProvider(Protocol):
    """One configured runtime: its models and a way to reach them."""

    provider_id: str  # unique among the configured providers, e.g. "embedded"
    provider_type: str  # Llama Stack's naming: "inline::llama-cpp", "remote::vllm", ...

    async def models(self) -> list[ProvidedModel]:
        """The models this runtime serves now."""

    async def ping(self) -> None:
        """Raise ``Unavailable`` if the runtime cannot answer."""

    async def close(self) -> None: ...


@runtime_checkable
class ChatRuntime(InferenceProvider, Protocol):
    # True when the runtime's own server enforces ``tool_choice`` and parses tool calls (vLLM, OpenAI).
    # Otherwise the router enforces the contract itself: a JSON schema over the declared tools for
    # ``required`` and named choices, recognition of calls written as JSON for ``auto``.
    native_tool_choice: bool

    def chat(self, body: Json) -> AsyncGenerator[Json, None]:
        """Stream ``body`` (an OpenAI chat-completions request; ``stream`` is ignored: a runtime always
        streams) as ``chat.completion.chunk`` objects, the last carrying ``usage``. Closing the
        iterator early stops generation within one token step and frees the slot."""

    def complete(self, body: Json) -> AsyncGenerator[Json, None]:
        """The same for a legacy completions request: ``text_completion`` chunks, the last with
        ``usage``."""


@runtime_checkable
class EmbeddingRuntime(InferenceProvider, Protocol):
    async def embed(self, model: str, inputs: Sequence[str | Sequence[int]]) -> Embedded:
        """One vector per input, in order (normalised as the model defines). Inputs longer than the
        model's window raise ``ContextLengthExceeded`` naming the first such input's index."""
