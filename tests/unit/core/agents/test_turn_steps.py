"""A turn's steps and stream payloads from the loop's events (``core.agents.steps``), and a kept turn as
the model reads it in the turns after it (``core.agents.messages``)."""

from __future__ import annotations

import itertools

from cairn.core.agents.loop import (
    InferenceDone,
    LoopDone,
    StepStarted,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolDone,
    ToolOutput,
    ToolStarted,
)
from cairn.core.agents.messages import turn_messages
from cairn.core.agents.steps import TurnSteps, seconds

SEARCH = ToolCall("call_s", "knowledge_search", '{"query": "codename"}')
WEATHER = ToolCall("call_w", "get_weather", '{"city": "Paris"}')
BROKEN = ToolCall("call_b", "get_weather", "{city: Paris")


def done(status: str, reason: str | None = None, pending: list[ToolCall] | None = None) -> LoopDone:
    return LoopDone(status, reason, pending or [], {}, [])  # type: ignore[arg-type]


def run(steps: TurnSteps, events: list) -> list[dict]:
    return [payload for event in events for payload in steps.on(event)]


def ticking() -> itertools.count:
    return itertools.count(1_800_000_000)


def test_a_step_that_calls_tools_streams_as_llama_stack_and_pauses_for_the_client() -> None:
    clock = ticking()
    steps = TurnSteps("turn", [], 10, lambda: next(clock))
    payloads = run(
        steps,
        [
            StepStarted(0, 1.0),
            TextDelta(0, "Let me look."),
            ToolCallDelta(0, 0, "call_s", "knowledge_search", '{"query": '),
            ToolCallDelta(0, 0, None, None, '"codename"}'),
            ToolCallDelta(0, 1, "call_w", "get_weather", WEATHER.arguments),
            InferenceDone(0, "Let me look.", [SEARCH, WEATHER], "tool_calls", None, 1.0, 2.0),
            ToolStarted(0, SEARCH),
            ToolDone(0, SEARCH, ToolOutput("BLUE HERON", details={"document_ids": ["f"]}), 3.0, 4.0),
        ],
    )
    deltas = [(p["delta"]["type"], p["delta"].get("parse_status")) for p in payloads if "delta" in p]
    assert deltas == [
        ("text", None),
        ("tool_call", "started"),
        ("tool_call", "in_progress"),
        ("tool_call", "in_progress"),
        ("tool_call", "started"),
        ("tool_call", "in_progress"),
        ("tool_call", "succeeded"),
        ("tool_call", "succeeded"),
        ("tool_call", "in_progress"),  # the tool_execution step's call
    ]
    kinds = [(p["event_type"], p["step_type"]) for p in payloads if p["event_type"] != "step_progress"]
    assert kinds == [
        ("step_start", "inference"),
        ("step_complete", "inference"),
        ("step_start", "tool_execution"),
        ("step_complete", "tool_execution"),
    ]
    inference, search = steps.steps
    assert inference["model_response"]["stop_reason"] == "end_of_message"
    assert [c["arguments"] for c in inference["model_response"]["tool_calls"]] == [
        {"query": "codename"},
        {"city": "Paris"},
    ]
    assert search["tool_responses"] == [
        {
            "call_id": "call_s",
            "tool_name": "knowledge_search",
            "content": "BLUE HERON",
            "metadata": {"document_ids": ["f"]},
        }
    ]
    ending = steps.ending(done("requires_action", pending=[WEATHER]))
    assert ending.status == "awaiting_input"
    assert [c["call_id"] for c in ending.output_message["tool_calls"]] == ["call_w"]
    assert ending.output_message["stop_reason"] == "end_of_message"
    pending = ending.pending_step
    assert pending is not None and pending["tool_responses"] == [] and pending["completed_at"] is None
    moments = [seconds(s[key]) for s in steps.steps for key in ("started_at", "completed_at")]
    assert moments == sorted(moments) and seconds(pending["started_at"]) > moments[-1]


def test_a_call_whose_arguments_are_not_an_object_fails_its_parse() -> None:
    steps = TurnSteps("turn", [], 10, lambda: 0.0)
    events = [
        StepStarted(0, 1.0),
        ToolCallDelta(0, 0, "call_b", "get_weather", BROKEN.arguments),
        InferenceDone(0, "", [BROKEN], "tool_calls", None, 1.0, 2.0),
    ]
    last = run(steps, events)[-2]["delta"]
    assert last == {"type": "tool_call", "tool_call": BROKEN.arguments, "parse_status": "failed"}
    assert steps.steps[0]["model_response"]["tool_calls"][0]["arguments"] == BROKEN.arguments


def test_how_the_run_ended_decides_the_output_message() -> None:
    def ended(finish: str, calls: list[ToolCall], end: LoopDone, budget: int = 10) -> dict:
        steps = TurnSteps("turn", [], budget, lambda: 0.0)
        run(steps, [StepStarted(0, 1.0), InferenceDone(0, "It is", calls, finish, None, 1.0, 2.0)])
        ending = steps.ending(end)
        assert ending.status == "completed" and ending.pending_step is None
        return ending.output_message

    assert ended("stop", [], done("completed"))["stop_reason"] == "end_of_turn"
    assert ended("length", [], done("incomplete", "max_output_tokens"))["stop_reason"] == "out_of_tokens"
    at_last = ended("tool_calls", [SEARCH], done("incomplete", "max_steps"))
    assert at_last["stop_reason"] == "end_of_turn" and at_last["tool_calls"]
    # a client call at the turn's last inference step ends the turn: nothing could read its answer
    no_resume = ended("tool_calls", [WEATHER], done("requires_action", pending=[WEATHER]), budget=1)
    assert no_resume["stop_reason"] == "end_of_turn" and no_resume["tool_calls"][0]["call_id"] == "call_w"


def test_a_turn_is_read_back_as_llama_stack_rebuilds_it() -> None:
    call = {
        "call_id": "c1",
        "tool_name": "get_weather",
        "arguments": {"city": "Paris"},
        "arguments_json": None,
    }
    turn = {
        "input_messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather?"}], "context": "in Paris"},
            {"role": "tool", "call_id": "c0", "content": "an earlier answer"},
            {"role": "tool", "call_id": "c1", "content": "kept in the step instead"},
        ],
        "steps": [
            {"step_type": "inference", "model_response": {"content": "", "tool_calls": [call]}},
            {"step_type": "tool_execution", "tool_responses": [{"call_id": "c1", "content": "Sunny"}]},
            {"step_type": "shield_call", "violation": None},
            {"step_type": "inference", "model_response": {"content": "It is sunny.", "tool_calls": []}},
        ],
    }
    assert turn_messages(turn) == [
        {"role": "user", "content": "Weather?"},  # the context served its own turn only
        {"role": "tool", "tool_call_id": "c0", "content": "an earlier answer"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "Sunny"},
        {"role": "assistant", "content": "It is sunny."},
    ]
