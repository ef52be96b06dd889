"""A session's memory (``core/agents/memory.py``) through the Agents service on SQLite with the embedded
models: documents of every kind go into the session's own vector store, each turn of the session starts
with a ``memory_retrieval`` step whose context its last user message carries (a resumed turn too), a bad
document refuses the turn before anything is written, and the store goes with its session and agent."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import pytest
from _agent_configs import WEATHER, config, said

from cairn.compose import Composition, composed
from cairn.core.agents.memory import FOOTER, HEADER, SessionMemory, memory_store_id
from cairn.core.agents.service import Agents
from cairn.core.errors import InvalidFile, InvalidInput, NotFound
from cairn.core.records import AgentSessionRecord
from cairn.core.vectors.raw_chunks import MAX_CHUNKS
from cairn.settings import Settings

pytestmark = pytest.mark.anyio

HERON = "The Zanzibar project codename is BLUE HERON. It ships in March."


def text(content: object, mime_type: str = "text/plain") -> dict:
    return {"content": content, "mime_type": mime_type}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def composition(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Composition]:
    data = tmp_path_factory.mktemp("memory")
    async with composed(Settings(data_dir=data, rate_limits=False, chat_context=2048)) as built:
        yield built


@pytest.fixture(scope="module")
def agents(composition: Composition) -> Agents:
    return composition.services.agents


async def session_of(agents: Agents, tenant: str = "t", **fields: object) -> AgentSessionRecord:
    agent = await agents.create(tenant, config(16, **fields))
    return await agents.create_session(tenant, agent.id, "memory")


async def upload(composition: Composition, tenant: str, filename: str, data: bytes) -> str:
    objects = composition.services.objects

    async def body() -> AsyncIterator[bytes]:
        yield data

    staged = await objects.stage(body())
    record = await objects.commit(
        staged,
        tenant=tenant,
        bucket="files",
        filename=filename,
        mime_type="application/octet-stream",
        purpose="assistants",
    )
    return record.id


async def test_documents_are_remembered_and_every_turn_retrieves_from_them(
    agents: Agents, composition: Composition
) -> None:
    session = await session_of(agents)
    html = base64.b64encode(b"<p>The meeting room is <b>Orchid</b>.</p><script>x()</script>").decode()
    documents = [
        text(HERON),
        text([{"type": "text", "text": "Lunch is served at noon."}]),
        text(f"data:text/html;base64,{html}", "text/html"),
        text({"uri": "data:,Parking%20is%20on%20level%203."}),
        text({"uri": await upload(composition, "t", "faq.md", b"The office cat is named Biscuit.")}),
    ]
    ask = {"messages": [said("What is the Zanzibar codename?")], "documents": documents}
    run = await agents.start_turn("t", session.agent_id, session.id, ask)
    kinds = [(p["event_type"], p.get("step_type")) for p in run.opening]
    assert kinds == [
        ("turn_start", None),
        ("step_start", "memory_retrieval"),
        ("step_complete", "memory_retrieval"),
    ]
    step = run.opening[2]["step_details"]
    assert run.steps.steps == [step] and run.opening[1]["step_id"] == step["step_id"]
    assert step["vector_db_ids"] == memory_store_id("t", session) and step["turn_id"] == run.turn_id
    context = step["inserted_context"]
    assert context.startswith(HEADER) and context.endswith(FOOTER) and context.count("; content:") == 5
    assert context.index("BLUE HERON") < context.index("Biscuit")  # the best match first
    assert "Orchid" in context and "x()" not in context and "level 3" in context
    assert run.input_messages == [{**ask["messages"][0], "context": context}]
    assert run.loop_request.messages[-1] == {
        "role": "user",
        "content": f"What is the Zanzibar codename?\n\n{context}",
    }
    stores = composition.services.vector_stores
    store = await stores.get("t", step["vector_db_ids"])
    assert store.file_counts.completed == 5 and store.record.metadata == {
        "agent_id": session.agent_id,
        "session_id": session.id,
    }

    later = await agents.start_turn(
        "t", session.agent_id, session.id, {"messages": [said("Who is Biscuit?")]}
    )
    again = later.steps.steps[0]
    assert again["step_type"] == "memory_retrieval" and "Biscuit" in again["inserted_context"]
    tools_only = {"messages": [{"role": "tool", "call_id": "c", "content": "x"}]}
    assert (await agents.start_turn("t", session.agent_id, session.id, tools_only)).steps.steps == []
    again_given = {"messages": [said("When?")], "documents": [text(HERON), text("Doors open at nine.")]}
    await agents.start_turn("t", session.agent_id, session.id, again_given)
    assert (await stores.get("t", store.record.id)).file_counts.completed == 6  # HERON once
    for file in (await stores.list_files("t", store.record.id, limit=100)).items:
        await stores.detach_file("t", store.record.id, file.file_id)
    emptied = await agents.start_turn("t", session.agent_id, session.id, {"messages": [said("Who?")]})
    assert emptied.steps.steps[0]["inserted_context"] == "" and emptied.input_messages == [said("Who?")]
    fresh = await session_of(agents)
    plain = await agents.start_turn("t", fresh.agent_id, fresh.id, {"messages": [said("hi")]})
    assert (
        plain.opening == [{"event_type": "turn_start", "turn_id": plain.turn_id}] and plain.steps.steps == []
    )


async def test_a_resumed_turn_reads_its_retrieved_context_again(agents: Agents) -> None:
    forced = {
        "client_tools": [WEATHER],
        "tool_config": {"tool_choice": "get_weather"},
        "max_infer_iters": 2,
        "sampling_params": {"strategy": {"type": "greedy"}, "max_tokens": 48},
    }
    session = await session_of(agents, **forced)
    ask = {"messages": [said("Weather in Paris?")], "documents": [text("Paris weather is reported hourly.")]}
    paused = await agents.finish(await agents.start_turn("t", session.agent_id, session.id, ask))
    context = paused["steps"][0]["inserted_context"]
    assert [s["step_type"] for s in paused["steps"]] == [
        "memory_retrieval",
        "inference",
    ] and "hourly" in context
    call = paused["output_message"]["tool_calls"][0]
    answer = [{"call_id": call["call_id"], "tool_name": "get_weather", "content": "Sunny", "metadata": None}]
    resumed = await agents.resume("t", session.agent_id, session.id, paused["turn_id"], answer)
    assert resumed.loop_request.messages[1] == {"role": "user", "content": f"Weather in Paris?\n\n{context}"}


async def test_a_bad_document_refuses_the_turn_before_anything_is_written(
    agents: Agents, composition: Composition
) -> None:
    session = await session_of(agents)
    theirs = await upload(composition, "other", "secret.txt", b"The vault code is 1234.")
    refused: list[tuple[dict, type[Exception], str]] = [
        (text("https://example.com/doc.pdf", "application/pdf"), InvalidInput, "documents[1].content"),
        (text({"uri": "file:///etc/passwd"}), InvalidInput, "documents[1].content"),
        (text({"uri": theirs}), NotFound, "documents[1].content"),
        (text("data:text/plain;base64,@@@"), InvalidInput, "documents[1].content"),
        (text("data:text/plain"), InvalidInput, "documents[1].content"),
        (text("   "), InvalidInput, "documents[1].content"),
        (text({"uri": "data:application/pdf;base64,bm90IGEgcGRm"}, "application/pdf"), InvalidFile, ""),
    ]
    for document, error, param in refused:
        with pytest.raises(error) as caught:
            ask = {"messages": [said("hi")], "documents": [text(HERON), document]}
            await agents.start_turn("t", session.agent_id, session.id, ask)
        assert caught.value.param == (param or None), document  # type: ignore[attr-defined]
        assert "1234" not in str(caught.value)
    words = " ".join(f"entry{n}" for n in range(60_000))  # over MAX_CHUNKS chunks of 254 tokens
    with pytest.raises(InvalidInput) as caught:
        await agents.start_turn(
            "t", session.agent_id, session.id, {"messages": [said("hi")], "documents": [text(words)]}
        )
    assert caught.value.param == "documents" and str(MAX_CHUNKS) in caught.value.message
    assert await composition.services.vector_stores.rows.get_store("t", memory_store_id("t", session)) is None


async def test_a_document_over_the_bound_is_refused_unread(composition: Composition, agents: Agents) -> None:
    services = composition.services

    def no_tokenizer(model: object) -> object:
        raise AssertionError("nothing is chunked")

    small = SessionMemory(
        services.vector_stores,
        services.vector_io,
        services.objects,
        services.inference,
        no_tokenizer,  # type: ignore[arg-type]
        embedding_model="unused",
        max_document_bytes=8,
    )
    session = await session_of(agents)
    big = await upload(composition, "t", "big.txt", b"more than eight bytes")
    for document in (text({"uri": big}), text("data:,more%20than%20eight")):
        with pytest.raises(InvalidInput) as caught:
            await small.remember("t", session, [document])
        assert caught.value.param == "documents[0].content" and "at most 8" in caught.value.message


async def test_the_memory_is_made_once_and_goes_with_its_session_and_its_agent(
    agents: Agents, composition: Composition
) -> None:
    stores = composition.services.vector_stores
    session = await session_of(agents)
    await asyncio.gather(
        *(
            agents.start_turn(
                "t", session.agent_id, session.id, {"messages": [said("hi")], "documents": [text(word)]}
            )
            for word in ("alpha", "beta")
        )
    )
    store_id = memory_store_id("t", session)
    assert (await stores.get("t", store_id)).file_counts.completed == 2
    assert memory_store_id("other", session) != store_id
    await agents.delete_session("t", session.agent_id, session.id)
    with pytest.raises(NotFound):
        await stores.get("t", store_id)

    agent = await agents.create("t", config(16))
    sessions = [await agents.create_session("t", agent.id, str(n)) for n in range(3)]
    for each in sessions[:2]:
        await agents.start_turn(
            "t", agent.id, each.id, {"messages": [said("hi")], "documents": [text(HERON)]}
        )
    await agents.delete("t", agent.id)
    for each in sessions:
        with pytest.raises(NotFound):
            await stores.get("t", memory_store_id("t", each))
