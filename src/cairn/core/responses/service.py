"""The Responses API (OpenAI's ``client.responses``) on the agent loop: the service the face calls.

A response runs in two parts, so that a request the server refuses is refused with a status code before
any event: ``start`` checks everything (the model, the tools, the chain or conversation it continues,
the input items, the files they attach) and returns a ``Run``; ``events`` runs it and yields the stream
events, and ``finish`` runs it whole and returns the response object.

- Context: the instructions of this request only, then the items of the ``previous_response_id`` chain
  (each response's input, then its output, oldest first) or of the ``conversation``, then the input.
- ``truncation: auto``: a context the model cannot hold loses its oldest items, before any output,
  until it fits (the instructions and the last item stay); ``disabled`` (the default) is a 400
  ``context_length_exceeded``.
- Background (``background: true``): ``submit`` queues the run as a durable job
  (``core.responses.background``), whose events are kept for streams read again (``events``).
- Tools: ``function`` tools are the client's (the response ends with their ``function_call`` items, and
  the next request answers them with ``function_call_output``); ``file_search`` runs here, and ``mcp``
  on a remote MCP server (``core.responses.mcp``: listed in ``start``, approvals answered there too). A
  tool this server does not run is a 400 naming it.
- Storage (``store``, true by default): the row is written when the response starts (``in_progress``)
  and replaced when it ends; a run that is stopped (its client left) ends ``cancelled``, one that fails
  ``failed``. ``store: false`` writes nothing. A response in a conversation appends its input and
  output items to it once it completes (or is ``incomplete``), never when it fails or is cancelled.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..agents.loop import DEFAULT_MAX_STEPS, AgentLoop, LoopDone, LoopEvent, LoopRequest, ServerTool
from ..conversations import Conversations
from ..errors import CairnError, ContextLengthExceeded, InvalidInput, NotFound, Unavailable
from ..inference.router import InferenceRouter
from ..jobs import JobRunner
from ..objects import ObjectEngine
from ..ports.inference import Json, ModelType
from ..ports.mcp import McpClient
from ..ports.objects import Order
from ..ports.responses import ResponseRows
from ..records import ObjectRecord, Page, StoredResponse
from ..vectors.stores import VectorStores
from .events import EventLog
from .file_search import file_search_face, file_search_tool
from .include import LOGPROBS
from .items import input_items
from .mcp import McpTools, mcp_tool_choice, mcp_tools, shown_tools
from .render import ResponseRenderer, ToolFace
from .transcript import MAX_ATTACHMENT_BYTES, messages_for

log = logging.getLogger("cairn.responses")

MAX_CHAIN = 1000  # responses in one previous_response_id chain
MAX_PAGE = 100
UNFINISHED = ("queued", "in_progress")
BACKGROUND_JOB = "response.background"


def response_id(now: float) -> str:
    return f"resp_{int(now * 1000):012x}{secrets.token_hex(18)}"


def background_job_id(response_id: str) -> str:
    return "bg-" + response_id


def not_found(response_id: str) -> NotFound:
    return NotFound(
        f"Response '{response_id[:80]}' not found. "
        "Use 'client.responses.list()' to list available Responses.",
        param="response_id",
    )


@dataclass
class Run:
    tenant: str
    renderer: ResponseRenderer
    loop_request: LoopRequest
    input_items: list[Json]
    store: bool
    conversation_id: str | None
    background: bool
    body: Json
    truncate: bool = False
    finished: bool = False
    failure: CairnError | None = None
    output_started: bool = field(default=False)

    @property
    def response(self) -> Json:
        return self.renderer.response


class Responses:
    def __init__(
        self,
        rows: ResponseRows,
        loop: AgentLoop,
        inference: InferenceRouter,
        objects: ObjectEngine,
        vector_stores: VectorStores,
        conversations: Conversations,
        jobs: JobRunner,
        mcp: McpClient,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rows = rows
        self.jobs = jobs
        self.log = EventLog(rows)
        self._loop = loop
        self._inference = inference
        self._objects = objects
        self._vector_stores = vector_stores
        self._conversations = conversations
        self._mcp = mcp
        self._clock = clock

    # Create

    async def start(
        self,
        tenant: str,
        body: Json,
        *,
        identity: tuple[str, int] | None = None,
        kept: StoredResponse | None = None,
    ) -> Run:
        """Everything checked, nothing run or written yet. ``identity``: the id and creation time of a
        background response that was queued with them. ``kept``: a response held in memory (a WebSocket's
        last one, stored or not), which ``previous_response_id`` may name."""
        background = bool(body.get("background"))
        if background and body.get("store") is False:
            raise InvalidInput("A background response is stored: it cannot have store false.", param="store")
        previous = body.get("previous_response_id")
        conversation = body.get("conversation")
        conversation_id = conversation.get("id") if isinstance(conversation, dict) else conversation
        if previous and conversation_id:
            raise InvalidInput(
                "Give previous_response_id or conversation, not both.", param="previous_response_id"
            )
        model = await self._inference.catalog.get(body["model"], ModelType.LLM, tenant=tenant)
        new_items = input_items(body.get("input", []))
        if previous:
            history = await self._chain(tenant, previous, kept)
        elif conversation_id:
            history = await self._conversations.history(tenant, conversation_id)
        else:
            history = []
        _answers_known_calls(history, new_items)
        include = set(body.get("include") or ())
        functions, server_tools, faces, mcp = await self._tools(
            tenant, body.get("tools") or [], history, new_items
        )
        for tool in body.get("tools") or ():  # the stores file_search reads are the tenant's, now
            for store_id in tool.get("vector_store_ids") or () if tool["type"] == "file_search" else ():
                await self._vector_stores.get(tenant, store_id)
        messages = await messages_for(
            history + _resolved(new_items, history), body.get("instructions"), self._file_reader(tenant)
        )
        now = self._clock()
        rid, created = identity or (response_id(now), int(now))
        response = _response_object(body, rid, created, model.identifier, conversation_id)
        loop_request = LoopRequest(
            tenant=tenant,
            model=model.identifier,
            messages=messages,
            functions=functions,
            server_tools=server_tools,
            tool_choice=_tool_choice(body.get("tool_choice"), functions, server_tools, mcp),
            parallel_tool_calls=_given(body.get("parallel_tool_calls"), True),
            max_tool_calls=body.get("max_tool_calls"),
            max_output_tokens=body.get("max_output_tokens"),
            max_steps=body.get("max_infer_iters") or DEFAULT_MAX_STEPS,
            sampling=_sampling(body, include),
            approved=mcp.approved,
        )
        return Run(
            tenant=tenant,
            renderer=ResponseRenderer(
                response, faces, clock=self._clock, listings=mcp.listings, include=include
            ),
            loop_request=loop_request,
            input_items=new_items,
            store=_given(body.get("store"), True),
            conversation_id=conversation_id,
            background=background,
            body=body,
            truncate=body.get("truncation") == "auto",
        )

    async def events(self, run: Run) -> AsyncGenerator[Json, None]:
        """The stream events of the run, from ``response.created`` to its end (a background run: from
        ``response.in_progress``, ``submit`` having sent the first ones); closing the iterator stops the
        run (``cancelled``)."""
        if run.background:
            for event in run.renderer.started():
                yield event
        else:
            for event in run.renderer.opening():
                yield event
            if run.store:
                await self.rows.insert_response(self.row_of(run))
        try:
            events = self._loop_events(run)
            async with contextlib.aclosing(events):
                async for loop_event in events:
                    for event in run.renderer.on(loop_event):
                        run.output_started = True
                        yield event
            run.finished = True
        except CairnError as exc:
            run.failure, run.finished = exc, True
            for event in run.renderer.failed(exc.code, exc.message):
                yield event
        except Exception:
            log.exception("responses.failed response=%s", run.response["id"])
            run.failure, run.finished = Unavailable("The response failed."), True
            for event in run.renderer.failed("server_error", "The response failed."):
                yield event
        finally:
            if not run.finished:
                run.renderer.cancelled()
            await asyncio.shield(self._settle(run))

    async def _loop_events(self, run: Run) -> AsyncGenerator[LoopEvent, None]:
        """The loop's events; with ``truncation: auto``, a context the model cannot hold loses its oldest
        messages (the instructions stay) until it fits, before any output."""
        request = run.loop_request
        while True:
            events = self._loop.run(request)
            try:
                async with contextlib.aclosing(events):
                    async for event in events:
                        yield event
                return
            except ContextLengthExceeded:
                shorter = _truncated(request.messages) if run.truncate and not run.output_started else None
                if shorter is None:
                    raise
                request = replace(request, messages=shorter)

    async def finish(self, run: Run) -> Json:
        """Run it whole: the response object as the request's ``include`` shows it. A failure before
        any output is raised (a request the model refused is the request's error); a later one is the
        response's ``failed`` status."""
        async for _ in self.events(run):
            pass
        if run.failure is not None and not run.output_started:
            raise run.failure
        return run.renderer.shown()

    async def input_tokens(self, tenant: str, body: Json) -> int:
        """The tokens the model would read for ``body``, counted by the model itself: it reads the
        context (tools and instructions included) and writes one token. Nothing is kept."""
        run = await self.start(tenant, {**body, "store": False})
        request = replace(run.loop_request, max_output_tokens=1, max_steps=1, approved=())
        events = self._loop.run(request)
        async with contextlib.aclosing(events):
            async for event in events:
                if isinstance(event, LoopDone):
                    return int(event.usage["input_tokens"])
        raise Unavailable("The model did not say how many tokens it read.")

    async def submit(self, run: Run) -> Json:
        """Queue a background run: its row and its first events (``response.created``,
        ``response.queued``) are kept, and its job is enqueued; any replica runs it."""
        opening = run.renderer.opening()
        await self.rows.insert_response(self.row_of(run))
        await self.rows.append_events(run.tenant, run.response["id"], opening)
        payload = {
            "body": run.body,
            "response_id": run.response["id"],
            "created_at": run.response["created_at"],
        }
        await self.jobs.enqueue(
            run.tenant, BACKGROUND_JOB, payload, job_id=background_job_id(run.response["id"])
        )
        return run.response

    # Read, list, delete

    async def get(self, tenant: str, response_id: str) -> StoredResponse:
        row = await self.rows.get_response(tenant, response_id)
        if row is None:
            raise not_found(response_id)
        return row

    async def list(
        self, tenant: str, *, after: str | None, limit: int, order: Order, model: str | None
    ) -> Page[StoredResponse]:
        _limit(limit)
        return await self.rows.list_responses(tenant, after=after, limit=limit, order=order, model=model)

    async def input_items(
        self, tenant: str, response_id: str, *, after: str | None, limit: int, order: Order
    ) -> Page[Json]:
        _limit(limit)
        items = (await self.get(tenant, response_id)).input_items
        items = items if order == "asc" else items[::-1]
        if after is not None:
            at = next((i for i, item in enumerate(items) if item.get("id") == after), None)
            items = [] if at is None else items[at + 1 :]
        return Page(items[:limit], len(items) > limit)

    async def delete(self, tenant: str, response_id: str) -> None:
        if not await self.rows.delete_response(tenant, response_id):
            raise not_found(response_id)

    async def cancel(self, tenant: str, response_id: str) -> StoredResponse:
        """Stop a background response that has not ended: it is ``cancelled`` at once, and its run stops
        wherever it runs. One that has ended is returned as it is."""
        row = await self.get(tenant, response_id)
        if not row.response.get("background"):
            raise InvalidInput("Only a background response can be cancelled.", param="response_id")
        if row.status not in UNFINISHED:
            return row
        cancelled = replace(row, status="cancelled", response={**row.response, "status": "cancelled"})
        if not await self.rows.finish_response(cancelled, UNFINISHED):
            return await self.get(tenant, response_id)
        await self.jobs.cancel(tenant, background_job_id(response_id))
        self.log.ring(response_id)
        return cancelled

    # Internals

    async def _chain(self, tenant: str, previous: str, kept: StoredResponse | None) -> builtins.list[Json]:
        """The items of the chain that ends with ``previous``: oldest response first, each its input
        then its output; ``kept`` stands for its row."""
        chain: builtins.list[StoredResponse] = []
        next_id: str | None = previous
        while next_id is not None:
            if len(chain) >= MAX_CHAIN:
                raise InvalidInput(
                    f"A chain of responses may be at most {MAX_CHAIN} long.", param="previous_response_id"
                )
            row = (
                kept
                if kept is not None and kept.id == next_id
                else await self.rows.get_response(tenant, next_id)
            )
            if row is None:
                error = InvalidInput(
                    f"Previous response with id '{next_id[:80]}' not found.", param="previous_response_id"
                )
                error.code = "previous_response_not_found"
                raise error
            chain.append(row)
            next_id = row.previous_response_id
        return [item for row in reversed(chain) for item in (*row.input_items, *row.response["output"])]

    async def _tools(
        self,
        tenant: str,
        tools: builtins.list[Json],
        history: builtins.list[Json],
        new_items: builtins.list[Json],
    ) -> tuple[builtins.list[Json], dict[str, ServerTool], dict[str, ToolFace], McpTools]:
        functions: builtins.list[Json] = []
        server: dict[str, ServerTool] = {}
        faces: dict[str, ToolFace] = {}
        for at, tool in enumerate(tools):
            kind = tool.get("type")
            if kind == "function":
                function = {"name": tool["name"], "parameters": tool.get("parameters") or {"type": "object"}}
                if tool.get("description"):
                    function["description"] = tool["description"]
                if tool.get("strict") is not None:
                    function["strict"] = tool["strict"]
                functions.append({"type": "function", "function": function})
            elif kind == "file_search":
                built = file_search_tool(tool, self._vector_stores, tenant)
                server[built.name] = built
                faces[built.name] = file_search_face()
            elif kind != "mcp":  # the mcp tools are read together, below
                raise InvalidInput(
                    f"The tool `{kind}` is not available on this server.", param=f"tools[{at}].type"
                )
        mcp = await mcp_tools(self._mcp, tools, history, new_items)
        functions += mcp.functions
        names = [f["function"]["name"] for f in functions] + [*server, *mcp.server_tools]
        clash = next((name for name in names if names.count(name) > 1), None)
        if clash is not None:
            raise InvalidInput(f"Two tools are named `{clash}`.", param="tools")
        return functions, {**server, **mcp.server_tools}, {**faces, **mcp.faces}, mcp

    def _file_reader(self, tenant: str) -> Callable[[str], Any]:
        async def read(file_id: str) -> tuple[ObjectRecord, bytes]:
            record = await self._objects.get(tenant, None, file_id)
            if record.bytes > MAX_ATTACHMENT_BYTES:
                raise InvalidInput(
                    f"The file `{record.filename}` is over {MAX_ATTACHMENT_BYTES >> 20} MiB.", param="input"
                )
            return record, b"".join([part async for part in self._objects.read(record)])

        return read

    def row_of(self, run: Run) -> StoredResponse:
        """The run as its row shows it (and as a later ``start`` continues it: ``kept``)."""
        response = run.response
        previous = response.get("previous_response_id")
        return StoredResponse(
            id=response["id"],
            tenant=run.tenant,
            created_at=response["created_at"],
            model=response["model"],
            status=response["status"],
            previous_response_id=previous,
            conversation_id=run.conversation_id,
            response=response,
            input_items=run.input_items,
        )

    async def _settle(self, run: Run) -> None:
        """Write the response as it ended, and append it to its conversation."""
        if run.store:
            await self.rows.finish_response(self.row_of(run), UNFINISHED)
        if run.conversation_id and run.response["status"] in ("completed", "incomplete"):
            await self._conversations.append(
                run.tenant, run.conversation_id, [*run.input_items, *run.response["output"]]
            )


def _answers_known_calls(history: list[Json], items: list[Json]) -> None:
    """Every ``function_call_output`` answers a ``function_call`` of the context or of the input."""
    calls = {item.get("call_id") for item in (*history, *items) if item.get("type") == "function_call"}
    for at, item in enumerate(items):
        if item.get("type") == "function_call_output" and item["call_id"] not in calls:
            raise InvalidInput(
                f"No tool call found for function call output with call_id {item['call_id'][:80]}.",
                param=f"input[{at}].call_id",
            )


def _truncated(messages: list[Json]) -> list[Json] | None:
    """The messages without their oldest exchange (a message, or an assistant's tool calls with the
    tool messages that answer them); the instructions and the last message stay. None: nothing to drop."""
    head = messages[:1] if messages and messages[0]["role"] == "system" else []
    rest = messages[len(head) :]
    if len(rest) <= 1:
        return None
    drop = 1
    while drop < len(rest) - 1 and rest[drop]["role"] == "tool":
        drop += 1
    return head + rest[drop:]


def _limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}.", param="limit")


def _resolved(items: list[Json], history: list[Json]) -> list[Json]:
    """``item_reference`` items replaced by the items of the context they name."""
    known = {item.get("id"): item for item in history}
    resolved = []
    for item in items:
        if item.get("type") == "item_reference":
            if item["id"] not in known:
                raise InvalidInput(f"No item '{item['id'][:80]}' in this response's context.", param="input")
            resolved.append(known[item["id"]])
        else:
            resolved.append(item)
    return resolved


def _tool_choice(
    choice: Any, functions: list[Json], server: Mapping[str, ServerTool], mcp: McpTools
) -> str | Json:
    if choice is None or choice in ("auto", "none", "required"):
        return choice or "auto"
    kind = choice.get("type")
    if kind == "function":
        name = choice.get("name")
        if not any(function["function"]["name"] == name for function in functions):
            raise InvalidInput(
                f"tool_choice names `{name}`, which is no function tool of this request.",
                param="tool_choice.name",
            )
        return {"type": "function", "function": {"name": name}}
    if kind == "mcp":
        return mcp_tool_choice(choice, mcp)
    if kind in server:  # {"type": "file_search"}: that tool, forced
        return {"type": "function", "function": {"name": kind}}
    raise InvalidInput(f"tool_choice `{kind}` names no tool of this request.", param="tool_choice")


def _sampling(body: Json, include: set[str]) -> Json:
    sampling: Json = {}
    for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty", "user"):
        if body.get(name) is not None:
            sampling[name] = body[name]
    text_format = (body.get("text") or {}).get("format") or {"type": "text"}
    if text_format["type"] == "json_object":
        sampling["response_format"] = {"type": "json_object"}
    elif text_format["type"] == "json_schema":
        schema = {
            key: text_format[key] for key in ("name", "schema", "strict", "description") if key in text_format
        }
        sampling["response_format"] = {"type": "json_schema", "json_schema": schema}
    if LOGPROBS in include:
        sampling["logprobs"] = True
        if body.get("top_logprobs"):
            sampling["top_logprobs"] = body["top_logprobs"]
    return sampling


def _response_object(body: Json, rid: str, now: int, model: str, conversation_id: str | None) -> Json:
    """OpenAI's response object as it starts, every field present; none null that the Open Responses
    specification requires."""
    return {
        "id": rid,
        "object": "response",
        "created_at": now,
        "status": "queued" if body.get("background") else "in_progress",
        "background": bool(body.get("background")),
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "model": model,
        "output": [],
        "parallel_tool_calls": _given(body.get("parallel_tool_calls"), True),
        "previous_response_id": body.get("previous_response_id"),
        "conversation": {"id": conversation_id} if conversation_id else None,
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {"effort": None, "summary": None},
        "safety_identifier": body.get("safety_identifier"),
        "service_tier": body.get("service_tier") or "default",
        "store": _given(body.get("store"), True),
        "temperature": _given(body.get("temperature"), 1.0),
        "text": {"format": (body.get("text") or {}).get("format") or {"type": "text"}, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": shown_tools(body.get("tools") or []),
        "top_logprobs": body.get("top_logprobs") or 0,
        "top_p": _given(body.get("top_p"), 1.0),
        "presence_penalty": _given(body.get("presence_penalty"), 0.0),
        "frequency_penalty": _given(body.get("frequency_penalty"), 0.0),
        "truncation": body.get("truncation") or "disabled",
        "usage": None,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def _given(value: Any, default: Any) -> Any:
    return default if value is None else value
