"""The agent loop's events as Llama Stack's Agents API shows them: the steps of a turn and the stream
payloads that build them (``AgentTurnResponseEventPayload``), in Llama Stack's order.

An inference step streams ``step_start``, a ``step_progress`` per piece (a ``text`` delta, or a
``tool_call`` delta: ``started`` when a call begins, ``in_progress`` with each piece of its arguments,
then ``succeeded`` with the whole ``ToolCall``, or ``failed`` with its text when its arguments are not a
JSON object), and ``step_complete`` with the ``InferenceStep``, whose ``model_response`` stops
``end_of_turn``, ``end_of_message`` (it calls tools) or ``out_of_tokens``. A call of one of Cairn's
tools is a ``tool_execution`` step of its own: ``step_start``, a ``step_progress`` with the call, and
``step_complete`` with the call and its ``ToolResponse``. Steps carry ``started_at`` and
``completed_at`` (ISO 8601, UTC) in the order they ran. A check of the agent's shields is a
``shield_call`` step (``step_start`` with the ``touchpoint``, then ``step_complete`` with its
``violation``, null when the shields passed).

How the run ended decides the turn's ``output_message`` (``ending``): the last model message; for a
stop for the client's tools, with only those calls, ``end_of_message``, and an in-progress
``tool_execution`` step that the resume completes. Once the turn's last inference step
(``max_infer_iters``) has run, the turn ends there, as Llama Stack ends it: ``end_of_turn``, even with
calls in it, which no client resumes. A turn a shield stopped ends with the violation's refusal."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from ..ports.inference import Json
from .loop import (
    InferenceDone,
    LoopDone,
    LoopEvent,
    StepStarted,
    TextDelta,
    ToolCallDelta,
    ToolDone,
    ToolStarted,
)
from .messages import tool_call


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat()


def seconds(moment: str) -> float:
    return datetime.fromisoformat(moment).timestamp()


def new_id() -> str:
    return str(uuid.uuid4())


def step_start(step_type: str, step_id: str, metadata: Json | None = None) -> Json:
    return {
        "event_type": "step_start",
        "step_type": step_type,
        "step_id": step_id,
        "metadata": metadata or {},
    }


def step_complete(step: Json) -> Json:
    return {
        "event_type": "step_complete",
        "step_type": step["step_type"],
        "step_id": step["step_id"],
        "step_details": step,
    }


@dataclass(frozen=True)
class Ending:
    status: str  # completed or awaiting_input
    output_message: Json
    pending_step: Json | None  # the in-progress tool_execution step, when awaiting input


class TurnSteps:
    """A turn's steps (those it had before this run too, when resumed), kept up to date event by event,
    and the payloads that say so."""

    def __init__(
        self, turn_id: str, steps: list[Json], max_inferences: int, clock: Callable[[], float]
    ) -> None:
        self.turn_id = turn_id
        self.steps = steps
        self.max_inferences = max_inferences
        self._clock = clock
        self._step_id = ""  # of the inference step under way
        self._calls_begun: set[int] = set()
        self._tool_steps: dict[str, str] = {}  # call id -> the id of its tool_execution step
        self._shield_step = ("", 0.0)  # the id and start of the shield_call step under way

    def on(self, event: LoopEvent) -> list[Json]:
        if isinstance(event, StepStarted):
            self._step_id, self._calls_begun = new_id(), set()
            return [step_start("inference", self._step_id)]
        if isinstance(event, TextDelta):
            return [self._progress("inference", self._step_id, {"type": "text", "text": event.text})]
        if isinstance(event, ToolCallDelta):
            return self._call_piece(event)
        if isinstance(event, InferenceDone):
            return self._inference_done(event)
        if isinstance(event, ToolStarted):
            step_id = new_id()
            self._tool_steps[event.call.call_id] = step_id
            delta = {"type": "tool_call", "tool_call": tool_call(event.call), "parse_status": "in_progress"}
            return [step_start("tool_execution", step_id), self._progress("tool_execution", step_id, delta)]
        if isinstance(event, ToolDone):
            return [self._tool_done(event)]
        assert isinstance(event, LoopDone)
        return []

    @property
    def inferences(self) -> int:
        return sum(step["step_type"] == "inference" for step in self.steps)

    def ending(self, done: LoopDone) -> Ending:
        """How the turn ends, its run having ended as ``done`` says."""
        last = next(
            step["model_response"] for step in reversed(self.steps) if step["step_type"] == "inference"
        )
        paused = done.status == "requires_action"
        if paused and self.inferences < self.max_inferences:
            calls = [tool_call(call) for call in done.pending]
            step = {
                "turn_id": self.turn_id,
                "step_id": new_id(),
                "started_at": iso(self._clock()),
                "completed_at": None,
                "step_type": "tool_execution",
                "tool_calls": calls,
                "tool_responses": [],
            }
            message = {**last, "tool_calls": calls, "stop_reason": "end_of_message"}
            return Ending("awaiting_input", message, step)
        if paused or done.reason == "max_steps":
            return Ending("completed", {**last, "stop_reason": "end_of_turn"}, None)
        return Ending("completed", last, None)

    def refused(self, violation: Json) -> Ending:
        """How a turn ends that a shield stopped: with the violation's refusal."""
        message = {
            "role": "assistant",
            "content": violation["user_message"],
            "stop_reason": "end_of_turn",
            "tool_calls": [],
        }
        return Ending("completed", message, None)

    # Shields

    def shield_started(self, touchpoint: str) -> Json:
        """``touchpoint``: ``user-input`` or ``assistant-output``, as Llama Stack names what is checked."""
        self._shield_step = (new_id(), self._clock())
        return step_start("shield_call", self._shield_step[0], {"touchpoint": touchpoint})

    def shield_done(self, violation: Json | None) -> Json:
        step_id, started_at = self._shield_step
        step = {
            "turn_id": self.turn_id,
            "step_id": step_id,
            "started_at": iso(started_at),
            "completed_at": iso(self._clock()),
            "step_type": "shield_call",
            "violation": violation,
        }
        self.steps.append(step)
        return step_complete(step)

    # Inference

    def _call_piece(self, event: ToolCallDelta) -> list[Json]:
        payloads = []
        if event.index not in self._calls_begun:
            self._calls_begun.add(event.index)
            delta = {"type": "tool_call", "tool_call": "", "parse_status": "started"}
            payloads.append(self._progress("inference", self._step_id, delta))
        if event.arguments:
            delta = {"type": "tool_call", "tool_call": event.arguments, "parse_status": "in_progress"}
            payloads.append(self._progress("inference", self._step_id, delta))
        return payloads

    def _inference_done(self, event: InferenceDone) -> list[Json]:
        payloads = []
        calls = []
        for call in event.calls:
            shown = tool_call(call)
            parsed = isinstance(shown["arguments"], dict)
            delta = {
                "type": "tool_call",
                "tool_call": shown if parsed else call.arguments,
                "parse_status": "succeeded" if parsed else "failed",
            }
            payloads.append(self._progress("inference", self._step_id, delta))
            calls.append(shown)
        if event.finish_reason == "length":
            stop_reason = "out_of_tokens"
        else:
            stop_reason = "end_of_message" if calls else "end_of_turn"
        step = {
            "turn_id": self.turn_id,
            "step_id": self._step_id,
            "started_at": iso(event.started_at),
            "completed_at": iso(event.completed_at),
            "step_type": "inference",
            "model_response": {
                "role": "assistant",
                "content": event.text,
                "stop_reason": stop_reason,
                "tool_calls": calls,
            },
        }
        self.steps.append(step)
        payloads.append(step_complete(step))
        return payloads

    # Cairn's tools

    def _tool_done(self, event: ToolDone) -> Json:
        step_id = self._tool_steps.pop(event.call.call_id)
        output = event.output
        response = {
            "call_id": event.call.call_id,
            "tool_name": event.call.name,
            "content": output.error or output.text,
            "metadata": output.details if isinstance(output.details, dict) else None,
        }
        step = {
            "turn_id": self.turn_id,
            "step_id": step_id,
            "started_at": iso(event.started_at),
            "completed_at": iso(event.completed_at),
            "step_type": "tool_execution",
            "tool_calls": [tool_call(event.call)],
            "tool_responses": [response],
        }
        self.steps.append(step)
        return step_complete(step)

    # Payloads

    @staticmethod
    def _progress(step_type: str, step_id: str, delta: Json) -> Json:
        return {"event_type": "step_progress", "step_type": step_type, "step_id": step_id, "delta": delta}
