"""An OpenAI-compatible chat-completions server that streams tokens as fast as it can, for the benchmarks
that measure what Cairn adds in front of a model server (``responses_bench.py``).

``POST /v1/chat/completions``, whatever the request asks, streams ``--tokens`` chunks of one short
token each (fewer when ``max_tokens`` or ``max_completion_tokens`` is smaller; ``finish_reason`` is then
``length``) in OpenAI's ``chat.completion.chunk`` shape: a first chunk with the assistant's role, the
tokens, a chunk with the finish reason, a usage chunk and ``data: [DONE]``. The chunks of one request
are encoded once before it starts; between two chunks the server only yields to its event loop, so that
concurrent streams interleave as a batching model server's do. ``GET /v1/models`` lists its one model,
``GET /health`` answers 200 (``_harness.Server`` waits on it).

Run: python bench/_fast_upstream.py --port 8000 [--tokens 256] [--model fast]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from collections.abc import AsyncIterator

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

WORDS = (" the", " cat", " sat", " on", " a", " warm", " mat", " and")
PROMPT_TOKENS = 8  # what the usage chunk says the prompt was


def chunk(head: dict[str, object], delta: dict[str, str], finish: str | None) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return b"data: " + orjson.dumps({**head, "choices": [choice]}) + b"\n\n"


def stream_of(model: str, tokens: int, limit: int | None) -> list[bytes]:
    """Every frame of one streamed answer, encoded."""
    count = tokens if limit is None else min(tokens, limit)
    head = {
        "id": "chatcmpl-" + secrets.token_hex(12),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }
    words = [chunk(head, {"content": word}, None) for word in WORDS]
    usage = {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": count,
        "total_tokens": PROMPT_TOKENS + count,
    }
    return [
        chunk(head, {"role": "assistant", "content": ""}, None),
        *(words[i % len(words)] for i in range(count)),
        chunk(head, {}, "stop" if count == tokens else "length"),
        b"data: " + orjson.dumps({**head, "choices": [], "usage": usage}) + b"\n\n",
        b"data: [DONE]\n\n",
    ]


async def frames(encoded: list[bytes]) -> AsyncIterator[bytes]:
    for frame in encoded:
        yield frame
        await asyncio.sleep(0)


def app(model: str, tokens: int) -> Starlette:
    async def chat(request: Request) -> Response:
        body = orjson.loads(await request.body())
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        encoded = stream_of(body.get("model") or model, tokens, limit)
        return StreamingResponse(frames(encoded), media_type="text/event-stream")

    async def models(_: Request) -> Response:
        listed = {"id": model, "object": "model", "created": 0, "owned_by": "bench"}
        return JSONResponse({"object": "list", "data": [listed]})

    async def health(_: Request) -> Response:
        return Response(status_code=200)

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", models),
            Route("/health", health),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens", type=int, default=256, help="tokens per answer (default 256)")
    parser.add_argument("--model", default="fast", help="the model it lists (default fast)")
    args = parser.parse_args()
    uvicorn.run(
        app(args.model, args.tokens),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
