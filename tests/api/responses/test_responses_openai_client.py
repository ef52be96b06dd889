"""The Responses API through the official ``openai`` client on the embedded SmolLM2 at temperature 0:
whole and streamed responses (every event in OpenAI's order), a forced function-tool round trip through
``previous_response_id``, file search, conversations, storage, and the errors the client maps."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

CHAT = "llama-cpp/SmolLM2-135M-Instruct"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}
TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
]


@pytest.fixture(scope="module")
def oai(model_server, model_tenant) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=model_server.url + "/v1", api_key=model_tenant.key, max_retries=0, timeout=120
    ) as client:
        yield client


def respond(oai: openai.OpenAI, **fields):
    return oai.responses.create(
        **{
            "model": CHAT,
            "input": "What is the capital of France?",
            "temperature": 0,
            "max_output_tokens": 8,
            **fields,
        }
    )


def test_a_whole_response_is_stored_and_read_back(oai):
    made = respond(
        oai, instructions="You write long answers.", input="Tell me about Paris.", metadata={"run": "1"}
    )
    assert made.object == "response" and made.id.startswith("resp_")
    assert made.status == "incomplete" and made.incomplete_details.reason == "max_output_tokens"
    message = made.output[0]
    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    assert message.content[0].type == "output_text" and made.output_text
    assert made.usage.output_tokens == 8 and made.usage.total_tokens > 8
    assert made.temperature == 0 and made.top_p == 1 and made.tool_choice == "auto"
    assert made.truncation == "disabled" and made.metadata == {"run": "1"}
    again = oai.responses.retrieve(made.id)
    assert again.output_text == made.output_text and again.status == "incomplete"
    items = oai.responses.input_items.list(made.id)
    assert [item.role for item in items.data] == ["user"]
    assert items.data[0].content[0].text == "Tell me about Paris."


def test_a_stream_sends_every_event_in_order(oai):
    events = list(respond(oai, stream=True, max_output_tokens=6))
    kinds = [event.type for event in events]
    deltas = kinds.count("response.output_text.delta")
    assert deltas >= 1
    assert kinds == TEXT_EVENTS[:4] + ["response.output_text.delta"] * deltas + TEXT_EVENTS[5:] + [
        "response.incomplete"
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    done = next(event for event in events if event.type == "response.output_text.done")
    assert done.text == text and done.logprobs == []
    final = events[-1].response
    assert final.output_text == text and final.output[0].status == "incomplete"
    assert oai.responses.retrieve(final.id).output_text == text


def test_a_forced_function_call_and_its_output_continue_the_chain(oai):
    called = respond(
        oai,
        input="What is the weather in Paris?",
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
        max_output_tokens=64,
    )
    assert called.status == "completed"
    call = called.output[-1]
    assert call.type == "function_call" and call.name == "get_weather" and call.call_id
    assert isinstance(json.loads(call.arguments)["city"], str)
    answered = respond(
        oai,
        previous_response_id=called.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 24 C"}],
        tools=[WEATHER],
        max_output_tokens=16,
    )
    assert answered.previous_response_id == called.id and answered.output_text
    assert answered.output[0].type == "message"


def test_a_streamed_function_call(oai):
    events = list(
        respond(
            oai,
            input="Weather in Rome?",
            tools=[WEATHER],
            tool_choice="required",
            stream=True,
            max_output_tokens=64,
        )
    )
    kinds = [event.type for event in events]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert "response.function_call_arguments.done" in kinds and kinds[-1] == "response.completed"
    done = next(event for event in events if event.type == "response.function_call_arguments.done")
    item = events[-1].response.output[-1]
    assert item.type == "function_call" and item.arguments == done.arguments and item.status == "completed"


def test_file_search_finds_the_document(oai):
    store = oai.vector_stores.create(name="facts")
    text = "The Zanzibar project codename is BLUE HERON. It ships in March."
    oai.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("facts.txt", io.BytesIO(text.encode())), poll_interval_ms=50
    )
    made = respond(
        oai,
        input="What is the codename of the Zanzibar project?",
        tools=[{"type": "file_search", "vector_store_ids": [store.id]}],
        tool_choice={"type": "file_search"},
        max_tool_calls=1,  # then the model answers: the small model would search again and again
        include=["file_search_call.results"],
        max_output_tokens=64,
    )
    search = made.output[0]
    assert search.type == "file_search_call" and search.status == "completed" and search.queries
    assert search.results[0].filename == "facts.txt" and "BLUE HERON" in search.results[0].text
    assert [item.type for item in made.output] == ["file_search_call", "message"]


def test_file_search_answers_cite_the_file_and_include_shows_what_is_kept(oai):
    store = oai.vector_stores.create(name="facts")
    text = "The Zanzibar project codename is BLUE HERON. It ships in March."
    kept = oai.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("facts.txt", io.BytesIO(text.encode())), poll_interval_ms=50
    )
    events = list(
        respond(
            oai,
            input="What is the codename of the Zanzibar project?",
            tools=[{"type": "file_search", "vector_store_ids": [store.id]}],
            tool_choice={"type": "file_search"},
            max_tool_calls=1,
            max_output_tokens=64,
            stream=True,
        )
    )
    added = [event for event in events if event.type == "response.output_text.annotation.added"]
    done = next(event for event in events if event.type == "response.output_text.done")
    assert added and added[-1].sequence_number < done.sequence_number
    final = events[-1].response
    message = final.output[-1]
    part = message.content[0]
    assert [a.model_dump() for a in part.annotations] == [event.annotation.model_dump() for event in added]
    citation = part.annotations[0]
    assert (citation.type, citation.file_id, citation.filename) == ("file_citation", kept.id, "facts.txt")
    assert 0 < citation.index <= len(part.text) and "<|" not in part.text
    assert (added[0].item_id, added[0].output_index, added[0].content_index) == (message.id, 1, 0)
    assert [event.annotation_index for event in added] == list(range(len(added)))
    deltas = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert deltas == part.text == done.text

    assert final.output[0].results is None  # kept, but the create did not ask to see them
    again = oai.responses.retrieve(final.id)
    assert again.output[0].results is None and again.output[-1].content[0].annotations == part.annotations
    shown = oai.responses.retrieve(final.id, include=["file_search_call.results"])
    assert shown.output[0].results[0].file_id == kept.id and "BLUE HERON" in shown.output[0].results[0].text

    empty = oai.vector_stores.create(name="empty")
    found_nothing = respond(
        oai,
        input="What is the codename of the Zanzibar project?",
        tools=[{"type": "file_search", "vector_store_ids": [empty.id]}],
        tool_choice={"type": "file_search"},
        max_tool_calls=1,
        include=["file_search_call.results"],
        max_output_tokens=48,
    )
    assert found_nothing.output[0].results == []
    assert all(not part.annotations for item in found_nothing.output[1:] for part in item.content)


def test_retrieve_shows_the_logprobs_kept_when_include_asks(oai):
    made = respond(oai, include=["message.output_text.logprobs"], max_output_tokens=3)
    kept = made.output[0].content[0].logprobs
    assert len(kept) == 3
    assert oai.responses.retrieve(made.id).output[0].content[0].logprobs == []
    shown = oai.responses.retrieve(made.id, include=["message.output_text.logprobs"])
    assert shown.output[0].content[0].logprobs == kept
    plain = respond(oai, max_output_tokens=3)  # none asked for, none kept
    assert (
        oai.responses.retrieve(plain.id, include=["message.output_text.logprobs"])
        .output[0]
        .content[0]
        .logprobs
        == []
    )


def test_store_false_keeps_nothing(oai):
    made = respond(oai, store=False)
    assert made.store is False
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(made.id)


def test_delete_then_not_found_in_openai_words(oai):
    made = respond(oai)
    deleted = oai.responses.delete(made.id)
    assert deleted is None or getattr(deleted, "deleted", True)
    with pytest.raises(openai.NotFoundError) as caught:
        oai.responses.retrieve(made.id)
    assert caught.value.body["message"] == (
        f"Response '{made.id}' not found. Use 'client.responses.list()' to list available Responses."
    )


def test_errors_before_any_event_are_statuses(oai):
    with pytest.raises(openai.NotFoundError):
        respond(oai, model="no-such-model")
    with pytest.raises(openai.BadRequestError) as caught:
        respond(oai, tools=[{"type": "web_search"}])
    assert caught.value.body["param"] == "tools[0].type" and "web_search" in caught.value.body["message"]
    with pytest.raises(openai.BadRequestError) as caught:
        respond(oai, previous_response_id="resp_missing")
    assert caught.value.body["code"] == "previous_response_not_found"
    with pytest.raises(openai.BadRequestError):
        respond(oai, previous_response_id="resp_a", conversation="conv_b")
    with pytest.raises(openai.BadRequestError) as caught:
        respond(oai, tools=[WEATHER], tool_choice={"type": "function", "name": "get_time"})
    assert caught.value.body["param"] == "tool_choice.name"
    with pytest.raises(openai.NotFoundError):
        respond(oai, tools=[{"type": "file_search", "vector_store_ids": ["vs_missing"]}])
    with pytest.raises(openai.BadRequestError) as caught:
        respond(oai, input=[{"type": "function_call_output", "call_id": "call_nowhere", "output": "42"}])
    assert caught.value.body["param"] == "input[0].call_id"
    with pytest.raises(openai.BadRequestError):
        respond(oai, temperature=3)


def test_another_tenant_sees_no_response(oai, model_server):
    made = respond(oai)
    stranger = model_server.new_tenant()
    with openai.OpenAI(base_url=model_server.url + "/v1", api_key=stranger.key, max_retries=0) as theirs:
        with pytest.raises(openai.NotFoundError):
            theirs.responses.retrieve(made.id)
        with pytest.raises(openai.BadRequestError):
            theirs.responses.create(model=CHAT, input="hi", previous_response_id=made.id, max_output_tokens=4)


def wait_until_done(oai, response_id: str):
    for _ in range(600):
        shown = oai.responses.retrieve(response_id)
        if shown.status not in ("queued", "in_progress"):
            return shown
        time.sleep(0.05)
    raise AssertionError("the background response did not end")


def test_a_background_response_is_queued_then_polled_to_its_end(oai):
    queued = respond(oai, background=True)
    assert queued.status == "queued" and queued.background is True and queued.output == []
    done = wait_until_done(oai, queued.id)
    assert done.status == "incomplete" and done.output_text
    assert done.output_text == respond(oai).output_text  # the same answer as in the foreground


def test_a_background_stream_is_read_again_from_any_event(oai):
    events = list(respond(oai, background=True, stream=True, max_output_tokens=6))
    kinds = [event.type for event in events]
    assert kinds[:3] == ["response.created", "response.queued", "response.in_progress"]
    assert kinds[-1] == "response.incomplete" and events[0].response.status == "queued"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    response_id = events[0].response.id
    again = list(oai.responses.retrieve(response_id, stream=True, starting_after=3))
    assert [e.model_dump() for e in again] == [e.model_dump() for e in events[4:]]
    whole = list(oai.responses.retrieve(response_id, stream=True))
    assert [e.sequence_number for e in whole] == list(range(len(events)))


def test_a_background_response_is_cancelled(oai):
    queued = respond(
        oai, input="Write a very long story about a dragon.", background=True, max_output_tokens=400
    )
    cancelled = oai.responses.cancel(queued.id)
    assert cancelled.status == "cancelled"
    time.sleep(0.3)
    assert oai.responses.retrieve(queued.id).status == "cancelled"
    assert oai.responses.cancel(queued.id).status == "cancelled"  # once ended, it stays as it ended
    done = wait_until_done(oai, respond(oai, background=True, max_output_tokens=2).id)
    assert oai.responses.cancel(done.id).status == done.status
    foreground = respond(oai)
    with pytest.raises(openai.BadRequestError):
        oai.responses.cancel(foreground.id)
    with pytest.raises(openai.BadRequestError):
        respond(oai, background=True, store=False)


LONG = "Paris is the capital of France and its largest city, on the river Seine. " * 60  # ~1,050 tokens


def test_truncation_auto_drops_the_oldest_items_and_disabled_refuses(oai):
    history = [{"role": "user", "content": LONG}, {"role": "assistant", "content": LONG}]
    question = [{"role": "user", "content": "What is the capital of France?"}]
    with pytest.raises(openai.BadRequestError) as caught:
        respond(oai, input=history + question)
    assert caught.value.body["code"] == "context_length_exceeded"
    made = respond(oai, input=history + question, truncation="auto")
    assert made.truncation == "auto" and made.output_text
    assert made.usage.input_tokens < 1200  # the oldest long item went; the other and the question stayed


def test_input_tokens_are_counted_by_the_model(oai):
    short = oai.responses.input_tokens.count(model=CHAT, input="Hi")
    longer = oai.responses.input_tokens.count(model=CHAT, input="Hi " * 50, instructions="Be brief.")
    assert short.object == "response.input_tokens" and 0 < short.input_tokens < longer.input_tokens
    assert longer.input_tokens == respond(oai, input="Hi " * 50, instructions="Be brief.").usage.input_tokens


def test_a_client_that_leaves_a_stream_stops_it_and_it_is_cancelled(oai, model_server, model_tenant):
    body = {
        "model": CHAT,
        "input": "Write a very long story about a dragon.",
        "stream": True,
        "temperature": 0,
    }
    headers = {"Authorization": f"Bearer {model_tenant.key}"}
    with (
        httpx.Client(base_url=model_server.url, headers=headers, timeout=60) as http,
        http.stream("POST", "/v1/responses", json=body) as streamed,
    ):
        lines = streamed.iter_lines()
        created = json.loads(next(line for line in lines if line.startswith("data:"))[5:])
        response_id = created["response"]["id"]
        for line in lines:
            if "output_text.delta" in line:
                break
    for _ in range(100):
        status = oai.responses.retrieve(response_id).status
        if status != "in_progress":
            break
        time.sleep(0.05)
    assert status == "cancelled"
    assert respond(oai, max_output_tokens=2).status == "incomplete"  # the model is free again
