"""What a response or an item shows of what it keeps: ``include`` asks for the parts shown only on
request. A response keeps its ``file_search_call`` results and the logprobs the model gave (asked for
when the response was created with ``message.output_text.logprobs``); a create, a ``GET`` or an item
list shows them when its own ``include`` names them."""

from __future__ import annotations

from collections.abc import Collection

from ..ports.inference import Json

RESULTS = "file_search_call.results"
LOGPROBS = "message.output_text.logprobs"


def shown_response(response: Json, include: Collection[str]) -> Json:
    return {**response, "output": [shown_item(item, include) for item in response["output"]]}


def shown_item(item: Json, include: Collection[str]) -> Json:
    kind = item.get("type")
    if kind == "file_search_call" and RESULTS not in include:
        return {**item, "results": None}
    if kind == "message" and LOGPROBS not in include and isinstance(item.get("content"), list):
        parts = [{**part, "logprobs": []} if part.get("logprobs") else part for part in item["content"]]
        return {**item, "content": parts}
    return item
