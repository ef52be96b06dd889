"""Tool calls on a runtime that does not keep OpenAI's tool contract itself (``native_tool_choice``
false: the embedded llama.cpp models). ``plan`` rewrites the request; ``ToolCallReader`` turns the text
the model writes back into a tool call.

- ``none``, or no tools: the model is not told of any tool and never calls one.
- ``required`` or a named function: generation is constrained by a JSON schema whose only values are a
  call ``{"name": <a declared tool>, "arguments": <its parameters>}`` (the named tool, when named), so
  the answer is one valid call, whatever ``response_format`` or ``grammar`` the request gave. Only a
  ``length`` stop can cut it short: then there is no call.
- ``auto``: the model writes freely. An answer that is a JSON call naming a declared tool, bare, fenced
  (```json …```) or tagged (``<tool_call>…</tool_call>``), becomes a tool call; any other answer is
  text, streamed as soon as it can no longer be the start of a call.

The tools are described to the model in the system message. Earlier calls and their results are written
back as text that any chat template renders (an assistant's ``content: null`` included)."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from ..ports.inference import Json

Mode = Literal["none", "auto", "forced"]

_INSTRUCTIONS = (
    "You can call functions. To call one, answer with only a JSON object of the form "
    '{"name": <function name>, "arguments": <object of arguments>} and nothing else. '
    "Otherwise answer the user normally. The functions:\n"
)
_OPENINGS = ("{", "```", "<tool_call>")
_TAGGED = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
_FENCED = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class ToolPlan:
    mode: Mode
    tools: dict[str, Json]  # name -> the declared function (name, description, parameters)


def plan(body: Json) -> tuple[Json, ToolPlan]:
    """``body`` as a runtime without tool support gets it, and what to read its answer as. ``body``
    is a validated chat request: a named ``tool_choice`` names a declared function."""
    body = dict(body)
    declared = {
        tool["function"]["name"]: tool["function"]
        for tool in body.pop("tools", None) or ()
        if tool.get("type") == "function"
    }
    choice = body.pop("tool_choice", None) or ("auto" if declared else "none")
    body.pop("parallel_tool_calls", None)
    messages = _renderable(body["messages"])
    if choice == "none" or not declared:
        body["messages"] = messages
        return body, ToolPlan("none", {})
    offered = declared
    if isinstance(choice, dict):
        name = choice["function"]["name"]
        offered = {name: declared[name]}
    body["messages"] = _with_instructions(messages, offered)
    if choice == "auto":
        return body, ToolPlan("auto", offered)
    body.pop("grammar", None)  # llama.cpp would answer nothing under both
    body["response_format"] = {
        "type": "json_schema",
        "json_schema": {"name": "tool_call", "strict": True, "schema": _call_schema(offered)},
    }
    return body, ToolPlan("forced", offered)


def _call_schema(tools: dict[str, Json]) -> Json:
    calls = [
        {
            "type": "object",
            "properties": {
                "name": {"const": name},
                "arguments": function.get("parameters") or {"type": "object", "properties": {}},
            },
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for name, function in tools.items()
    ]
    return calls[0] if len(calls) == 1 else {"anyOf": calls}


def _with_instructions(messages: list[Json], tools: dict[str, Json]) -> list[Json]:
    described = json.dumps(
        [
            {key: function[key] for key in ("name", "description", "parameters") if key in function}
            for function in tools.values()
        ],
        ensure_ascii=False,
    )
    text = _INSTRUCTIONS + described
    if messages and messages[0]["role"] == "system":
        first = messages[0]
        return [{**first, "content": f"{_text(first.get('content'))}\n\n{text}"}, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


def _renderable(messages: list[Json]) -> list[Json]:
    """Messages any chat template renders: ``developer`` as ``system``, assistant tool calls as the
    JSON the model would have written, tool results as the user's words."""
    names: dict[str, str] = {}
    rendered = []
    for message in messages:
        role = message["role"]
        if role == "developer":
            role = "system"
        if role == "assistant" and message.get("tool_calls"):
            written = [_text(message.get("content"))]
            for call in message["tool_calls"]:
                function = call["function"]
                names[call["id"]] = function["name"]
                written.append(json.dumps({"name": function["name"], "arguments": _arguments(function)}))
            rendered.append({"role": "assistant", "content": "\n".join(part for part in written if part)})
        elif role == "tool":
            name = names.get(message.get("tool_call_id", ""), "the function")
            rendered.append({"role": "user", "content": f"{name} returned: {_text(message.get('content'))}"})
        else:
            content = message.get("content")
            rendered.append({"role": role, "content": "" if content is None else content})
    return rendered


def _arguments(function: Json) -> Any:
    try:
        return json.loads(function.get("arguments") or "{}")
    except ValueError:
        return function.get("arguments")


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if part.get("type") == "text")


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


class ToolCallReader:
    """Reads a model's text as it streams: ``feed`` returns the text to pass on now, ``finish`` the
    rest and the tool call the whole answer made, if any."""

    def __init__(self, plan: ToolPlan) -> None:
        self._plan = plan
        self._held = ""
        self._passing = plan.mode == "none"

    def feed(self, text: str) -> str:
        if self._passing:
            return text
        self._held += text
        if self._plan.mode == "auto" and not _may_open_call(self._held):
            self._passing = True
            held, self._held = self._held, ""
            return held
        return ""

    def finish(self) -> tuple[str, Json | None]:
        held, self._held = self._held, ""
        if self._passing:
            return held, None
        call = _call_in(held, self._plan.tools)
        if call is not None:
            return "", call
        return ("" if self._plan.mode == "forced" else held), None


def _may_open_call(text: str) -> bool:
    start = text.lstrip()
    return not start or any(start.startswith(o) or o.startswith(start) for o in _OPENINGS)


def _call_in(text: str, tools: dict[str, Json]) -> Json | None:
    text = text.strip()
    for pattern in (_TAGGED, _FENCED):
        match = pattern.fullmatch(text)
        if match:
            text = match[1].strip()
            break
    try:
        written = json.loads(text)
    except ValueError:
        return None
    if not isinstance(written, dict) or written.get("name") not in tools:
        return None
    arguments = written.get("arguments", written.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return {
        "id": new_call_id(),
        "type": "function",
        "function": {"name": written["name"], "arguments": json.dumps(arguments, ensure_ascii=False)},
    }
