"""The embedded chat runtime: GGUF chat models run in process by llama.cpp's own server, through xllamacpp.

``LlamaCppRuntime`` serves each configured model with one llama.cpp ``Server``, loaded on the first
request for it, off the event loop, once however many requests arrive together (loads run one at a
time); ``models()`` never loads. A server always listens, so each is bound to a UNIX socket in a private
temporary directory (mode 0700), never a TCP port; ``close()`` removes the directory.

The window: ``n_ctx = context_length * slots`` with one KV cache per slot, so every request has
``context_length`` tokens, the figure ``models()`` reports; llama.cpp never shrinks it to fit memory.

Priority: the model loads, and generations are handed over, in threads niced below the event loop
(``background_threads``); llama.cpp's own threads start from the loading one and keep its priority, so
the server stays responsive while the model computes on every core.

Admission, per model: at most ``slots`` generations run, each in a worker thread of a pool sized for
exactly that; at most ``queue_depth`` wait; one more raises ``Busy`` before any work. A slot is given
back when its worker returns, that is once llama.cpp has let go of it, so llama.cpp never queues a
request of its own.

Streaming: the worker calls llama.cpp with ``stream`` on and ``stream_options.include_usage`` (the last
chunk carries ``usage``); llama.cpp calls back with each chunk, which goes to the event loop. Once the
iterator is closed (``aclose``, cancellation, a client gone) the next call back returns True, which stops
generation and frees the slot within one token step; prompt processing is not interrupted, since the
first call back comes with the first generated token. A stream holds at most one chunk per token of the
slot's window. ``close()`` stops every generation (their streams raise ``Unavailable``), waits for the
workers and releases every server.

Errors: llama.cpp's ``exceed_context_size_error`` → ``ContextLengthExceeded``; its other refusals of the
request (400, 501) and the ``ValueError`` it raises on a malformed one → ``InvalidInput`` with its
message (a ``grammar`` it cannot parse: ``param`` ``grammar``, since it says only that it failed); an
image (or any part other than text) → ``InvalidInput`` before any work, since the models are loaded
without a multimodal projector; anything else → ``UpstreamFailed``; a model that does not load →
``Unavailable``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import xllamacpp  # type: ignore[import-untyped]

from ..core.errors import (
    Busy,
    CairnError,
    ContextLengthExceeded,
    InvalidInput,
    ModelNotFound,
    Unavailable,
    UpstreamFailed,
)
from ..core.ports.inference import Json, ModelType, ProvidedModel
from .background_threads import lower_priority

log = logging.getLogger("cairn.inference")

LOG_VERBOSITY = 1  # llama.cpp's own log, on stderr: errors only (its info lines come with every request)
PROMPT_CACHE_MIB = 256  # RAM for prompts of finished requests, reused by the next turn (llama.cpp: 8 GiB)
PING_WAIT_SECONDS = 1.0
STALL_SECONDS = 60.0  # a server that has not answered ping's probe for this long is stuck
MEAN_WEIGHT = 0.2  # of the latest generation in the running mean that sets Busy's retry_after

Kind = Literal["chat", "completions"]
_END = object()  # the last item of a stream's queue
_FIELD = re.compile(r"^Field '(\w+)'")


class _Admission:
    """At most ``slots`` holders and ``queue_depth`` waiters; anyone more is refused at once."""

    def __init__(self, slots: int, queue_depth: int) -> None:
        self._free = asyncio.Semaphore(slots)
        self._slots = slots
        self._queue_depth = queue_depth
        self._waiting = 0
        self._mean_seconds = 1.0  # how long a generation holds its slot, as a running mean

    async def acquire(self, model_id: str) -> float:
        if self._free.locked() and self._waiting >= self._queue_depth:
            retry_after = round(max(1.0, self._mean_seconds * (self._queue_depth + 1) / self._slots), 1)
            raise Busy(
                f"Every slot of the model {model_id!r} is taken and its queue is full; retry shortly.",
                retry_after=retry_after,
            )
        self._waiting += 1
        try:
            await self._free.acquire()
        finally:
            self._waiting -= 1
        return time.monotonic()

    def release(self, since: float) -> None:
        self._mean_seconds += MEAN_WEIGHT * (time.monotonic() - since - self._mean_seconds)
        self._free.release()


@dataclass(eq=False)
class _Model:
    model_id: str
    path: Path
    socket_name: str
    admission: _Admission
    server: Any = None  # an xllamacpp.Server once loaded
    loading: asyncio.Task[Any] | None = None
    load_failure: str | None = None
    probe: asyncio.Future[Any] | None = None
    probe_started: float = 0.0


class LlamaCppRuntime:
    """``models`` maps each model id to its GGUF file. ``threads``: llama.cpp's threads per model, for
    generation and for prompt processing; ``slots``: requests a model generates for at once;
    ``context_length``: tokens per request (prompt and output); ``queue_depth``: requests that may wait
    for a slot, per model."""

    provider_type = "inline::llama-cpp"
    native_tool_choice = False

    def __init__(
        self,
        provider_id: str,
        models: Mapping[str, Path],
        *,
        threads: int,
        slots: int,
        context_length: int,
        queue_depth: int,
    ) -> None:
        if not models:
            raise ValueError("LlamaCppRuntime needs at least one model")
        if min(threads, slots, context_length) < 1 or queue_depth < 0:
            raise ValueError("threads, slots and context_length must be positive, queue_depth not negative")
        self.provider_id = provider_id
        self._threads = threads
        self._slots = slots
        self._context_length = context_length
        self._models = {
            model_id: _Model(model_id, Path(path), f"{index}.sock", _Admission(slots, queue_depth))
            for index, (model_id, path) in enumerate(models.items())
        }
        self._workers = ThreadPoolExecutor(
            max_workers=slots * len(models), thread_name_prefix="cairn-llama", initializer=lower_priority
        )
        # llama.cpp's threads are made by the one that loads the model, and start with its priority
        self._loader = ThreadPoolExecutor(
            1, thread_name_prefix="cairn-llama-load", initializer=lower_priority
        )
        self._generations: dict[asyncio.Future[None], threading.Event] = {}
        self._load_lock = asyncio.Lock()
        self._socket_dir: Path | None = None
        self._closed = False

    async def models(self) -> list[ProvidedModel]:
        return [
            ProvidedModel(model_id, ModelType.LLM, context_length=self._context_length)
            for model_id in self._models
        ]

    async def ping(self) -> None:
        """Unavailable if a model failed to load, or a loaded server has left a probe unanswered for
        ``STALL_SECONDS`` (one probe per server at a time: a long prompt holds the server's loop up to
        a few seconds, which is not a failure)."""
        if self._closed:
            raise Unavailable("The embedded model runtime is shut down.")
        for model in self._models.values():
            if model.load_failure is not None:
                raise Unavailable(model.load_failure)
            if model.server is not None:
                await self._probe(model)

    def chat(self, body: Json) -> AsyncGenerator[Json, None]:
        return self._stream("chat", body)

    def complete(self, body: Json) -> AsyncGenerator[Json, None]:
        return self._stream("completions", body)

    async def close(self) -> None:
        self._closed = True
        for stop in self._generations.values():
            stop.set()
        pending = [*self._generations, *(m.loading for m in self._models.values() if m.loading is not None)]
        if pending:
            await asyncio.wait(pending)
        servers = [m.server for m in self._models.values() if m.server is not None]
        for model in self._models.values():
            model.server = None
        # a server's destructor stops llama.cpp's loop and joins its thread
        await asyncio.to_thread(servers.clear)
        self._workers.shutdown(wait=False)
        self._loader.shutdown(wait=False)
        if self._socket_dir is not None:
            await asyncio.to_thread(shutil.rmtree, self._socket_dir, True)

    async def _stream(self, kind: Kind, body: Json) -> AsyncGenerator[Json, None]:
        model = self._model(body)
        _check_one_choice(kind, body)
        _check_text_only(body)
        if self._closed:
            raise Unavailable("The embedded model runtime is shut down.")
        since = await model.admission.acquire(model.model_id)
        try:
            server = await self._server(model)
            if self._closed:
                raise Unavailable("The embedded model runtime is shut down.")
        except BaseException:
            model.admission.release(since)
            raise
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def on_chunk(chunk: Any) -> bool:  # in the worker thread
            if stop.is_set():
                return True
            loop.call_soon_threadsafe(chunks.put_nowait, chunk)
            return False

        request = {
            **body,
            "stream": True,
            "stream_options": {**(body.get("stream_options") or {}), "include_usage": True},
        }
        work = loop.run_in_executor(self._workers, _generate, server, kind, request, on_chunk)
        del server  # close() releases it; a suspended stream must not keep it alive
        self._generations[work] = stop

        def finished(_: asyncio.Future[None]) -> None:
            del self._generations[work]
            model.admission.release(since)
            chunks.put_nowait(_END)

        work.add_done_callback(finished)
        param = "messages" if kind == "chat" else "prompt"
        try:
            while (chunk := await chunks.get()) is not _END:
                if not isinstance(chunk, dict):
                    raise UpstreamFailed(f"The model runtime streamed {type(chunk).__name__}, not a chunk.")
                if "error" in chunk:
                    raise _refusal(chunk["error"], param)
                yield chunk
            if stop.is_set():
                raise Unavailable("The embedded model runtime shut down during generation.")
            failure = work.exception()
            if failure is not None:
                raise _failure(failure) from None  # its traceback would hold the server
        finally:
            stop.set()

    def _model(self, body: Json) -> _Model:
        model_id = body.get("model")
        if not isinstance(model_id, str):
            raise InvalidInput("The request names no model.", param="model")
        model = self._models.get(model_id)
        if model is None:
            raise ModelNotFound(f"The embedded runtime has no model {model_id!r}.", param="model")
        return model

    async def _server(self, model: _Model) -> Any:
        if model.server is not None:
            return model.server
        if model.loading is None:
            model.loading = asyncio.get_running_loop().create_task(self._load(model))
        # a request that gives up waiting leaves the load running, for the next one and for close()
        return await asyncio.shield(model.loading)

    async def _load(self, model: _Model) -> Any:
        try:
            async with self._load_lock:
                model.server = await asyncio.get_running_loop().run_in_executor(
                    self._loader, self._start, model
                )
        except Exception as exc:
            log.error("The model %r did not load from %s: %s", model.model_id, model.path, exc)
            model.load_failure = f"The model {model.model_id!r} could not be loaded; the server log says why."
            raise Unavailable(model.load_failure) from exc
        finally:
            model.loading = None
        model.load_failure = None
        return model.server

    def _start(self, model: _Model) -> Any:
        if self._socket_dir is None:
            self._socket_dir = Path(tempfile.mkdtemp(prefix="cairn-llama-"))
        socket = self._socket_dir / model.socket_name
        socket.unlink(missing_ok=True)  # a failed start leaves its socket, and a server cannot bind over it
        params = xllamacpp.CommonParams()
        params.model.path = str(model.path)
        params.model_alias = {model.model_id}  # the ``model`` of every chunk
        params.n_parallel = self._slots
        params.n_ctx = self._context_length * self._slots
        params.kv_unified = False
        params.fit_params = False  # it would shrink n_ctx to fit memory (and read the model twice)
        params.warmup = False
        params.cpuparams.n_threads = self._threads
        params.cpuparams_batch.n_threads = self._threads
        params.n_threads_http = 1  # the listener no one connects to
        params.cache_ram_mib = PROMPT_CACHE_MIB
        params.endpoint_metrics = True  # ping's probe
        params.verbosity = LOG_VERBOSITY
        params.hostnames = [str(socket)]
        started = time.monotonic()
        server = xllamacpp.Server(params)
        log.info("Loaded the model %r in %.1f s", model.model_id, time.monotonic() - started)
        return server

    async def _probe(self, model: _Model) -> None:
        if model.probe is None or model.probe.done():
            model.probe = asyncio.get_running_loop().run_in_executor(None, model.server.handle_metrics)
            model.probe_started = time.monotonic()
        try:
            answer = await asyncio.wait_for(asyncio.shield(model.probe), PING_WAIT_SECONDS)
        except TimeoutError:
            if time.monotonic() - model.probe_started > STALL_SECONDS:
                raise Unavailable(
                    f"The model {model.model_id!r} has not answered for {STALL_SECONDS:.0f} s."
                ) from None
            return
        except Exception as exc:
            raise Unavailable(f"The model {model.model_id!r} does not answer: {exc}") from exc
        if not isinstance(answer, str) or not answer.startswith("#"):
            raise Unavailable(f"The model {model.model_id!r} answered its probe with {answer!r}.")


def _check_one_choice(kind: Kind, body: Json) -> None:
    """llama.cpp gives each choice (``n``) and each prompt of a list a slot of its own; admission counts
    one per request."""
    if body.get("n") not in (None, 1):
        raise InvalidInput("The embedded runtime writes one choice per request: n must be 1.", param="n")
    prompt = body.get("prompt")
    several = isinstance(prompt, list) and len(prompt) > 1 and not all(isinstance(t, int) for t in prompt)
    if kind == "completions" and several:  # a list of token ids is one prompt
        raise InvalidInput("The embedded runtime takes one prompt per request.", param="prompt")


def _check_text_only(body: Json) -> None:
    """The models are loaded without a multimodal projector, so they read text only; llama.cpp would
    fail on an image part with a runtime error rather than refuse it."""
    for index, message in enumerate(body.get("messages") or ()):
        content = message.get("content") if isinstance(message, dict) else None
        parts = content if isinstance(content, list) else ()
        if any(isinstance(part, dict) and part.get("type", "text") != "text" for part in parts):
            raise InvalidInput(
                "This model reads text only: send the message without image or other non-text parts.",
                param=f"messages[{index}].content",
            )


def _generate(server: Any, kind: Kind, request: Json, on_chunk: Callable[[Any], bool]) -> None:
    handle = server.handle_chat_completions if kind == "chat" else server.handle_completions
    handle(request, on_chunk)


def _refusal(error: Any, param: str) -> CairnError:
    """The error llama.cpp answered with, as a Cairn error."""
    if not isinstance(error, dict):
        return UpstreamFailed(f"The model runtime failed: {error!r}")
    message = str(error.get("message") or "The model runtime refused the request.")
    kind = error.get("type")
    if kind == "exceed_context_size_error":
        prompt_tokens, window = error.get("n_prompt_tokens"), error.get("n_ctx")
        if isinstance(prompt_tokens, int) and isinstance(window, int):
            message = f"The prompt is {prompt_tokens} tokens; the model's context window is {window} tokens."
        return ContextLengthExceeded(message, param=param)
    if kind in ("invalid_request_error", "not_supported_error"):
        return _invalid(message)
    log.warning("The model runtime failed: %s", message)
    return UpstreamFailed(f"The model runtime failed: {message}")


def _failure(exc: BaseException) -> CairnError:
    """An exception llama.cpp raised, as a Cairn error."""
    if isinstance(exc, ValueError):
        return _invalid(str(exc))
    log.warning("The model runtime failed: %r", exc)
    return UpstreamFailed(f"The model runtime failed: {exc}")


def _invalid(message: str) -> InvalidInput:
    if "failed to parse grammar" in message:  # llama.cpp logs why, and answers only this
        return InvalidInput(
            "The grammar is not valid GBNF: llama.cpp could not parse it (a rule used but not defined, "
            "left recursion, or a syntax error).",
            param="grammar",
        )
    field = _FIELD.match(message)
    return InvalidInput(message, param=field.group(1) if field else None)
