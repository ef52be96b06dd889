"""A file search answer as the Responses renderer streams it: the markers the model writes leave the
text (and their tokens' logprobs go with them), each cited file is a ``file_citation`` annotation
announced before ``output_text.done``, the response keeps the search results, and the events show
them only when ``include`` asks."""

from __future__ import annotations

from cairn.core.agents.loop import (
    InferenceDone,
    LoopDone,
    StepStarted,
    TextDelta,
    ToolCall,
    ToolDone,
    ToolOutput,
    ToolStarted,
)
from cairn.core.responses.file_search import file_search_face
from cairn.core.responses.include import RESULTS
from cairn.core.responses.render import ResponseRenderer

SEARCH = ToolCall("call_s", "file_search", '{"query": "codename"}')
HIT = {"file_id": "file-heron", "filename": "facts.txt", "score": 0.9, "attributes": {}, "text": "BLUE HERON"}
USAGE = {"input_tokens": 5, "output_tokens": 5, "total_tokens": 10}


def logprob(token: str) -> dict:
    return {"token": token, "logprob": -0.1, "bytes": list(token.encode()), "top_logprobs": []}


def answered(include: tuple[str, ...] = ()) -> tuple[ResponseRenderer, list[dict]]:
    response = {"id": "resp_1", "status": "in_progress", "output": []}
    renderer = ResponseRenderer(response, {"file_search": file_search_face()}, include=include)
    pieces = ["It is BLUE", " <|", "file-heron", "|>", ". Bye"]
    loop = [
        StepStarted(0, 1.0),
        InferenceDone(0, "", [SEARCH], "tool_calls", None, 1.0, 2.0),
        ToolStarted(0, SEARCH),
        ToolDone(0, SEARCH, ToolOutput("...", details=[HIT]), 2.0, 3.0),
        StepStarted(1, 3.0),
        *(TextDelta(1, piece, [logprob(piece)]) for piece in pieces),
        InferenceDone(1, "".join(pieces), [], "stop", None, 3.0, 4.0),
        LoopDone("completed", None, [], USAGE, []),
    ]
    return renderer, [event for loop_event in loop for event in renderer.on(loop_event)]


def test_markers_leave_the_stream_and_are_annotations_before_the_text_is_done():
    renderer, events = answered()
    kinds = [event["type"] for event in events]
    assert kinds[kinds.index("response.content_part.added") :] == [
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.annotation.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [event for event in events if event["type"] == "response.output_text.delta"]
    assert [event["delta"] for event in deltas] == ["It is BLUE", ". Bye"]
    assert [event["logprobs"] for event in deltas] == [[logprob("It is BLUE")], [logprob(". Bye")]]
    added = events[kinds.index("response.output_text.annotation.added")]
    message = renderer.response["output"][-1]
    citation = {"type": "file_citation", "index": 10, "file_id": "file-heron", "filename": "facts.txt"}
    assert added["annotation"] == citation and added["annotation_index"] == 0
    assert (added["item_id"], added["output_index"], added["content_index"]) == (message["id"], 1, 0)
    part = message["content"][0]
    assert part["text"] == "It is BLUE. Bye" and part["annotations"] == [citation]
    assert events[-1]["response"]["output"][-1]["content"][0] == {**part, "logprobs": []}  # not asked


def test_the_response_keeps_the_results_and_shows_them_when_asked():
    renderer, events = answered()
    assert renderer.response["output"][0]["results"] == [HIT]
    assert renderer.shown()["output"][0]["results"] is None
    assert events[-1]["response"]["output"][0]["results"] is None
    renderer, events = answered((RESULTS,))
    assert renderer.shown()["output"][0]["results"] == [HIT]
    assert events[-1]["response"]["output"][0]["results"] == [HIT]
