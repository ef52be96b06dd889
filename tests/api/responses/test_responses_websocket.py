"""The Responses API's WebSocket mode through the ``openai`` client's ``responses.connect()``: responses
one after another on one socket, a ``store: false`` response continued from the socket's memory, errors
answered in-band with the socket kept open, and a socket refused without a key."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
import websockets

CHAT = "llama-cpp/SmolLM2-135M-Instruct"
ENDINGS = ("response.completed", "response.incomplete", "response.failed")


@pytest.fixture(scope="module")
def oai(model_server, model_tenant) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=model_server.url + "/v1", api_key=model_tenant.key, max_retries=0, timeout=120
    ) as client:
        yield client


def create(connection, **fields) -> list:
    """Send one response.create and read its events to the last."""
    connection.send(
        {"type": "response.create", "model": CHAT, "temperature": 0, "max_output_tokens": 6, **fields}
    )
    events = []
    for event in connection:
        events.append(event)
        if event.type in (*ENDINGS, "error"):
            return events
    raise AssertionError("the socket closed")


def test_responses_run_one_after_another_and_continue_from_memory(oai):
    with oai.responses.connect(max_retries=0) as connection:
        first = create(connection, input="What is the capital of France?", store=False)
        kinds = [event.type for event in first]
        assert (
            kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.incomplete"
        )
        assert [event.sequence_number for event in first] == list(range(len(first)))
        answered = first[-1].response
        second = create(connection, input="And of Italy?", previous_response_id=answered.id, store=False)
        assert second[-1].response.previous_response_id == answered.id
        assert second[-1].response.usage.input_tokens > answered.usage.input_tokens  # it read the first
    with pytest.raises(openai.BadRequestError):  # a store: false response lives on its socket alone
        oai.responses.create(model=CHAT, input="Hi", previous_response_id=answered.id, max_output_tokens=2)


def test_a_bad_message_is_answered_and_the_socket_stays(oai):
    with oai.responses.connect(max_retries=0) as connection:
        refused = create(connection, input="Hi", temperature=7)
        assert refused[-1].type == "error" and refused[-1].error.param == "temperature"
        assert refused[-1].status == 400
        unknown = create(connection, model="no-such-model", input="Hi")
        assert unknown[-1].error.code == "model_not_found" and unknown[-1].status == 404
        assert create(connection, input="Hi")[-1].type == "response.incomplete"


def test_a_socket_without_a_key_is_refused(model_server):
    with (
        openai.OpenAI(base_url=model_server.url + "/v1", api_key="sk-wrong", max_retries=0) as stranger,
        pytest.raises(websockets.exceptions.InvalidStatus, match="HTTP 403"),  # no socket opens
        stranger.responses.connect(max_retries=0) as connection,
    ):
        create(connection, input="Hi")
