"""The agent loop that the Responses API and the Agents API both run: inference steps through the
inference router, the tools Cairn runs itself between them, and a stop where the client's tools must
run. It speaks no HTTP and keeps nothing: it yields typed events, which each face renders in its shape
and stores as it must.

One run:
1. An inference step: the conversation so far (chat-completions messages) and every tool offered (the
   client's functions and Cairn's own tools, all as functions to the model), streamed. Its text and
   tool-call pieces go out as they come (``TextDelta``, ``ToolCallDelta``); ``InferenceDone`` closes
   the step with the whole message, its calls, its finish reason and its usage.
2. No calls: the run is ``completed``. A ``length`` stop: ``incomplete`` (``max_output_tokens``).
3. Calls of the client's tools: the run stops ``requires_action`` with them pending (Cairn's own calls
   of the same step run first, so that what is pending is only the client's).
4. Otherwise each of Cairn's calls runs (``ToolStarted``, ``ToolDone``), its output joins the
   conversation, and the next step begins, with ``tool_choice`` back to ``auto`` (a forced choice is
   for the first step: forcing again would never end).

A call of one of Cairn's tools that must wait for the client's approval (an MCP tool) is offered as one
of the client's functions, so the run stops at it; once approved, the next run gets it in ``approved``
(the messages ending with the assistant's call) and runs it before its first step, as step 0's.

Bounds: ``max_steps`` inference steps (then ``incomplete``, ``max_steps``), ``max_tool_calls`` calls of
Cairn's tools in all (once they are spent, the next steps offer the model only the client's tools; calls
beyond the bound in one step are answered with an error the model reads), and ``max_output_tokens``
over every step together. Cancelling the run (closing its iterator, or
cancelling its task) closes the model's stream at once, which stops generation.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import CairnError
from ..inference.router import InferenceRouter
from ..ports.inference import Json

DEFAULT_MAX_STEPS = 10
ToolRunner = Callable[[Json], Awaitable["ToolOutput"]]


@dataclass(frozen=True)
class ServerTool:
    """A tool Cairn runs: its definition as the model sees it (a chat-completions function) and what
    runs a call of it (the call's parsed arguments in, its output out)."""

    name: str
    definition: Json
    run: ToolRunner


@dataclass(frozen=True)
class ToolOutput:
    text: str  # what the model reads
    details: Any = None  # what the face shows (search results, an MCP answer)
    error: str | None = None


@dataclass(frozen=True)
class ToolCall:
    call_id: str
    name: str
    arguments: str  # JSON text, as the model wrote it

    def parsed(self) -> Json:
        """The arguments as an object; ``{}`` for none; ``ValueError`` if they are not an object."""
        value = json.loads(self.arguments or "{}")
        if not isinstance(value, dict):
            raise ValueError("the arguments are not a JSON object")
        return value


@dataclass(frozen=True)
class LoopRequest:
    tenant: str
    model: str
    messages: list[Json]  # chat-completions messages, the instructions first when there are any
    functions: list[Json] = field(default_factory=list)  # the client's tools, as chat-completions tools
    server_tools: Mapping[str, ServerTool] = field(default_factory=dict)
    tool_choice: str | Json = "auto"
    parallel_tool_calls: bool = True
    max_tool_calls: int | None = None
    max_output_tokens: int | None = None
    max_steps: int = DEFAULT_MAX_STEPS
    sampling: Json = field(default_factory=dict)  # temperature, top_p, response_format, logprobs, …
    approved: Sequence[tuple[ToolCall, ServerTool]] = ()  # held calls approved since: they run first


# Events


@dataclass(frozen=True)
class StepStarted:
    step: int
    started_at: float


@dataclass(frozen=True)
class TextDelta:
    step: int
    text: str
    logprobs: list[Json] = field(default_factory=list)


@dataclass(frozen=True)
class ToolCallDelta:
    step: int
    index: int  # of the call within its step
    call_id: str | None  # given on a call's first piece
    name: str | None  # likewise
    arguments: str  # the next piece of the arguments' text


@dataclass(frozen=True)
class InferenceDone:
    step: int
    text: str
    calls: list[ToolCall]
    finish_reason: str
    usage: Json | None
    started_at: float
    completed_at: float


@dataclass(frozen=True)
class ToolStarted:
    step: int
    call: ToolCall


@dataclass(frozen=True)
class ToolDone:
    step: int
    call: ToolCall
    output: ToolOutput
    started_at: float
    completed_at: float


@dataclass(frozen=True)
class LoopDone:
    status: Literal["completed", "incomplete", "requires_action"]
    reason: str | None  # for ``incomplete``: ``max_output_tokens`` or ``max_steps``
    pending: list[ToolCall]  # for ``requires_action``: the client's calls to answer
    usage: Json  # input_tokens, output_tokens, total_tokens over every step
    messages: list[Json]  # the conversation as it ends, for a face that continues it


LoopEvent = StepStarted | TextDelta | ToolCallDelta | InferenceDone | ToolStarted | ToolDone | LoopDone


class AgentLoop:
    def __init__(self, inference: InferenceRouter, clock: Callable[[], float] = time.time) -> None:
        self._inference = inference
        self._clock = clock

    async def run(self, request: LoopRequest) -> AsyncGenerator[LoopEvent, None]:
        messages = list(request.messages)
        tools = [*request.functions, *(tool.definition for tool in request.server_tools.values())]
        choice = request.tool_choice
        usage = {"input_tokens": 0, "output_tokens": 0}
        approved = self._server_calls(0, request.approved, 0, request, messages)
        async with contextlib.aclosing(approved):
            async for event in approved:
                yield event
        server_calls = len(request.approved)
        for step in range(request.max_steps):
            budget = None
            if request.max_output_tokens is not None:
                budget = request.max_output_tokens - usage["output_tokens"]
                if budget < 1:
                    yield self._done("incomplete", "max_output_tokens", [], usage, messages)
                    return
            started = self._clock()
            yield StepStarted(step, started)
            body: Json = {
                **request.sampling,
                "model": request.model,
                "messages": messages,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
            spent = request.max_tool_calls is not None and server_calls >= request.max_tool_calls
            offered = request.functions if spent else tools
            if offered:
                body.update(
                    tools=offered, tool_choice=choice, parallel_tool_calls=request.parallel_tool_calls
                )
            if budget is not None:
                body["max_tokens"] = budget
            text: list[str] = []
            calls: dict[int, dict[str, str]] = {}
            finish = "stop"
            step_usage: Json | None = None
            chunks = self._inference.chat_stream(body, request.tenant)
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    step_usage = chunk.get("usage") or step_usage
                    for choice_delta in chunk["choices"]:
                        finish = choice_delta.get("finish_reason") or finish
                        delta = choice_delta.get("delta") or {}
                        if delta.get("content"):
                            text.append(delta["content"])
                            logprobs = (choice_delta.get("logprobs") or {}).get("content") or []
                            yield TextDelta(step, delta["content"], logprobs)
                        for piece in delta.get("tool_calls") or ():
                            yield _call_piece(step, piece, calls)
            usage["input_tokens"] += (step_usage or {}).get("prompt_tokens") or 0
            usage["output_tokens"] += (step_usage or {}).get("completion_tokens") or 0
            made = [ToolCall(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items())]
            yield InferenceDone(step, "".join(text), made, finish, step_usage, started, self._clock())
            messages.append(_assistant("".join(text), made))
            if finish == "length":
                yield self._done("incomplete", "max_output_tokens", [], usage, messages)
                return
            if not made:
                yield self._done("completed", None, [], usage, messages)
                return
            ours = [
                (call, request.server_tools[call.name]) for call in made if call.name in request.server_tools
            ]
            running = self._server_calls(step, ours, server_calls, request, messages)
            async with contextlib.aclosing(running):
                async for event in running:
                    yield event
            server_calls += len(ours)
            pending = [call for call in made if call.name not in request.server_tools]
            if pending:
                yield self._done("requires_action", None, pending, usage, messages)
                return
            choice = "auto"
        yield self._done("incomplete", "max_steps", [], usage, messages)

    async def _server_calls(
        self,
        step: int,
        calls: Sequence[tuple[ToolCall, ServerTool]],
        made_before: int,
        request: LoopRequest,
        messages: list[Json],
    ) -> AsyncGenerator[LoopEvent, None]:
        """Run calls of Cairn's tools, their outputs joining ``messages``; the calls beyond
        ``max_tool_calls`` (``made_before`` were made) are answered with an error."""
        for made, (call, tool) in enumerate(calls, made_before + 1):
            started = self._clock()
            yield ToolStarted(step, call)
            if request.max_tool_calls is not None and made > request.max_tool_calls:
                output = ToolOutput("", error=f"No more tool calls: at most {request.max_tool_calls}.")
            else:
                output = await _run(tool, call)
            yield ToolDone(step, call, output, started, self._clock())
            messages.append(
                {"role": "tool", "tool_call_id": call.call_id, "content": output.error or output.text}
            )

    @staticmethod
    def _done(
        status: Literal["completed", "incomplete", "requires_action"],
        reason: str | None,
        pending: list[ToolCall],
        usage: dict[str, int],
        messages: list[Json],
    ) -> LoopDone:
        total = {**usage, "total_tokens": usage["input_tokens"] + usage["output_tokens"]}
        return LoopDone(status, reason, pending, total, messages)


def _call_piece(step: int, piece: Json, calls: dict[int, dict[str, str]]) -> ToolCallDelta:
    """Gather one piece of a streamed tool call into ``calls`` and say what it added."""
    index = piece.get("index", 0)
    function = piece.get("function") or {}
    gathered = calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
    call_id = name = None
    if piece.get("id") and not gathered["id"]:
        gathered["id"] = call_id = piece["id"]
    if function.get("name") and not gathered["name"]:
        gathered["name"] = name = function["name"]
    arguments = function.get("arguments") or ""
    gathered["arguments"] += arguments
    return ToolCallDelta(step, index, call_id, name, arguments)


def _assistant(text: str, calls: list[ToolCall]) -> Json:
    message: Json = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = [
            {"id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls
        ]
    return message


async def _run(tool: ServerTool, call: ToolCall) -> ToolOutput:
    """The tool's output; a call it cannot take (arguments that are not an object, a refusal of its
    own) is an output with an error, which the model reads and may correct."""
    try:
        arguments = call.parsed()
    except ValueError:
        return ToolOutput("", error=f"The arguments of `{call.name}` are not a JSON object.")
    try:
        return await tool.run(arguments)
    except CairnError as exc:
        return ToolOutput("", error=exc.message)
