"""Models on any OpenAI-compatible server (vLLM, llama.cpp's server, Ollama, TGI, OpenAI), over HTTP.

One provider is one server at ``base_url`` (its ``…/v1``), reached through one pooled
``aiohttp.ClientSession`` (D33: a third of httpx's time per request) that ``close()`` closes. A stream
read to its end returns its connection to the pool, for ``KEEPALIVE_SECONDS``. Its models are the
configured list or, when none is configured, whatever the server's ``GET /models`` lists, all taken as
chat models.

Bounds: at most ``max_concurrency`` requests in flight to the server and ``queue_depth`` more waiting
(each at most ``timeout``) for one of them to finish; any other request is ``Busy`` at once. A stream
holds its place until it ends or its iterator is closed. ``ping()`` and ``models()`` stand outside
that count, on one pooled connection kept for them. Connecting, sending a request until its answer's
head arrives, and each read of its body wait at most ``timeout``. An SSE event over
``MAX_EVENT_CHARS`` or a JSON answer over ``MAX_BODY_BYTES`` is refused, only the first
``MAX_ERROR_BYTES`` of an error answer are read, and JSON answers over ``PARSE_ON_LOOP_BYTES`` are
decoded in a worker thread.

Streams: chat and completions requests always go up with ``stream: true`` and
``stream_options.include_usage``; the SSE answer is decoded as it arrives and each chunk is yielded at
once, unchanged. Closing the iterator closes the response and its connection, so the server sees its
client gone and stops generating. An upstream that ignores ``include_usage`` ends with a chunk without
``usage``; the end of the body ends a stream without ``[DONE]`` too, but never before its first chunk.

Embeddings: vectors are placed by their ``index``. Servers do not say which input overflowed the
window, so ``ContextLengthExceeded`` names the parameter (``input``), not the input.

Errors are always ``core.errors``:

    refused connection, DNS failure               Unavailable
    connect, read or write timeout                UpstreamTimeout
    window exceeded (OpenAI's and vLLM's code     ContextLengthExceeded
      ``context_length_exceeded``, llama.cpp's
      ``exceed_context_size_error``, their texts)
    401, 403                                      UpstreamFailed: the server refused Cairn's key
    429                                           Busy, retry_after from Retry-After (else 1 s)
    404 naming a model                            ModelNotFound
    other 4xx                                     InvalidInput, with the server's message and param
    5xx, a 404 naming no model, other statuses,   UpstreamFailed
      malformed bodies, broken streams, an error
      event inside a stream (raised where it arrives)

The API key travels only in the ``Authorization`` header; a server message quoted in an error is cut to
``MAX_QUOTED_CHARS`` with the key masked. Messages name the provider, never its base URL.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import re
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import orjson

from ..core.errors import (
    Busy,
    CairnError,
    ContextLengthExceeded,
    InvalidInput,
    ModelNotFound,
    Unavailable,
    UpstreamFailed,
    UpstreamTimeout,
)
from ..core.ports.inference import Embedded, Json, ModelType, ProvidedModel

PROVIDER_TYPES = frozenset(
    {"remote::openai", "remote::vllm", "remote::llama-cpp", "remote::ollama", "remote::tgi"}
)
PING_TIMEOUT_SECONDS = 2.0
MAX_EVENT_CHARS = 4 << 20
MAX_BODY_BYTES = 128 << 20  # 2,048 embeddings of 1,536 floats are ~65 MB of JSON
MAX_ERROR_BYTES = 64 << 10
MAX_QUOTED_CHARS = 500
PARSE_ON_LOOP_BYTES = 256 << 10  # larger JSON answers are decoded in a worker thread
KEEPALIVE_SECONDS = 4.0
"""How long an idle pooled connection is reused: less than the 5 s after which uvicorn (vLLM's server)
and llama.cpp's server close one, so Cairn drops it first and no request goes out as the server closes
it (which fails with no answer). undici keeps the same 4 s for the same reason."""
BUSY_RETRY_SECONDS = 1.0
CONTEXT_CODES = frozenset({"context_length_exceeded", "exceed_context_size_error"})
CONTEXT_PHRASES = (
    "maximum context length",  # OpenAI, vLLM before its error codes
    "exceeds the available context size",  # llama.cpp chat and completions
    "too large to process",  # llama.cpp embeddings (answered with a 500)
    "`inputs` tokens + `max_new_tokens`",  # TGI
)
_LINE_END = re.compile(r"\r\n|\r|\n")


class _Gate:
    """At most ``slots`` holders at once and ``queue_depth`` waiting, each for at most ``wait_seconds``."""

    def __init__(self, name: str, slots: int, queue_depth: int, wait_seconds: float) -> None:
        self._name = name
        self._free = asyncio.Semaphore(slots)
        self._queue_depth = queue_depth
        self._waiting = 0
        self._wait_seconds = wait_seconds

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        if self._free.locked():
            if self._waiting >= self._queue_depth:
                raise self._busy()
            self._waiting += 1
            try:
                async with asyncio.timeout(self._wait_seconds):
                    await self._free.acquire()
            except TimeoutError:
                raise self._busy() from None
            finally:
                self._waiting -= 1
        else:
            await self._free.acquire()
        try:
            yield
        finally:
            self._free.release()

    def _busy(self) -> Busy:
        return Busy(
            f"{self._name} has every connection in use and its queue full; retry shortly.",
            retry_after=BUSY_RETRY_SECONDS,
        )


class OpenAICompatibleProvider:
    """A ``ChatRuntime`` and ``EmbeddingRuntime`` on an OpenAI-compatible server at ``base_url``."""

    def __init__(
        self,
        provider_id: str,
        provider_type: str,
        base_url: str,
        api_key: str | None,
        *,
        models: Sequence[ProvidedModel] | None = None,
        timeout: float = 60.0,
        max_concurrency: int = 4,
        queue_depth: int = 16,
        native_tool_choice: bool = False,
    ) -> None:
        if provider_type not in PROVIDER_TYPES:
            raise ValueError(f"provider_type {provider_type!r} is not one of {sorted(PROVIDER_TYPES)}")
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http:// or https:// URL")
        if timeout <= 0 or max_concurrency < 1 or queue_depth < 0:
            raise ValueError("timeout must be positive, max_concurrency at least 1, queue_depth ≥ 0")
        self.provider_id = provider_id
        self.provider_type = provider_type
        self.native_tool_choice = native_tool_choice
        self._models = None if models is None else list(models)
        self._name = f"Provider {provider_id!r}"
        self._api_key = api_key or None
        self._timeout = timeout
        self._gate = _Gate(self._name, max_concurrency, queue_depth, timeout)
        self._base_url = base_url.rstrip("/") + "/"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._pool = max_concurrency + 1  # one more than the gate lets through, for ping() and models()
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        """The pooled session, made on first use (inside the event loop, as aiohttp wants)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                connector=aiohttp.TCPConnector(limit=self._pool, keepalive_timeout=KEEPALIVE_SECONDS),
                auto_decompress=True,
            )
        return self._session

    async def models(self) -> list[ProvidedModel]:
        if self._models is not None:
            return list(self._models)
        listing = await self._get_json("models", self._timeout)
        data = listing.get("data") if isinstance(listing, dict) else None
        if not isinstance(data, list) or not all(
            isinstance(item, dict) and isinstance(item.get("id"), str) for item in data
        ):
            raise UpstreamFailed(f"{self._name} answered GET /models with something other than a list.")
        return [
            ProvidedModel(item["id"], ModelType.LLM, context_length=_positive_int(item.get("max_model_len")))
            for item in data
        ]

    async def ping(self) -> None:
        try:
            await self._get_json("models", min(self._timeout, PING_TIMEOUT_SECONDS))
        except Unavailable:
            raise
        except CairnError as exc:
            raise UpstreamFailed(f"{self._name} does not answer GET /models well: {exc.message}") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def chat(self, body: Json) -> AsyncIterator[Json]:
        return self._stream("chat/completions", body, param="messages")

    def complete(self, body: Json) -> AsyncIterator[Json]:
        return self._stream("completions", body, param="prompt")

    async def embed(self, model: str, inputs: Sequence[str | Sequence[int]]) -> Embedded:
        listed = [item if isinstance(item, str) else list(item) for item in inputs]
        payload = {"model": model, "input": listed, "encoding_format": "float"}
        async with self._gate.held(), self._exchange("POST", "embeddings", payload, param="input") as answer:
            raw = await self._body(answer)
        if len(raw) > PARSE_ON_LOOP_BYTES:
            return await asyncio.to_thread(self._embedded, raw, len(listed))
        return self._embedded(raw, len(listed))

    async def _stream(self, path: str, body: Json, *, param: str) -> AsyncIterator[Json]:
        options = body.get("stream_options")
        payload = {
            **body,
            "stream": True,
            "stream_options": {**(options if isinstance(options, dict) else {}), "include_usage": True},
        }
        async with self._gate.held(), self._exchange("POST", path, payload, param=param) as answer:
            if not answer.headers.get("content-type", "").startswith("text/event-stream"):
                raise UpstreamFailed(f"{self._name} answered a streamed request without an event stream.")
            chunks = 0
            done = False
            with self._transport_errors():
                async with contextlib.aclosing(_events(_text(answer), self._name)) as events:
                    async for kind, data in events:
                        if done:  # an event after [DONE]: leave it, and the connection, unread
                            break
                        if data == "[DONE]":  # read on to the body's end: the connection is reused
                            done = True
                            continue
                        yield self._chunk(kind, data)
                        chunks += 1
            if not chunks:
                raise UpstreamFailed(f"{self._name} ended its stream without a chunk.")

    def _chunk(self, kind: str, data: str) -> Json:
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            chunk = None
        if kind == "error" or (isinstance(chunk, dict) and "error" in chunk):
            message = _error_fields(chunk)[0] or data
            raise UpstreamFailed(f"{self._name} failed during the stream: {self._quoted(message)}")
        if not isinstance(chunk, dict):
            raise UpstreamFailed(f"{self._name} sent a stream event that is not a JSON object.")
        return chunk

    def _embedded(self, raw: bytes, count: int) -> Embedded:
        malformed = UpstreamFailed(f"{self._name} did not answer with {count} well-formed embeddings.")
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise malformed from None
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(answer, dict) or not isinstance(data, list) or len(data) != count:
            raise malformed
        vectors: list[list[float]] = [[] for _ in range(count)]
        for item in data:
            index = item.get("index") if isinstance(item, dict) else None
            vector = item.get("embedding") if isinstance(item, dict) else None
            if (
                not isinstance(index, int)
                or not 0 <= index < count
                or vectors[index]
                or not isinstance(vector, list)
                or not vector
                or not all(isinstance(x, float | int) and not isinstance(x, bool) for x in vector)
            ):
                raise malformed
            vectors[index] = vector
        usage = answer.get("usage")
        tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        return Embedded(vectors=vectors, prompt_tokens=tokens if isinstance(tokens, int) else 0)

    async def _get_json(self, path: str, timeout: float) -> object:
        async with self._exchange("GET", path, None, param=None, timeout=timeout) as answer:
            raw = await self._body(answer)
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamFailed(f"{self._name} answered GET /{path} with malformed JSON.") from None

    @contextlib.asynccontextmanager
    async def _exchange(
        self, method: str, path: str, payload: Json | None, *, param: str | None, timeout: float | None = None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """The server's answer, once its status says success; its body not read yet. An answer read to
        its end leaves its connection in the pool; any other is closed with its connection."""
        seconds = self._timeout if timeout is None else timeout
        with self._transport_errors():
            async with asyncio.timeout(seconds):
                answer = await self._client().request(
                    method,
                    self._base_url + path,
                    data=None if payload is None else orjson.dumps(payload),
                    headers=None if payload is None else {"Content-Type": "application/json"},
                    timeout=_timeouts(seconds),
                    allow_redirects=False,
                )
        try:
            if not 200 <= answer.status < 300:
                with self._transport_errors():
                    head = await _head(answer.content.iter_any(), MAX_ERROR_BYTES)
                raise self._refusal(answer.status, answer.headers.get("retry-after"), head, param)
            yield answer
        finally:
            if answer.content.at_eof():
                answer.release()
            else:
                answer.close()

    async def _body(self, answer: aiohttp.ClientResponse) -> bytes:
        with self._transport_errors():
            raw = await _head(answer.content.iter_any(), MAX_BODY_BYTES + 1)
        if len(raw) > MAX_BODY_BYTES:
            raise UpstreamFailed(f"{self._name} answered with more than {MAX_BODY_BYTES >> 20} MiB.")
        return raw

    @contextlib.contextmanager
    def _transport_errors(self) -> Iterator[None]:
        try:
            yield
        except aiohttp.ConnectionTimeoutError as exc:
            raise UpstreamTimeout(
                f"{self._name} took longer than {self._timeout:g} s to accept the connection."
            ) from exc
        except TimeoutError as exc:  # aiohttp's read timeouts are TimeoutErrors too
            raise UpstreamTimeout(
                f"{self._name} took longer than {self._timeout:g} s to send the next bytes."
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            raise Unavailable(f"{self._name} cannot be reached ({self._quoted(str(exc))}).") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamFailed(
                f"{self._name}: the connection broke ({type(exc).__name__}: {self._quoted(str(exc))})."
            ) from exc

    def _refusal(self, status: int, retry_after: str | None, body: bytes, param: str | None) -> CairnError:
        try:
            message, markers, upstream_param = _error_fields(orjson.loads(body))
        except orjson.JSONDecodeError:
            message, markers, upstream_param = body.decode("utf-8", "replace").strip(), set(), None
        message = self._quoted(message)
        said = f": {message}" if message else "."
        if status in (401, 403):
            return UpstreamFailed(f"{self._name} refused Cairn's key (HTTP {status}).")
        if status == 429:
            return Busy(f"{self._name} is busy (HTTP 429){said}", retry_after=_retry_seconds(retry_after))
        if markers & CONTEXT_CODES or any(phrase in message for phrase in CONTEXT_PHRASES):
            return ContextLengthExceeded(
                f"The input does not fit the model's context window{said}", param=param
            )
        if status == 404 and ("model_not_found" in markers or "model" in message.lower()):
            return ModelNotFound(f"{self._name} does not serve that model{said}", param="model")
        if 400 <= status < 500 and status != 404:
            return InvalidInput(
                f"{self._name} refused the request (HTTP {status}){said}", param=upstream_param or param
            )
        return UpstreamFailed(f"{self._name} failed (HTTP {status}){said}")

    def _quoted(self, text: str) -> str:
        if self._api_key:
            text = text.replace(self._api_key, "***")
        return text if len(text) <= MAX_QUOTED_CHARS else text[: MAX_QUOTED_CHARS - 1] + "…"


def _timeouts(seconds: float) -> aiohttp.ClientTimeout:
    """``seconds`` for a pooled connection or a new one, and between any two reads; none in total (a
    stream lasts as long as the model writes)."""
    return aiohttp.ClientTimeout(total=None, connect=seconds, sock_connect=seconds, sock_read=seconds)


async def _text(answer: aiohttp.ClientResponse) -> AsyncIterator[str]:
    """The body as text, in its declared charset (UTF-8 unless it says otherwise)."""
    decoder = codecs.getincrementaldecoder(answer.get_encoding() if answer.charset else "utf-8")("replace")
    async for piece in answer.content.iter_any():
        if text := decoder.decode(piece):
            yield text
    if tail := decoder.decode(b"", final=True):
        yield tail


async def _head(pieces: AsyncIterator[bytes], limit: int) -> bytes:
    """The first ``limit`` bytes of ``pieces`` (all of them when shorter)."""
    head = bytearray()
    async for piece in pieces:
        head += piece
        if len(head) >= limit:
            break
    return bytes(head[:limit])


async def _events(text: AsyncIterator[str], name: str) -> AsyncGenerator[tuple[str, str], None]:
    """``(event type, data)`` of each server-sent event in ``text``, as the WHATWG rules read them:
    ``data:`` lines of one event are joined by newlines, a blank line ends the event, lines starting with
    ``:`` are comments (keep-alives), ``id:`` and ``retry:`` are ignored. The end of ``text`` also ends
    a pending line and event."""
    pending = ""
    data: list[str] = []
    size = 0
    kind = ""
    ended = False
    iterator = aiter(text)
    while not ended:
        try:
            piece = await anext(iterator)
        except StopAsyncIteration:
            ended, piece = True, "\n\n"
        pending += piece
        # A "\r" at the end of a piece may be the first half of a "\r\n" split across two reads
        held = "\r" if pending.endswith("\r") and not ended else ""
        *lines, pending = _LINE_END.split(pending[:-1] if held else pending)
        pending += held
        if len(pending) > MAX_EVENT_CHARS:
            raise UpstreamFailed(f"{name} sent a stream line over {MAX_EVENT_CHARS >> 20} MiB.")
        for line in lines:
            if not line:
                if data:
                    yield kind or "message", "\n".join(data)
                data, size, kind = [], 0, ""
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "data":
                data.append(value)
                size += len(value) + 1
                if size > MAX_EVENT_CHARS:
                    raise UpstreamFailed(f"{name} sent a stream event over {MAX_EVENT_CHARS >> 20} MiB.")
            elif field == "event":
                kind = value


def _error_fields(answer: Any) -> tuple[str, set[str], str | None]:
    """The message, the codes and types (lower case) and the parameter of an error answer, whichever of
    the dialects it speaks: ``{"error": {"message", "type", "code", "param"}}`` (OpenAI, vLLM,
    llama.cpp, Ollama), the same fields at the top level (vLLM before 0.6), ``{"error": "…",
    "error_type": "…"}`` (TGI) or ``{"detail": …}`` (FastAPI)."""
    if not isinstance(answer, dict):
        return "", set(), None
    fields = answer.get("error", answer)
    if not isinstance(fields, dict):
        fields = {"message": fields, "type": answer.get("error_type")}
    message = fields.get("message", fields.get("detail", ""))
    if not isinstance(message, str):
        message = orjson.dumps(message).decode()
    markers = {str(fields[key]).lower() for key in ("code", "type") if isinstance(fields.get(key), str)}
    param = fields.get("param")
    return message.strip(), markers, param if isinstance(param, str) and param else None


def _retry_seconds(header: str | None) -> float:
    """Retry-After as seconds: a number of them or an HTTP date; 1 s when absent or unreadable."""
    if header:
        with contextlib.suppress(ValueError):
            return max(0.0, float(header))
        with contextlib.suppress(TypeError, ValueError):
            return max(0.0, (parsedate_to_datetime(header) - datetime.now(UTC)).total_seconds())
    return BUSY_RETRY_SECONDS


def _positive_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
