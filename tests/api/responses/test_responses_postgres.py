"""The Responses and Conversations APIs through the official ``openai`` client on a server whose
metadata is on PostgreSQL (the other modules run on SQLite): a response stored, read, listed, continued
and deleted; a background stream read again from its kept events; a conversation that a response
appends to."""

from __future__ import annotations

import time
from collections.abc import Iterator

import openai
import pytest

CHAT = "llama-cpp/SmolLM2-135M-Instruct"


@pytest.fixture(scope="module")
def oai(postgres_model_server) -> Iterator[openai.OpenAI]:
    tenant = postgres_model_server.new_tenant()
    with openai.OpenAI(
        base_url=postgres_model_server.url + "/v1", api_key=tenant.key, max_retries=0, timeout=120
    ) as client:
        yield client


def respond(oai: openai.OpenAI, **fields):
    return oai.responses.create(
        **{"model": CHAT, "input": "What is the capital of France?", "temperature": 0, "max_output_tokens": 6}
        | fields
    )


def test_a_response_is_stored_read_listed_continued_and_deleted(oai):
    made = respond(oai, metadata={"run": "pg"})
    again = oai.responses.retrieve(made.id)
    assert again.output_text == made.output_text and again.status == "incomplete"
    assert again.metadata == {"run": "pg"}
    items = oai.responses.input_items.list(made.id)
    assert [item.content[0].text for item in items.data] == ["What is the capital of France?"]
    follow = respond(oai, previous_response_id=made.id, input="And of Italy?")
    assert follow.previous_response_id == made.id
    listed = oai.get("/responses", cast_to=object, options={"params": {"model": CHAT, "limit": 2}})
    assert [response["id"] for response in listed["data"]] == [follow.id, made.id]  # newest first
    oai.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(made.id)


def test_a_background_stream_is_read_again_from_its_kept_events(oai):
    events = list(respond(oai, background=True, stream=True))
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert events[1].type == "response.queued" and events[-1].type == "response.incomplete"
    response_id = events[0].response.id
    again = list(oai.responses.retrieve(response_id, stream=True, starting_after=2))
    assert [event.model_dump() for event in again] == [event.model_dump() for event in events[3:]]
    for _ in range(100):
        if oai.responses.retrieve(response_id).status != "in_progress":
            break
        time.sleep(0.05)
    assert oai.responses.retrieve(response_id).output_text == events[-1].response.output_text


def test_a_response_appends_to_its_conversation(oai):
    conversation = oai.conversations.create(items=[{"role": "user", "content": "Hello"}], metadata={"k": "v"})
    made = respond(oai, conversation=conversation.id)
    items = list(oai.conversations.items.list(conversation.id, order="asc"))
    assert [item.role for item in items] == ["user", "user", "assistant"]
    assert items[-1].id == made.output[0].id and items[-1].content[0].text == made.output_text
    shown = oai.conversations.items.delete(items[0].id, conversation_id=conversation.id)
    assert shown.metadata == {"k": "v"}
    assert len(oai.conversations.items.list(conversation.id).data) == 2
    oai.conversations.delete(conversation.id)
    with pytest.raises(openai.NotFoundError):
        oai.conversations.retrieve(conversation.id)
