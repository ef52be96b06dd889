"""Stored chat completions (``store: true``) through the official ``openai`` client: kept whole or
streamed, listed, read back with their messages, relabelled and deleted; never kept by default, nor
when a stream does not run to its end; one tenant's are another's 404. Llama Stack's client reads the
same completions with their ``input_messages``."""

from __future__ import annotations

import time
from collections.abc import Iterator

import llama_stack_client
import openai
import pytest

CHAT = "llama-cpp/SmolLM2-135M-Instruct"
ASK = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": [{"type": "text", "text": "What is the capital of France?"}]},
]


def client(server, tenant) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=tenant.key, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def oai(model_server, model_tenant) -> Iterator[openai.OpenAI]:
    with client(model_server, model_tenant) as oai:
        yield oai


def chat(oai: openai.OpenAI, **fields):
    return oai.chat.completions.create(
        **{"model": CHAT, "messages": ASK, "temperature": 0, "max_tokens": 8, "store": True, **fields}
    )


def test_a_stored_completion_is_listed_read_relabelled_and_deleted(oai):
    answer = chat(oai, metadata={"topic": "capitals"})
    kept = oai.chat.completions.retrieve(answer.id)
    assert kept.model == CHAT and kept.choices[0].message.content == answer.choices[0].message.content
    assert kept.choices[0].finish_reason == answer.choices[0].finish_reason
    assert kept.usage.total_tokens == answer.usage.total_tokens
    assert kept.metadata == {"topic": "capitals"}
    assert answer.id in [c.id for c in oai.chat.completions.list(metadata={"topic": "capitals"})]
    assert answer.id not in [c.id for c in oai.chat.completions.list(metadata={"topic": "rivers"})]
    assert answer.id not in [c.id for c in oai.chat.completions.list(model="onnx/all-MiniLM-L6-v2")]

    messages = oai.chat.completions.messages.list(answer.id)
    assert [(m.id, m.role, m.content) for m in messages.data] == [
        (f"{answer.id}-0", "system", "Answer briefly."),
        (f"{answer.id}-1", "user", "What is the capital of France?"),
    ]
    assert messages.data[1].content_parts[0].text == "What is the capital of France?"
    newest = oai.chat.completions.messages.list(answer.id, order="desc", limit=1)
    assert [m.id for m in newest.data] == [f"{answer.id}-1"] and newest.has_more
    rest = oai.chat.completions.messages.list(answer.id, order="desc", after=f"{answer.id}-1")
    assert [m.id for m in rest.data] == [f"{answer.id}-0"] and not rest.has_more

    assert oai.chat.completions.update(answer.id, metadata={"topic": "cities"}).metadata == {
        "topic": "cities"
    }
    assert [c.id for c in oai.chat.completions.list(metadata={"topic": "cities"})] == [answer.id]
    deleted = oai.chat.completions.delete(answer.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (answer.id, "chat.completion.deleted", True)
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.retrieve(answer.id)
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.delete(answer.id)


def test_nothing_is_kept_unless_asked(oai):
    answer = chat(oai, store=None)
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.retrieve(answer.id)


def test_lists_page_oldest_first_by_default(oai):
    ids = [chat(oai, metadata={"run": "paging"}).id for _ in range(3)]
    first = oai.chat.completions.list(metadata={"run": "paging"}, limit=2)
    assert [c.id for c in first.data] == ids[:2] and first.has_more
    rest = oai.chat.completions.list(metadata={"run": "paging"}, limit=2, after=ids[1])
    assert [c.id for c in rest.data] == ids[2:] and not rest.has_more
    assert [c.id for c in oai.chat.completions.list(metadata={"run": "paging"})] == ids  # every page
    newest = oai.chat.completions.list(metadata={"run": "paging"}, order="desc")
    assert [c.id for c in newest.data] == ids[::-1]


def test_a_stream_is_kept_whole_once_it_ran_to_its_end(oai):
    chunks = list(chat(oai, stream=True))
    kept = oai.chat.completions.retrieve(chunks[0].id)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert kept.choices[0].message.content == text
    assert kept.choices[0].finish_reason == "length" and kept.usage.completion_tokens == 8
    assert all(c.usage is None for c in chunks)  # usage is kept without being streamed unasked


def test_a_stream_the_client_leaves_is_not_kept(oai):
    long = {"stream": True, "max_tokens": 48, "extra_body": {"ignore_eos": True}}
    started = time.monotonic()
    whole = list(chat(oai, **long))
    took = time.monotonic() - started
    assert oai.chat.completions.retrieve(whole[0].id).usage.completion_tokens == 48
    with chat(oai, **long) as stream:
        left = next(iter(stream)).id
    time.sleep(2 * took + 0.5)  # the whole answer would have been kept by now, had it gone on
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.retrieve(left)


def test_another_tenant_finds_none_of_them(oai, model_server):
    answer = chat(oai)
    with client(model_server, model_server.new_tenant()) as stranger:
        for call in (
            lambda: stranger.chat.completions.retrieve(answer.id),
            lambda: stranger.chat.completions.messages.list(answer.id),
            lambda: stranger.chat.completions.update(answer.id, metadata={"mine": "now"}),
            lambda: stranger.chat.completions.delete(answer.id),
        ):
            with pytest.raises(openai.NotFoundError):
                call()
        assert stranger.chat.completions.list().data == []
    assert oai.chat.completions.retrieve(answer.id).metadata == {}


@pytest.mark.parametrize("query", [{"limit": 0}, {"limit": 101}, {"order": "sideways"}])
def test_bad_list_queries_are_400(oai, query):
    with pytest.raises(openai.BadRequestError) as raised:
        oai.chat.completions.list(**query)
    assert raised.value.status_code == 400


def test_llama_stack_reads_the_input_messages(oai, model_server, model_tenant):
    answer = chat(oai)
    with llama_stack_client.LlamaStackClient(
        base_url=model_server.url, api_key=model_tenant.key, max_retries=0, timeout=120
    ) as llama:
        kept = llama.chat.completions.retrieve(answer.id)
        assert [m.role for m in kept.input_messages] == ["system", "user"]
        assert kept.choices[0].message.content == answer.choices[0].message.content
        assert llama.chat.completions.list(limit=1).data[0].id == answer.id  # newest first, as Llama Stack
