"""The agent loop's events as the Responses API shows them: the output items of a response and the
stream events that build them, exactly in OpenAI's order.

A text answer streams ``response.output_item.added`` (a message, ``in_progress``),
``response.content_part.added``, ``response.output_text.delta`` for each piece,
``response.output_text.done``, ``response.content_part.done`` and ``response.output_item.done``; a
function call streams ``output_item.added`` (arguments empty), ``function_call_arguments.delta`` for
each piece, ``function_call_arguments.done`` and ``output_item.done``. A call of one of Cairn's own
tools shows as that tool's item (``file_search_call``: ``in_progress``, ``searching``, ``completed``),
never as a function call; an ``mcp_call`` shows as the model writes it, as a function call does
(``mcp_call_arguments.delta``, ``.done``), then runs (``mcp_call.in_progress``, ``.completed`` or
``.failed``), and one that waits for the client's approval is an ``mcp_approval_request`` item alone.
When a tool offers passages to cite (``file_search``), the answer's text streams without the citation
markers the model writes, and each file it cites is a ``file_citation`` annotation
(``response.output_text.annotation.added``, before ``output_text.done``; ``core.responses.citations``).
The MCP listings made for the response (``mcp_list_tools``) open its output, right after
``response.in_progress``. Every event carries the next ``sequence_number``, from 0; the response object
that ``response.completed`` (or ``incomplete``, ``failed``) carries holds the whole output. The
response object keeps everything; the events show what the request's ``include`` asks for
(``core.responses.include``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..agents.loop import (
    InferenceDone,
    LoopDone,
    LoopEvent,
    StepStarted,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolDone,
    ToolOutput,
    ToolStarted,
)
from ..ports.inference import Json
from .citations import CitedText, Source
from .include import shown_item, shown_response
from .items import new_id


@dataclass(frozen=True)
class ToolFace:
    """How one of Cairn's tools shows in a response: its item's type and id prefix, and the item's
    fields for a call (before it runs) and for its output."""

    item_type: str
    id_prefix: str
    fields: Callable[[ToolCall], Json]
    result: Callable[[ToolCall, ToolOutput], Json]
    progress: tuple[str, ...] = ()  # events between ``in_progress`` and ``completed``, e.g. ``searching``
    streams_arguments: bool = False  # shown as it is written: ``<item_type>_arguments.delta``, ``.done``
    failed_event: bool = False  # a call that fails ends with ``<item_type>.failed``, not ``.completed``
    held: ToolFace | None = None  # the model's calls wait for the client's approval, shown as this item
    sources: Callable[[ToolOutput], Sequence[Source]] | None = None  # what the answer may cite


class ResponseRenderer:
    """The response object, kept up to date event by event, and the stream events that say so."""

    def __init__(
        self,
        response: Json,
        tools: Mapping[str, ToolFace],
        clock: Callable[[], float] = time.time,
        listings: Sequence[Json] = (),
        include: Collection[str] = (),
    ):
        self.response = response
        self._include = include
        self._tools = tools
        self._listings = listings  # the mcp_list_tools items made for this response
        self._clock = clock
        self._sequence = 0
        self._message: Json | None = None  # the message item being written
        self._calls: dict[int, Json] = {}  # the step's function call items, by call index
        self._hidden: set[int] = set()  # the step's call indexes that are Cairn's tools, not yet shown
        self._tool_items: dict[str, Json] = {}  # Cairn's tool items not yet done, by call id
        self._cites = any(face.sources is not None for face in tools.values())
        self._sources: list[Source] = []  # the passages the tools gave, which the answer may cite
        self._cited: CitedText | None = None  # the message's text being written, when it may cite
        self._logprobs: list[Json] = []  # of the text held back (it may be a marker)

    @property
    def output(self) -> list[Json]:
        return self.response["output"]  # type: ignore[no-any-return]

    def event(self, kind: str, **fields: Any) -> Json:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def opening(self) -> list[Json]:
        """``response.created``, then ``response.in_progress`` and the MCP listings (or, queued,
        ``response.queued``)."""
        opened = [self.event("response.created", response=self._snapshot())]
        if self.response["status"] == "queued":
            return [*opened, self.event("response.queued", response=self._snapshot())]
        return [*opened, self.event("response.in_progress", response=self._snapshot()), *self._listed()]

    def started(self) -> list[Json]:
        """A queued (background) response begins to run, after the two events of its ``opening``: its
        ``response.in_progress`` and the MCP listings."""
        self._sequence = max(self._sequence, 2)
        self.response["status"] = "in_progress"
        return [self.event("response.in_progress", response=self._snapshot()), *self._listed()]

    def _listed(self) -> list[Json]:
        events = []
        for listing in self._listings:
            self.output.append(_copy(listing))
            at = {"item_id": listing["id"], "output_index": len(self.output) - 1}
            events += [
                self.event(
                    "response.output_item.added",
                    output_index=at["output_index"],
                    item={**listing, "tools": []},
                ),
                self.event("response.mcp_list_tools.in_progress", **at),
                self.event("response.mcp_list_tools.completed", **at),
                self.event(
                    "response.output_item.done", output_index=at["output_index"], item=self._item(listing)
                ),
            ]
        return events

    def on(self, event: LoopEvent) -> list[Json]:
        if isinstance(event, TextDelta):
            return self._text(event)
        if isinstance(event, ToolCallDelta):
            return self._call_piece(event)
        if isinstance(event, InferenceDone):
            return self._step_done(event)
        if isinstance(event, ToolStarted):
            return self._tool_started(event.call)
        if isinstance(event, ToolDone):
            return self._tool_done(event)
        if isinstance(event, LoopDone):
            return self._finished(event)
        assert isinstance(event, StepStarted)
        self._calls, self._hidden = {}, set()
        return []

    def failed(self, code: str, message: str) -> list[Json]:
        """The run failed after it began: what was open closes as it stands, and the response says why."""
        closing = self._close_message("incomplete")
        self.response.update(status="failed", error={"code": code, "message": message})
        return [*closing, self.event("response.failed", response=self._snapshot())]

    def cancelled(self) -> None:
        """The run was stopped (its client left, or a cancel): nothing more is streamed."""
        self._close_message("incomplete")
        self.response["status"] = "cancelled"

    # Text

    def _text(self, event: TextDelta) -> list[Json]:
        events = []
        if self._message is None:
            self._message = {
                "id": new_id("msg_"),
                "type": "message",
                "role": "assistant",
                "status": "in_progress",
                "content": [],
            }
            self.output.append(self._message)
            events.append(self._added(self._message))
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            self._message["content"].append(part)
            events.append(
                self.event("response.content_part.added", **self._at(self._message), part=_copy(part))
            )
            self._cited = CitedText(self._sources) if self._cites else None
        if self._cited is None:
            return [*events, *self._shown_text(event.text, event.logprobs)]
        text, citations, removed = self._cited.feed(event.text)
        self._logprobs = [] if removed else self._logprobs + event.logprobs  # a marker's go with it
        events += self._shown_text(text, self._logprobs) if text else []
        self._logprobs = [] if text else self._logprobs
        return events + self._annotated(citations)

    def _shown_text(self, text: str, logprobs: list[Json]) -> list[Json]:
        assert self._message is not None
        part = self._message["content"][0]
        part["text"] += text
        part["logprobs"] += logprobs
        return [
            self.event("response.output_text.delta", **self._at(self._message), delta=text, logprobs=logprobs)
        ]

    def _annotated(self, citations: list[Json]) -> list[Json]:
        assert self._message is not None
        annotations = self._message["content"][0]["annotations"]
        events = []
        for annotation in citations:
            annotations.append(annotation)
            events.append(
                self.event(
                    "response.output_text.annotation.added",
                    **self._at(self._message),
                    annotation_index=len(annotations) - 1,
                    annotation=_copy(annotation),
                )
            )
        return events

    def _close_message(self, status: str = "completed") -> list[Json]:
        if self._message is None:
            return []
        events = []
        if self._cited is not None:
            text, citations = self._cited.close()
            events += self._shown_text(text, self._logprobs) if text else []
            events += self._annotated(citations)
            self._cited, self._logprobs = None, []
        message, self._message = self._message, None
        message["status"] = status
        part = message["content"][0]
        at = self._at(message)
        return [
            *events,
            self.event("response.output_text.done", **at, text=part["text"], logprobs=part["logprobs"]),
            self.event("response.content_part.done", **at, part=_copy(part)),
            self.event(
                "response.output_item.done", output_index=at["output_index"], item=self._item(message)
            ),
        ]

    # Calls

    def _call_piece(self, event: ToolCallDelta) -> list[Json]:
        if event.index in self._hidden:
            return []
        events = self._close_message()
        item = self._calls.get(event.index)
        if item is None:
            face = self._tools.get(event.name or "")
            if face is not None and (face.held is not None or not face.streams_arguments):
                self._hidden.add(event.index)
                return events
            item = self._calls[event.index] = _call_item(event, face)
            self.output.append(item)
            events.append(self._added(item))
        if event.arguments:
            item["arguments"] += event.arguments
            events.append(
                self.event(
                    f"response.{item['type']}_arguments.delta",
                    item_id=item["id"],
                    output_index=self.output.index(item),
                    delta=event.arguments,
                )
            )
        return events

    def _step_done(self, event: InferenceDone) -> list[Json]:
        events = self._close_message("incomplete" if event.finish_reason == "length" else "completed")
        for index, call in enumerate(event.calls):
            face = self._tools.get(call.name)
            if face is not None and face.held is not None:
                events += self._held(call, face.held)
                continue
            if face is not None and not face.streams_arguments:
                continue
            item = self._calls.get(index)
            if item is None:  # a call that came whole, with no piece before
                events += self._call_piece(ToolCallDelta(event.step, index, call.call_id, call.name, ""))
                item = self._calls[index]
            item["arguments"] = call.arguments
            at = {"item_id": item["id"], "output_index": self.output.index(item)}
            if face is not None:  # it runs next
                self._tool_items[call.call_id] = item
                events.append(
                    self.event(f"response.{face.item_type}_arguments.done", **at, arguments=call.arguments)
                )
                continue
            item.update(call_id=call.call_id, name=call.name, status="completed")
            events.append(
                self.event(
                    "response.function_call_arguments.done", **at, name=call.name, arguments=call.arguments
                )
            )
            events.append(
                self.event(
                    "response.output_item.done", output_index=at["output_index"], item=self._item(item)
                )
            )
        return events

    def _held(self, call: ToolCall, face: ToolFace) -> list[Json]:
        """A call that waits for the client's approval: its item, whole."""
        item = {"id": new_id(face.id_prefix), "type": face.item_type, **face.fields(call)}
        self.output.append(item)
        done = self.event(
            "response.output_item.done", output_index=len(self.output) - 1, item=self._item(item)
        )
        return [self._added(item), done]

    def _tool_started(self, call: ToolCall) -> list[Json]:
        face = self._tools[call.name]
        events = []
        item = self._tool_items.get(call.call_id)
        if item is None:
            item = {"id": new_id(face.id_prefix), "type": face.item_type, "status": "in_progress"}
            item.update(face.fields(call))
            self._tool_items[call.call_id] = item
            self.output.append(item)
            events.append(self._added(item))
        at = {"item_id": item["id"], "output_index": self.output.index(item)}
        events.append(self.event(f"response.{face.item_type}.in_progress", **at))
        events += [self.event(f"response.{face.item_type}.{step}", **at) for step in face.progress]
        return events

    def _tool_done(self, event: ToolDone) -> list[Json]:
        face = self._tools[event.call.name]
        item = self._tool_items.pop(event.call.call_id)
        item.update(face.result(event.call, event.output))
        item["status"] = "failed" if event.output.error else "completed"
        if face.sources is not None:
            self._sources += face.sources(event.output)
        ending = "failed" if event.output.error and face.failed_event else "completed"
        at = self.output.index(item)
        return [
            self.event(f"response.{face.item_type}.{ending}", item_id=item["id"], output_index=at),
            self.event("response.output_item.done", output_index=at, item=self._item(item)),
        ]

    # The end

    def _finished(self, done: LoopDone) -> list[Json]:
        events = self._close_message()
        for item in self._tool_items.values():  # written, never run: the model's output was cut
            item["status"] = "incomplete"
            events.append(
                self.event(
                    "response.output_item.done", output_index=self.output.index(item), item=self._item(item)
                )
            )
        self._tool_items.clear()
        usage = done.usage
        self.response["usage"] = {
            "input_tokens": usage["input_tokens"],
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": usage["output_tokens"],
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage["total_tokens"],
        }
        if done.status == "incomplete":
            self.response.update(status="incomplete", incomplete_details={"reason": done.reason})
            kind = "response.incomplete"
        else:  # a response that stops for the client's function calls is complete: its output is those calls
            self.response.update(status="completed", completed_at=int(self._clock()))
            kind = "response.completed"
        events.append(self.event(kind, response=self._snapshot()))
        return events

    # Helpers

    def _added(self, item: Json) -> Json:
        return self.event(
            "response.output_item.added", output_index=self.output.index(item), item=self._item(item)
        )

    def _at(self, message: Json) -> Json:
        return {"item_id": message["id"], "output_index": self.output.index(message), "content_index": 0}

    def shown(self) -> Json:
        """The response as the request's ``include`` shows it."""
        return self._snapshot()

    def _snapshot(self) -> Json:
        return shown_response(_copy(self.response), self._include)

    def _item(self, item: Json) -> Json:
        return shown_item(_copy(item), self._include)


def _call_item(first: ToolCallDelta, face: ToolFace | None) -> Json:
    """The item of a call the model begins to write: the client's function call, or a call of one of
    Cairn's tools that shows as it is written."""
    if face is None:
        return {
            "id": new_id("fc_"),
            "type": "function_call",
            "status": "in_progress",
            "call_id": first.call_id or "",
            "name": first.name or "",
            "arguments": "",
        }
    fields = face.fields(ToolCall(first.call_id or "", first.name or "", ""))
    return {"id": new_id(face.id_prefix), "type": face.item_type, "status": "in_progress", **fields}


def _copy(value: Any) -> Any:
    """A deep copy of JSON data: an event must show the item as it was, not as it becomes."""
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value
