"""The items of OpenAI's Responses API (``input`` of a response, ``items`` of a conversation), checked and
normalised into the items Cairn stores, as the ``openai`` client's types define them.

An ``input`` is a string (one user message) or a list of items. Every stored item has a ``type`` and
an ``id`` (the client's, if it gave one; else a new one: a prefix of its type and 48 hex digits):

- a message (``{"role", "content"}``, ``"type": "message"`` optional; roles ``user``, ``system``,
  ``developer``, ``assistant``) becomes ``{"type": "message", "id": "msg_…", "role", "status",
  "content": [parts]}``; string content becomes one ``input_text`` part (an assistant's: one
  ``output_text`` with ``annotations`` and ``logprobs``). An assistant's parts are ``output_text`` and
  ``refusal``; the others' ``input_text``, ``input_image`` (``image_url`` or ``file_id``; ``detail``,
  ``auto`` by default) and ``input_file`` (``file_id``, ``file_url``, or ``file_data`` with its
  ``filename``);
- ``function_call`` (``call_id``, ``name``, ``arguments``), ``function_call_output`` (``call_id``,
  ``output``: a string or input parts) and ``mcp_approval_response`` (``approval_request_id``,
  ``approve``, ``reason``) keep the fields their type defines, and a ``status`` where it has one;
- an ``item_reference`` (``{"type": "item_reference", "id"}``, or ``{"id"}`` alone) is kept as it is,
  for the caller to resolve;
- the output items a client may send back (``reasoning``, ``file_search_call``, ``mcp_call``,
  ``mcp_list_tools``, ``mcp_approval_request``) are kept with all their fields.

Of the normalised types, fields the type does not define are dropped, so a client that sends back the
items it read (with every optional field null, as a typed client dumps them) is understood. Anything
else is ``InvalidInput`` naming the path of the offending part (``input[2].content[0].type``).
Everything is bounded before it is read: at most ``MAX_ITEMS`` items (and parts of one item), text of
at most ``MAX_TEXT`` characters, ids of at most ``MAX_ID_CHARS``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from typing import Any

from ..errors import InvalidInput
from ..ports.inference import Json

MAX_ITEMS = 4096
MAX_TEXT = 4_000_000
MAX_ID_CHARS = 256
ID = re.compile(rf"^[A-Za-z0-9_-]{{1,{MAX_ID_CHARS}}}$")

ROLES = ("user", "system", "developer", "assistant")
STATUSES = ("in_progress", "completed", "incomplete")
IMAGE_DETAILS = ("auto", "low", "high", "original")
INPUT_PARTS = ("input_text", "input_image", "input_file")
OUTPUT_PARTS = ("output_text", "refusal")
PREFIXES = {
    "message": "msg_",
    "function_call": "fc_",
    "function_call_output": "fco_",
    "mcp_approval_response": "mcpa_",
    "reasoning": "rs_",
    "file_search_call": "fs_",
    "mcp_call": "mcp_",
    "mcp_list_tools": "mcpl_",
    "mcp_approval_request": "mcpr_",
}
KEPT: dict[str, dict[str, type]] = {
    "reasoning": {"summary": list},
    "file_search_call": {"queries": list, "status": str},
    "mcp_call": {"name": str, "arguments": str, "server_label": str},
    "mcp_list_tools": {"server_label": str, "tools": list},
    "mcp_approval_request": {"name": str, "arguments": str, "server_label": str},
}
"""The output items kept with all their fields, and the fields each must have."""


def new_id(prefix: str) -> str:
    """``prefix`` and 48 random hex digits: ``msg_…``, ``conv_…``."""
    return prefix + secrets.token_hex(24)


def input_items(value: object, *, param: str = "input") -> list[Json]:
    """``value`` (a string, or a list of items) as the items to store, each with its ``id`` and ``type``."""
    if isinstance(value, str):
        _bounded_text(value, param)
        return [_message({"role": "user", "content": value}, param)]
    if not isinstance(value, list):
        raise InvalidInput(f"Expected {param} to be a string or a list of items.", param=param)
    _bounded_list(value, param)
    return [_item(raw, f"{param}[{index}]") for index, raw in enumerate(value)]


def _item(raw: object, path: str) -> Json:
    if not isinstance(raw, dict):
        raise InvalidInput("Expected an item object.", param=path)
    kind = raw.get("type")
    if kind is None and "role" in raw:
        kind = "message"
    elif kind is None and "id" in raw:
        kind = "item_reference"  # OpenAI's item reference may leave out its type
    if isinstance(kind, str) and kind in KEPT:
        return _kept(kind, raw, path)
    normalise = _ITEMS.get(kind) if isinstance(kind, str) else None
    if normalise is None:
        raise InvalidInput(f"Expected type to be one of {', '.join([*_ITEMS, *KEPT])}.", param=f"{path}.type")
    return normalise(raw, path)


def _message(raw: dict[str, Any], path: str) -> Json:
    role = raw.get("role")
    if role not in ROLES:
        raise InvalidInput(f"Expected role to be one of {', '.join(ROLES)}.", param=f"{path}.role")
    allowed = OUTPUT_PARTS if role == "assistant" else INPUT_PARTS
    content = raw.get("content")
    if isinstance(content, str):
        _bounded_text(content, f"{path}.content")
        parts = [_part({"type": allowed[0], "text": content}, allowed, f"{path}.content")]
    elif isinstance(content, list):
        parts = _parts(content, allowed, f"{path}.content")
    else:
        raise InvalidInput("Expected content to be a string or a list of parts.", param=f"{path}.content")
    return {
        "type": "message",
        "id": _id(raw, "message", path),
        "role": role,
        "status": _status(raw, path),
        "content": parts,
    }


def _function_call(raw: dict[str, Any], path: str) -> Json:
    return {
        "type": "function_call",
        "id": _id(raw, "function_call", path),
        "call_id": _string(raw, "call_id", path, MAX_ID_CHARS),
        "name": _string(raw, "name", path, MAX_ID_CHARS),
        "arguments": _string(raw, "arguments", path),
        "status": _status(raw, path),
    }


def _function_call_output(raw: dict[str, Any], path: str) -> Json:
    output = raw.get("output")
    if isinstance(output, str):
        _bounded_text(output, f"{path}.output")
    elif isinstance(output, list):
        output = _parts(output, INPUT_PARTS, f"{path}.output")
    else:
        raise InvalidInput("Expected output to be a string or a list of parts.", param=f"{path}.output")
    return {
        "type": "function_call_output",
        "id": _id(raw, "function_call_output", path),
        "call_id": _string(raw, "call_id", path, MAX_ID_CHARS),
        "output": output,
        "status": _status(raw, path),
    }


def _approval_response(raw: dict[str, Any], path: str) -> Json:
    approve = raw.get("approve")
    if not isinstance(approve, bool):
        raise InvalidInput("Expected approve to be a boolean.", param=f"{path}.approve")
    reason = raw.get("reason")
    return {
        "type": "mcp_approval_response",
        "id": _id(raw, "mcp_approval_response", path),
        "approval_request_id": _string(raw, "approval_request_id", path, MAX_ID_CHARS),
        "approve": approve,
        "reason": None if reason is None else _string(raw, "reason", path, min_chars=0),
    }


def _item_reference(raw: dict[str, Any], path: str) -> Json:
    if raw.get("id") is None:
        raise InvalidInput("An item reference needs the id of the item.", param=f"{path}.id")
    return {"type": "item_reference", "id": _id(raw, "item_reference", path)}


def _kept(kind: str, raw: dict[str, Any], path: str) -> Json:
    for field, shape in KEPT[kind].items():
        if not isinstance(raw.get(field), shape):
            raise InvalidInput(f"A {kind} item needs {field}.", param=f"{path}.{field}")
    return {**raw, "id": _id(raw, kind, path)}


_ITEMS: dict[str, Callable[[dict[str, Any], str], Json]] = {
    "message": _message,
    "function_call": _function_call,
    "function_call_output": _function_call_output,
    "mcp_approval_response": _approval_response,
    "item_reference": _item_reference,
}


# Content parts


def _parts(raw: list[Any], allowed: tuple[str, ...], path: str) -> list[Json]:
    _bounded_list(raw, path)
    return [_part(part, allowed, f"{path}[{index}]") for index, part in enumerate(raw)]


def _part(raw: object, allowed: tuple[str, ...], path: str) -> Json:
    if not isinstance(raw, dict):
        raise InvalidInput("Expected a content part object.", param=path)
    kind = raw.get("type")
    if kind not in allowed:
        raise InvalidInput(f"Expected type to be one of {', '.join(allowed)}.", param=f"{path}.type")
    return _PARTS[kind](raw, path)


def _input_text(raw: dict[str, Any], path: str) -> Json:
    return {"type": "input_text", "text": _string(raw, "text", path, min_chars=0)}


def _input_image(raw: dict[str, Any], path: str) -> Json:
    image = {"type": "input_image", "detail": raw.get("detail") or "auto"}
    if image["detail"] not in IMAGE_DETAILS:
        raise InvalidInput(
            f"Expected detail to be one of {', '.join(IMAGE_DETAILS)}.", param=f"{path}.detail"
        )
    image.update(_present(raw, path, image_url=MAX_TEXT, file_id=MAX_ID_CHARS))
    if len(image) == 2:
        raise InvalidInput("An input_image needs image_url or file_id.", param=f"{path}.image_url")
    return image


def _input_file(raw: dict[str, Any], path: str) -> Json:
    found = _present(raw, path, file_id=MAX_ID_CHARS, file_url=MAX_TEXT, file_data=MAX_TEXT, filename=1024)
    if "file_data" in found and "filename" not in found:
        raise InvalidInput("An input_file with file_data needs its filename.", param=f"{path}.filename")
    if not {"file_id", "file_url", "file_data"} & set(found):
        raise InvalidInput("An input_file needs file_id, file_url or file_data.", param=f"{path}.file_id")
    return {"type": "input_file", **found}


def _output_text(raw: dict[str, Any], path: str) -> Json:
    text = _string(raw, "text", path, min_chars=0)
    lists = {}
    for field in ("annotations", "logprobs"):
        value = raw.get(field)
        if value is None:
            value = []
        if not isinstance(value, list) or not all(isinstance(entry, dict) for entry in value):
            raise InvalidInput(f"Expected {field} to be a list of objects.", param=f"{path}.{field}")
        _bounded_list(value, f"{path}.{field}")
        lists[field] = value
    return {"type": "output_text", "text": text, **lists}


def _refusal(raw: dict[str, Any], path: str) -> Json:
    return {"type": "refusal", "refusal": _string(raw, "refusal", path, min_chars=0)}


_PARTS: dict[str, Callable[[dict[str, Any], str], Json]] = {
    "input_text": _input_text,
    "input_image": _input_image,
    "input_file": _input_file,
    "output_text": _output_text,
    "refusal": _refusal,
}


# Fields


def _id(raw: dict[str, Any], kind: str, path: str) -> str:
    given = raw.get("id")
    if given is None:
        return new_id(PREFIXES[kind])
    if not isinstance(given, str) or not ID.match(given):
        raise InvalidInput(
            f"Expected id to be 1 to {MAX_ID_CHARS} letters, digits, '_' or '-'.", param=f"{path}.id"
        )
    return given


def _status(raw: dict[str, Any], path: str) -> str:
    status = raw.get("status")
    if status is None:
        return "completed"
    if status not in STATUSES:
        raise InvalidInput(f"Expected status to be one of {', '.join(STATUSES)}.", param=f"{path}.status")
    return status  # type: ignore[no-any-return]


def _string(
    raw: dict[str, Any], field: str, path: str, max_chars: int = MAX_TEXT, *, min_chars: int = 1
) -> str:
    value = raw.get(field)
    if not isinstance(value, str) or not min_chars <= len(value) <= max_chars:
        raise InvalidInput(
            f"Expected {field} to be a string of {min_chars} to {max_chars:,} characters.",
            param=f"{path}.{field}",
        )
    return value


def _present(raw: dict[str, Any], path: str, **max_chars: int) -> dict[str, str]:
    """The fields of ``max_chars`` that ``raw`` gives (not null), each a string within its bound."""
    return {
        field: _string(raw, field, path, bound)
        for field, bound in max_chars.items()
        if raw.get(field) is not None
    }


def _bounded_text(text: str, param: str) -> None:
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"Text may be at most {MAX_TEXT:,} characters.", param=param)


def _bounded_list(values: list[Any], param: str) -> None:
    if len(values) > MAX_ITEMS:
        raise InvalidInput(f"At most {MAX_ITEMS} entries.", param=param)
