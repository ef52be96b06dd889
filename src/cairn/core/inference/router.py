"""The inference router: a validated OpenAI request in, the runtime of its model found, and the runtime's
answer out as Cairn's own OpenAI objects (its ids, its model identifiers, one ``finish_reason``).

Invariants:
- Every request names the runtime's own model id when it reaches the runtime, and every object that
  comes back names the model as the client did not have to know it: by its Cairn identifier.
- Streams and whole answers are one path: a whole answer is the stream, gathered. The first chunk
  comes only once the runtime has produced something, so a request the runtime refuses (too long,
  busy, down) fails before any chunk and can still be answered with a status code.
- Closing a stream early closes the runtime's stream, which stops generation.
- On a runtime without ``native_tool_choice`` the tool contract is enforced here (``tool_calls``).
- A chat request with ``store: true`` is kept (``stored``) once its answer is whole: a stream only when
  it ran to its end, so a client that leaves, or a failure, keeps nothing.
- Models are the tenant's (``catalog``): every call names the tenant it serves.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from ..errors import InvalidInput
from ..ports.inference import ChatRuntime, Embedded, EmbeddingRuntime, Json, ModelType
from .catalog import Model, ModelCatalog
from .stored import StoredCompletions
from .tool_calls import ToolCallReader, plan

# Request fields that are Cairn's to honour, never the runtime's
_CAIRN_FIELDS = ("stream", "stream_options", "store", "metadata")


class InferenceRouter:
    def __init__(self, catalog: ModelCatalog, stored: StoredCompletions) -> None:
        self.catalog = catalog
        self.stored = stored

    async def chat_stream(self, body: Json, tenant: str) -> AsyncGenerator[Json, None]:
        """``chat.completion.chunk`` objects for a validated chat request; the usage chunk last when
        ``stream_options.include_usage`` asks for it."""
        model = await self.catalog.get(body["model"], ModelType.LLM, tenant=tenant)
        wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        kept = _ChatAnswer() if body.get("store") else None
        chunks = self._chat_chunks(body, model)
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                if kept is not None:
                    kept.add(chunk)
                if chunk["choices"] or wants_usage:
                    yield chunk
        if kept is not None:
            await self.stored.keep(tenant, body, kept.completion())

    async def chat(self, body: Json, tenant: str) -> Json:
        """The ``chat.completion`` object: the stream, gathered."""
        model = await self.catalog.get(body["model"], ModelType.LLM, tenant=tenant)
        answer = _ChatAnswer()
        chunks = self._chat_chunks(body, model)
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                answer.add(chunk)
        completion = answer.completion()
        if body.get("store"):
            await self.stored.keep(tenant, body, completion)
        return completion

    async def _chat_chunks(self, body: Json, model: Model) -> AsyncGenerator[Json, None]:
        """The chunks of the answer, the usage chunk (no choices) last when the runtime counted."""
        runtime = self._chat_runtime(model)
        request = _for_runtime(body, model)
        reader = None
        if not runtime.native_tool_choice:
            request, tool_plan = plan(request)
            reader = ToolCallReader(tool_plan)
        identity = {
            "id": _chat_completion_id(),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model.identifier,
        }

        def chunk(delta: Json, finish_reason: str | None = None, logprobs: Any = None) -> Json:
            choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}
            return {**identity, "choices": [choice]}

        usage: Json | None = None
        finish: str | None = None
        yield_role = True
        stream = runtime.chat(request)
        try:
            async for upstream in stream:
                usage = upstream.get("usage") or usage
                for choice in upstream.get("choices") or ():
                    finish = choice.get("finish_reason") or finish
                    delta = choice.get("delta") or {}
                    out: Json = {"role": "assistant", "content": ""} if yield_role else {}
                    text = delta.get("content") or ""
                    text = reader.feed(text) if reader else text
                    if text:
                        out["content"] = text
                    if delta.get("tool_calls") and reader is None:
                        out["tool_calls"] = delta["tool_calls"]
                    if out or choice.get("logprobs"):
                        yield chunk(out, logprobs=choice.get("logprobs"))
                        yield_role = False
        finally:
            await stream.aclose()
        if reader is not None:
            rest, call = reader.finish()
            if rest:
                yield chunk({"content": rest})
            if call is not None:
                yield chunk({"tool_calls": [{"index": 0, **call}]})
                finish = "tool_calls"
            elif finish == "tool_calls":
                finish = "stop"
        yield chunk({}, finish_reason=finish or "stop")
        if usage is not None:
            yield {**identity, "choices": [], "usage": usage}

    async def complete_stream(self, body: Json, tenant: str) -> AsyncGenerator[Json, None]:
        """``text_completion`` objects for a validated legacy completions request."""
        model = await self.catalog.get(body["model"], ModelType.LLM, tenant=tenant)
        runtime = self._chat_runtime(model)
        identity = {
            "id": "cmpl-" + secrets.token_hex(12),
            "object": "text_completion",
            "created": int(time.time()),
            "model": model.identifier,
        }
        usage: Json | None = None
        finish: str | None = None
        stream = runtime.complete(_for_runtime(body, model))
        try:
            async for upstream in stream:
                usage = upstream.get("usage") or usage
                for choice in upstream.get("choices") or ():
                    finish = choice.get("finish_reason") or finish
                    if choice.get("text"):
                        text = {"index": 0, "text": choice["text"], "logprobs": choice.get("logprobs")}
                        yield {**identity, "choices": [{**text, "finish_reason": None}]}
        finally:
            await stream.aclose()
        end = {"index": 0, "text": "", "logprobs": None, "finish_reason": finish or "stop"}
        yield {**identity, "choices": [end]}
        if usage is not None and (body.get("stream_options") or {}).get("include_usage"):
            yield {**identity, "choices": [], "usage": usage}

    async def complete(self, body: Json, tenant: str) -> Json:
        text: list[str] = []
        answer: Json = {}
        finish = "stop"
        usage = None
        async for chunk in self.complete_stream({**body, "stream_options": {"include_usage": True}}, tenant):
            answer = answer or chunk
            usage = chunk.get("usage") or usage
            for choice in chunk["choices"]:
                text.append(choice["text"])
                finish = choice["finish_reason"] or finish
        choice = {"index": 0, "text": "".join(text), "logprobs": None, "finish_reason": finish}
        identity = {key: answer[key] for key in ("id", "object", "created", "model")}
        return {**identity, "choices": [choice], "usage": usage}

    async def embed(
        self, model_name: str, inputs: Sequence[str | Sequence[int]], tenant: str
    ) -> tuple[Model, Embedded]:
        model = await self.catalog.get(model_name, ModelType.EMBEDDING, tenant=tenant)
        runtime = self.catalog.providers[model.provider_id]
        if not isinstance(runtime, EmbeddingRuntime):
            raise _cannot_serve(model)
        return model, await runtime.embed(model.provider_model_id, inputs)

    def _chat_runtime(self, model: Model) -> ChatRuntime:
        runtime = self.catalog.providers[model.provider_id]
        if not isinstance(runtime, ChatRuntime):
            raise _cannot_serve(model)
        return runtime


def _chat_completion_id() -> str:
    """``chatcmpl-`` and 24 hex digits: the time in milliseconds first, so that ids sort by creation
    (stored completions list in that order), then randomness."""
    return f"chatcmpl-{time.time_ns() // 1_000_000:012x}{secrets.token_hex(6)}"


def _cannot_serve(model: Model) -> InvalidInput:
    return InvalidInput(f"The model `{model.identifier}` cannot serve this request.", param="model")


def _for_runtime(body: Json, model: Model) -> Json:
    request = {key: value for key, value in body.items() if key not in _CAIRN_FIELDS}
    request["model"] = model.provider_model_id
    return request


class _ChatAnswer:
    """A ``chat.completion`` object, gathered from its chunks."""

    def __init__(self) -> None:
        self.first: Json = {}
        self.content: list[str] = []
        self.calls: dict[int, Json] = {}
        self.logprobs: list[Any] = []
        self.finish = "stop"
        self.usage: Json | None = None

    def add(self, chunk: Json) -> None:
        self.first = self.first or chunk
        self.usage = chunk.get("usage") or self.usage
        for choice in chunk["choices"]:
            delta = choice["delta"]
            self.content.append(delta.get("content") or "")
            for call in delta.get("tool_calls") or ():
                _merge_call(self.calls.setdefault(call.get("index", 0), {}), call)
            self.logprobs += (choice.get("logprobs") or {}).get("content") or ()
            self.finish = choice["finish_reason"] or self.finish

    def completion(self) -> Json:
        message: Json = {"role": "assistant", "content": "".join(self.content) or None, "refusal": None}
        if self.calls:
            message["tool_calls"] = [self.calls[index] for index in sorted(self.calls)]
        choice = {
            "index": 0,
            "message": message,
            "logprobs": {"content": self.logprobs} if self.logprobs else None,
            "finish_reason": self.finish,
        }
        return {
            "id": self.first["id"],
            "object": "chat.completion",
            "created": self.first["created"],
            "model": self.first["model"],
            "choices": [choice],
            "usage": self.usage,
        }


def _merge_call(into: Json, delta: Json) -> None:
    """Gather one tool call from its stream deltas (id, type and name once; arguments in pieces)."""
    function = delta.get("function") or {}
    into.setdefault("id", delta.get("id"))
    into.setdefault("type", delta.get("type") or "function")
    gathered = into.setdefault("function", {"name": "", "arguments": ""})
    gathered["name"] = gathered["name"] or function.get("name") or ""
    gathered["arguments"] += function.get("arguments") or ""
