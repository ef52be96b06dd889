"""An agent's configuration (Llama Stack's ``AgentConfig``, as the face checked and completed it) as the
agent loop takes it: its sampling, its client tools as functions, its ``tool_choice``; and the settings
this server cannot honour, refused by name.

- ``sampling_params``: ``greedy`` is temperature 0; ``top_p`` its temperature and ``top_p``; ``top_k``
  its ``top_k``; ``max_tokens`` (0: none) bounds each inference step, as in Llama Stack;
  ``repetition_penalty`` is llama.cpp's ``repeat_penalty``; ``stop`` as given.
- ``response_format``: ``json_schema`` constrains every answer to the schema; ``grammar`` every answer
  to a GBNF grammar, llama.cpp's ``grammar``: its ``bnf`` maps each rule's name to its body (``root``
  where answers start), one ``name ::= body`` line each. A remote server gets the same field, which
  llama.cpp's server honours and others may ignore. A forced tool call is constrained by its own
  schema instead (``core.inference.tool_calls``).
- ``client_tools``: each a function whose parameters are the tool's (Llama Stack's list of parameters,
  or a JSON schema as ``input_schema``); a call of one ends the turn's run for the client to answer.
- ``tool_config.tool_choice``: ``auto``, ``none``, ``required``, or the name of one tool, which the first
  inference step of the turn must call; ``system_message_behavior`` ``replace`` is refused: the tools
  reach the model as chat-completions functions (D24), not in a system prompt of Llama Stack's that
  the instructions could replace. ``tool_prompt_format`` is accepted and changes nothing, for the same
  reason.
- ``input_shields`` and ``output_shields``: the tenant's shields (``core.shields``), checked by the
  service, not here: an unknown one is refused when the agent is created and when a turn starts. The
  input shields check a new turn's messages before its first inference step, the output shields its
  final answer; a violation ends the turn with a ``shield_call`` step and the refusal as its answer.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import InvalidInput
from ..ports.inference import Json

PARAMETER_TYPES = {
    "str": "string",
    "string": "string",
    "int": "integer",
    "integer": "integer",
    "float": "number",
    "number": "number",
    "bool": "boolean",
    "boolean": "boolean",
    "list": "array",
    "array": "array",
    "dict": "object",
    "object": "object",
}
"""Llama Stack's ``parameter_type`` (a Python type's name, from ``@client_tool``, or a JSON type) as a
JSON schema type; any other leaves the parameter's type open."""


def check_tool_config(tool_config: Json, param: str) -> None:
    if tool_config.get("system_message_behavior") == "replace":
        raise InvalidInput(
            "system_message_behavior `replace` is not supported here: tools reach the model as "
            "chat-completions functions, not in a system prompt to replace.",
            param=f"{param}.system_message_behavior",
        )


def sampling(config: Json) -> Json:
    params = config.get("sampling_params") or {}
    strategy = params.get("strategy") or {"type": "greedy"}
    chosen: Json = {}
    if strategy["type"] == "greedy":
        chosen["temperature"] = 0.0
    elif strategy["type"] == "top_p":
        chosen.update(
            {key: strategy[key] for key in ("temperature", "top_p") if strategy.get(key) is not None}
        )
    else:
        chosen["top_k"] = strategy["top_k"]
    if params.get("max_tokens"):
        chosen["max_tokens"] = params["max_tokens"]
    if params.get("repetition_penalty") not in (None, 1.0):
        chosen["repeat_penalty"] = params["repetition_penalty"]
    if params.get("stop"):
        chosen["stop"] = params["stop"]
    response_format = config.get("response_format")
    if response_format is not None and response_format["type"] == "grammar":
        chosen["grammar"] = gbnf(response_format["bnf"])
    elif response_format is not None:
        schema = {"name": "response", "schema": response_format["json_schema"]}
        chosen["response_format"] = {"type": "json_schema", "json_schema": schema}
    return chosen


def gbnf(rules: Json) -> str:
    """The grammar's rules (name to body) as GBNF text, one ``name ::= body`` line each."""
    return "\n".join(f"{name} ::= {body}" for name, body in rules.items())


def client_functions(tools: Iterable[Json], param: str) -> list[Json]:
    functions = []
    for at, tool in enumerate(tools):
        function: Json = {"name": tool["name"], "parameters": _parameters(tool, f"{param}[{at}]")}
        if tool.get("description"):
            function["description"] = tool["description"]
        functions.append({"type": "function", "function": function})
    return functions


def _parameters(tool: Json, param: str) -> Json:
    if tool.get("input_schema") is not None:
        if tool.get("parameters"):
            raise InvalidInput("Give a tool's parameters or its input_schema, not both.", param=param)
        return dict(tool["input_schema"])
    properties: Json = {}
    for parameter in tool.get("parameters") or ():
        schema: Json = {"description": parameter["description"]}
        kind = PARAMETER_TYPES.get(parameter["parameter_type"].lower())
        if kind is not None:
            schema["type"] = kind
        for key in ("default", "items", "title"):
            if parameter.get(key) is not None:
                schema[key] = parameter[key]
        properties[parameter["name"]] = schema
    required = [p["name"] for p in tool.get("parameters") or () if p.get("required", True)]
    return {"type": "object", "properties": properties, "required": required}


def tool_choice(choice: str | None, names: Iterable[str], param: str) -> str | Json:
    if choice in (None, "auto", "none", "required"):
        return choice or "auto"
    if choice not in set(names):
        raise InvalidInput(f"tool_choice `{choice}` names no tool of this agent.", param=param)
    return {"type": "function", "function": {"name": choice}}
