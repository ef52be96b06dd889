"""The Conversations API through the official ``openai`` client: conversations created with items, items
added, paged both ways with a true ``has_more``, read, deleted; metadata updated; the errors the client
maps; another tenant's conversations out of reach; and what an agent framework's session does (the
OpenAI Agents SDK's ``OpenAIConversationsSession``: items read back, dumped and sent again)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest


@pytest.fixture(scope="module")
def oai(model_server, model_tenant) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=model_server.url + "/v1", api_key=model_tenant.key, max_retries=0) as client:
        yield client


@pytest.fixture(scope="module")
def other(model_server) -> Iterator[openai.OpenAI]:
    """A client of another tenant."""
    tenant = model_server.new_tenant()
    with openai.OpenAI(base_url=model_server.url + "/v1", api_key=tenant.key, max_retries=0) as client:
        yield client


def said(text: str, role: str = "user") -> dict:
    return {"role": role, "content": text}


def texts(items) -> list[str]:
    return [item.content[0].text for item in items]


def test_a_conversation_starts_with_its_items_and_metadata(oai):
    conversation = oai.conversations.create(
        items=[said("You answer in French.", "developer"), said("Hello")], metadata={"topic": "greeting"}
    )
    assert conversation.object == "conversation" and conversation.id.startswith("conv_")
    assert conversation.metadata == {"topic": "greeting"} and conversation.created_at > 0
    assert oai.conversations.retrieve(conversation.id) == conversation
    items = list(oai.conversations.items.list(conversation.id, order="asc"))
    assert texts(items) == ["You answer in French.", "Hello"]
    developer = items[0]
    assert (developer.type, developer.role, developer.status) == ("message", "developer", "completed")
    assert developer.id.startswith("msg_") and developer.content[0].type == "input_text"


def test_items_are_added_in_order_and_paged_both_ways(oai):
    conversation = oai.conversations.create()
    added = oai.conversations.items.create(
        conversation.id, items=[said("one"), said("two", "assistant"), said("three")]
    )
    assert added.object == "list" and texts(added.data) == ["one", "two", "three"]
    assert (added.first_id, added.last_id, added.has_more) == (added.data[0].id, added.data[-1].id, False)
    assert added.data[1].content[0].type == "output_text"
    oai.conversations.items.create(conversation.id, items=[said("four"), said("five")])

    first = oai.conversations.items.list(conversation.id, order="asc", limit=2)
    assert texts(first.data) == ["one", "two"] and first.has_more is True
    assert texts(first) == ["one", "two", "three", "four", "five"]  # the client follows last_id
    last = oai.conversations.items.list(conversation.id, order="asc", limit=2, after=first.data[-1].id)
    last = oai.conversations.items.list(conversation.id, order="asc", limit=2, after=last.data[-1].id)
    assert texts(last.data) == ["five"] and last.has_more is False

    newest = oai.conversations.items.list(conversation.id, limit=2)  # newest first by default
    assert texts(newest.data) == ["five", "four"] and newest.has_more is True
    assert texts(newest) == ["five", "four", "three", "two", "one"]
    exact = oai.conversations.items.list(conversation.id, limit=5)
    assert len(exact.data) == 5 and exact.has_more is False


def test_an_item_is_read_and_deleted(oai):
    conversation = oai.conversations.create(items=[said("keep"), said("drop"), said("keep too")])
    drop = oai.conversations.items.list(conversation.id, order="asc").data[1]
    read = oai.conversations.items.retrieve(
        drop.id, conversation_id=conversation.id, include=["message.output_text.logprobs"]
    )
    assert read == drop
    assert oai.conversations.items.delete(drop.id, conversation_id=conversation.id) == conversation
    assert texts(oai.conversations.items.list(conversation.id, order="asc")) == ["keep", "keep too"]
    with pytest.raises(openai.NotFoundError) as caught:
        oai.conversations.items.retrieve(drop.id, conversation_id=conversation.id)
    assert caught.value.body["param"] == "item_id"


def test_metadata_is_replaced_and_a_deleted_conversation_is_gone(oai):
    conversation = oai.conversations.create(items=[said("x")], metadata={"a": "1"})
    updated = oai.conversations.update(conversation.id, metadata={"b": "2"})
    assert updated.metadata == {"b": "2"} and updated.id == conversation.id
    assert oai.conversations.update(conversation.id, metadata=None).metadata == {}
    deleted = oai.conversations.delete(conversation.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (conversation.id, "conversation.deleted", True)
    for gone in (
        lambda: oai.conversations.retrieve(conversation.id),
        lambda: oai.conversations.items.list(conversation.id),
        lambda: oai.conversations.delete(conversation.id),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            gone()
        assert caught.value.body == {
            "message": f"Conversation '{conversation.id}' not found.",
            "type": "invalid_request_error",
            "param": "conversation_id",
            "code": "not_found",
        }


def test_every_kind_of_item_goes_in_and_comes_back_typed(oai):
    conversation = oai.conversations.create(
        items=[
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is on this page?"},
                    {
                        "type": "input_image",
                        "image_url": "data:image/png;base64,iVBORw0KGgo=",
                        "detail": "low",
                    },
                    {"type": "input_file", "file_id": "file-abc"},
                ],
            },
            {"type": "function_call", "call_id": "call_1", "name": "read_page", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "A cat."},
            {"type": "message", "role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]},
        ]
    )
    message, call, output, refusal = oai.conversations.items.list(conversation.id, order="asc").data
    assert [part.type for part in message.content] == ["input_text", "input_image", "input_file"]
    assert message.content[1].detail == "low" and message.content[2].file_id == "file-abc"
    assert (call.type, call.id[:3], call.name, call.call_id) == (
        "function_call",
        "fc_",
        "read_page",
        "call_1",
    )
    assert (output.type, output.id[:4], output.output) == ("function_call_output", "fco_", "A cat.")
    assert refusal.content[0].refusal == "No."


def test_bad_requests_name_the_parameter(oai, model_server, model_tenant):
    conversation = oai.conversations.create(items=[{"id": "msg_mine", "role": "user", "content": "x"}])
    cases = [
        (lambda: oai.conversations.create(items=[said("x")] * 21), "items"),
        (lambda: oai.conversations.create(metadata={f"k{n}": "v" for n in range(17)}), "metadata"),
        (lambda: oai.conversations.create(items=[{"role": "user", "content": 7}]), "items[0].content"),
        (
            lambda: oai.conversations.items.create(
                conversation.id,
                items=[said("x"), {"type": "message", "role": "user", "content": [{"type": "image"}]}],
            ),
            "items[1].content[0].type",
        ),
        (
            lambda: oai.conversations.items.create(
                conversation.id, items=[{"type": "item_reference", "id": "msg_mine"}]
            ),
            "items[0]",
        ),
        (
            lambda: oai.conversations.items.create(
                conversation.id, items=[{"id": "msg_mine", "role": "user", "content": "y"}]
            ),
            "items",
        ),
        (lambda: oai.conversations.items.list(conversation.id, limit=101), "limit"),
        (lambda: oai.conversations.items.list(conversation.id, order="sideways"), "order"),
    ]
    for call, param in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            call()
        assert caught.value.body["param"] == param, caught.value.body
    duplicate = "Duplicate item found with id 'msg_mine'."
    with httpx.Client(
        base_url=model_server.url, headers={"Authorization": f"Bearer {model_tenant.key}"}
    ) as http:
        answer = http.post(
            f"/v1/conversations/{conversation.id}/items",
            json={"items": [{"id": "msg_mine", "role": "user", "content": "y"}]},
        )
        assert answer.status_code == 400 and answer.json()["error"]["message"] == duplicate
        assert http.post("/v1/conversations", json={"itemz": []}).json()["error"]["param"] == "itemz"
        listed = http.get(f"/v1/conversations/{conversation.id}/items", params={"include[]": "everything"})
        assert listed.status_code == 400 and listed.json()["error"]["param"] == "include[].0"
    assert len(oai.conversations.items.list(conversation.id).data) == 1  # nothing of a refused call was kept


def test_another_tenants_conversation_is_not_found(oai, other):
    conversation = oai.conversations.create(items=[said("private")])
    item = oai.conversations.items.list(conversation.id).data[0]
    for call in (
        lambda: other.conversations.retrieve(conversation.id),
        lambda: other.conversations.update(conversation.id, metadata={"x": "y"}),
        lambda: other.conversations.items.list(conversation.id),
        lambda: other.conversations.items.create(conversation.id, items=[said("intruder")]),
        lambda: other.conversations.items.retrieve(item.id, conversation_id=conversation.id),
        lambda: other.conversations.items.delete(item.id, conversation_id=conversation.id),
        lambda: other.conversations.delete(conversation.id),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert caught.value.body["param"] == "conversation_id"
    assert texts(oai.conversations.items.list(conversation.id)) == ["private"]
    assert oai.conversations.retrieve(conversation.id).metadata == {}


def test_the_llama_stack_prefix_serves_the_same_conversations(oai, model_server, model_tenant):
    conversation = oai.conversations.create(items=[said("hi")])
    with openai.OpenAI(
        base_url=model_server.url + "/v1/openai/v1", api_key=model_tenant.key, max_retries=0
    ) as aliased:
        assert aliased.conversations.retrieve(conversation.id) == conversation
        assert texts(aliased.conversations.items.list(conversation.id)) == ["hi"]


def test_an_agent_session_reads_its_items_back_and_sends_them_again(oai):
    """What ``OpenAIConversationsSession`` does: ``create(items=[])``; ``add_items`` sends items (often
    ones read before, ``model_dump()``ed with every optional field null); ``get_items`` lists ``asc`` to
    the end, or the last N ``desc``; ``pop_item`` deletes the newest; ``clear_session`` deletes."""
    source = oai.conversations.create(
        items=[
            said("What is 2+2?"),
            {"type": "function_call", "call_id": "call_9", "name": "add", "arguments": '{"a":2,"b":2}'},
            {"type": "function_call_output", "call_id": "call_9", "output": "4"},
            said("4.", "assistant"),
        ]
    )
    dumped = [item.model_dump() for item in oai.conversations.items.list(source.id, order="asc")]
    session = oai.conversations.create(items=[])
    oai.conversations.items.create(session.id, items=[{**item, "id": None} for item in dumped])
    copied = [item.model_dump() for item in oai.conversations.items.list(session.id, order="asc")]
    assert [{**item, "id": None} for item in copied] == [{**item, "id": None} for item in dumped]
    last_two = list(oai.conversations.items.list(session.id, order="desc", limit=2))[:2][::-1]
    assert [item.type for item in last_two] == ["function_call_output", "message"]
    newest = oai.conversations.items.list(session.id, order="desc", limit=1).data[0]
    oai.conversations.items.delete(newest.id, conversation_id=session.id)
    assert [item.type for item in oai.conversations.items.list(session.id, order="asc")][
        -1
    ] == "function_call_output"
    assert oai.conversations.delete(session.id).deleted is True
