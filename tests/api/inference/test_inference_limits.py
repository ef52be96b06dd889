"""The per-tenant inference limits over a real server on the embedded models: the token budget (a
whole answer, a stream and embeddings each charged their usage; the next request refused with 429, the
``x-ratelimit-*-tokens`` headers and Retry-After, in OpenAI's envelope) and the open streams (one
more refused before any work, its place given back when the client leaves). A server with a tiny
token budget, and one with a single stream per tenant and no rate limits (the streams limit is not one of
them); every test uses tenants of its own."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import httpx
import pytest
from _support import assert_openai_error

from cairn.settings import Settings

if TYPE_CHECKING:
    from conftest import LiveServer

CHAT = "llama-cpp/SmolLM2-135M-Instruct"
EMBED = "onnx/all-MiniLM-L6-v2"
TOKEN_BUDGET = 50
LONG_PROMPT = "one two three four five six seven eight nine ten " * 6  # over 50 tokens on its own


@pytest.fixture(scope="module")
def start_keyed(
    tmp_path_factory: pytest.TempPathFactory, start_servers: Callable[[Settings], LiveServer]
) -> Callable[..., LiveServer]:
    def start(**limits: object) -> LiveServer:
        # keyed: every test creates its tenant's key before the server's first request
        return start_servers(
            Settings(data_dir=tmp_path_factory.mktemp("limits"), chat_context=2048, **limits)
        )

    return start


@pytest.fixture(scope="module")
def token_limited(start_keyed: Callable[..., LiveServer]) -> LiveServer:
    return start_keyed(rate_limit_inference_tokens=TOKEN_BUDGET)


@pytest.fixture(scope="module")
def stream_limited(start_keyed: Callable[..., LiveServer]) -> LiveServer:
    return start_keyed(rate_limits=False, inference_streams_per_tenant=1)


def tenant_clients(server: LiveServer) -> Iterator[Callable[[], httpx.Client]]:
    """Clients of one fresh tenant (each call a client of its own, for requests side by side)."""
    tenant = server.new_tenant()
    clients: list[httpx.Client] = []

    def client() -> httpx.Client:
        clients.append(server.client(tenant))
        return clients[-1]

    yield client
    for made in clients:
        made.close()


@pytest.fixture
def http(token_limited: LiveServer) -> Iterator[Callable[[], httpx.Client]]:
    yield from tenant_clients(token_limited)


@pytest.fixture
def streamer(stream_limited: LiveServer) -> Iterator[Callable[[], httpx.Client]]:
    yield from tenant_clients(stream_limited)


def completion(prompt: str, **fields: object) -> dict[str, object]:
    return {"model": CHAT, "prompt": prompt, "temperature": 0, "max_tokens": 2, **fields}


def assert_token_budget_spent(response: httpx.Response) -> None:
    error = assert_openai_error(response, 429, code="rate_limit_exceeded")
    assert error["type"] == "rate_limit_error" and "tokens" in error["message"]
    assert response.headers["x-ratelimit-limit-tokens"] == str(TOKEN_BUDGET)
    assert response.headers["x-ratelimit-remaining-tokens"] == "0"
    assert int(response.headers["x-ratelimit-reset-tokens"]) > 60
    assert int(response.headers["Retry-After"]) >= 1


def test_a_whole_answer_spends_its_usage_and_the_next_request_is_refused(http, token_limited) -> None:
    client = http()
    first = client.post("/v1/completions", json=completion(LONG_PROMPT))
    assert first.status_code == 200, first.text
    usage = first.json()["usage"]
    assert usage["prompt_tokens"] + usage["completion_tokens"] > TOKEN_BUDGET
    assert first.headers["x-ratelimit-limit-tokens"] == str(TOKEN_BUDGET)
    assert first.headers["x-ratelimit-remaining-tokens"] == "0"  # after its own usage

    assert_token_budget_spent(client.post("/v1/completions", json=completion("Hi")))
    chat = {"model": CHAT, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    assert_token_budget_spent(client.post("/v1/openai/v1/chat/completions", json=chat))

    with token_limited.client(token_limited.new_tenant()) as other:  # a budget of its own
        answer = other.post("/v1/completions", json=completion("Hi"))
        assert answer.status_code == 200, answer.text
        assert int(answer.headers["x-ratelimit-remaining-tokens"]) > 0


def test_a_stream_spends_its_usage_even_when_the_client_did_not_ask_for_it(http) -> None:
    client = http()
    body = completion(LONG_PROMPT, stream=True)
    with client.stream("POST", "/v1/completions", json=body) as stream:
        assert stream.status_code == 200
        assert stream.headers["x-ratelimit-remaining-tokens"] == str(TOKEN_BUDGET)  # as it started
        events = [line for line in stream.iter_lines() if line.startswith("data: {")]
    assert events and all('"usage"' not in event for event in events)
    assert_token_budget_spent(client.post("/v1/completions", json=completion("Hi")))


def test_embeddings_spend_their_prompt_tokens(http) -> None:
    client = http()
    first = client.post("/v1/embeddings", json={"model": EMBED, "input": LONG_PROMPT})
    assert first.status_code == 200, first.text
    assert first.json()["usage"]["prompt_tokens"] > TOKEN_BUDGET
    assert_token_budget_spent(client.post("/v1/embeddings", json={"model": EMBED, "input": "Hi"}))


def test_one_stream_too_many_is_refused_until_the_open_one_is_gone(streamer, stream_limited) -> None:
    streaming = completion("Once upon a time", stream=True, max_tokens=1000, ignore_eos=True)
    first_client = streamer()
    with first_client.stream("POST", "/v1/completions", json=streaming) as first:
        assert first.status_code == 200
        lines = first.iter_lines()  # kept: a dropped iterator closes the connection
        assert next(line for line in lines if line.startswith("data: {"))

        refused = streamer().post("/v1/completions", json=completion("Hi", stream=True))
        error = assert_openai_error(refused, 429, code="rate_limit_exceeded")
        assert "1 streamed answers open at once" in error["message"]
        assert refused.headers["Retry-After"] == "1"

        with stream_limited.client(stream_limited.new_tenant()) as other:  # its own place
            assert other.post("/v1/completions", json=completion("Hi", stream=True)).status_code == 200
        assert streamer().post("/v1/completions", json=completion("Hi")).status_code == 200  # no stream
    first_client.close()  # the client leaves mid-stream: its place is given back

    deadline = time.monotonic() + 10
    again = completion("Hi", stream=True)
    while (answer := streamer().post("/v1/completions", json=again)).status_code == 429:
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.1)
    assert answer.status_code == 200, answer.text
