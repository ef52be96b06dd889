"""A response's context, as the model reads it: the Responses API's items (the chain's and the
conversation's, then the new input) turned into chat-completions messages for the agent loop.

- ``instructions`` become the first message (``system``), and only the request's own: they are not
  carried over from a previous response.
- A message's ``input_text`` and ``output_text`` parts are its text; an ``input_image`` is an image part
  (a ``file_id`` read from the tenant's objects as a data URL); an ``input_file`` is the file's text,
  extracted as file search extracts it (a PDF's text, a DOCX's, …), under a line naming the file.
- ``function_call`` items join the assistant message before them as its tool calls;
  ``function_call_output`` items become ``tool`` messages. A call of one of Cairn's tools
  (``file_search_call``, ``mcp_call``) becomes such a pair too, its results (or its error) the tool
  message's text.
- An ``mcp_approval_request`` that the items answer is the assistant's call; its answer is the
  ``mcp_call`` that ran once approved (``approval_request_id``), or, refused, a tool message saying so.
  One not answered (yet) is left out, as are the items a model cannot read (``reasoning``, MCP listings).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable

from ..errors import InvalidInput
from ..ports.inference import Json
from ..records import ObjectRecord
from ..vectors.extract import extract_text
from .mcp import mcp_call_answer

MAX_ATTACHMENT_BYTES = 32 << 20
FileBytes = Callable[[str], Awaitable[tuple[ObjectRecord, bytes]]]
"""Reads one of the tenant's objects by id, bounded by ``MAX_ATTACHMENT_BYTES``."""


async def messages_for(items: list[Json], instructions: str | None, read_file: FileBytes) -> list[Json]:
    messages: list[Json] = [{"role": "system", "content": instructions}] if instructions else []
    answered = {item["approval_request_id"] for item in items if item.get("type") == "mcp_approval_response"}
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(await _message(item, read_file))
        elif kind == "function_call":
            _call(messages, item["call_id"], item["name"], item.get("arguments") or "{}")
        elif kind == "function_call_output":
            messages.append(
                {"role": "tool", "tool_call_id": item["call_id"], "content": _output(item["output"])}
            )
        elif kind == "file_search_call":
            call_id = item["id"]
            _call(messages, call_id, "file_search", json.dumps({"queries": item.get("queries") or []}))
            messages.append(
                {"role": "tool", "tool_call_id": call_id, "content": json.dumps(item.get("results"))}
            )
        elif kind == "mcp_call":
            call_id = item.get("approval_request_id") or item["id"]
            if call_id == item["id"]:  # an approved call's call is its approval request
                _call(messages, call_id, item["name"], item["arguments"] or "{}")
            messages.append({"role": "tool", "tool_call_id": call_id, "content": mcp_call_answer(item)})
        elif kind == "mcp_approval_request" and item["id"] in answered:
            _call(messages, item["id"], item["name"], item["arguments"] or "{}")
        elif kind == "mcp_approval_response" and not item["approve"]:
            reason = f" The reason given: {item['reason']}" if item.get("reason") else ""
            refusal = f"The user did not approve this call: it did not run.{reason}"
            messages.append({"role": "tool", "tool_call_id": item["approval_request_id"], "content": refusal})
    return messages


def _call(messages: list[Json], call_id: str, name: str, arguments: str) -> None:
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant":  # no tool message came after it yet
        last.setdefault("tool_calls", []).append(call)
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _output(output: object) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return "".join(part.get("text", "") for part in output if isinstance(part, dict))
    return json.dumps(output)


async def _message(item: Json, read_file: FileBytes) -> Json:
    role = item["role"]
    parts: list[Json] = []
    for part in item.get("content") or ():
        kind = part.get("type")
        if kind in ("input_text", "output_text"):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "refusal":
            parts.append({"type": "text", "text": part["refusal"]})
        elif kind == "input_image":
            parts.append({"type": "image_url", "image_url": {"url": await _image_url(part, read_file)}})
        elif kind == "input_file":
            parts.append({"type": "text", "text": await _file_text(part, read_file)})
    if role == "assistant" or all(part["type"] == "text" for part in parts):
        return {"role": role, "content": "".join(part["text"] for part in parts if part["type"] == "text")}
    return {"role": role, "content": parts}


async def _image_url(part: Json, read_file: FileBytes) -> str:
    if part.get("image_url"):
        return str(part["image_url"])
    record, data = await read_file(part["file_id"])
    mime = record.mime_type or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


async def _file_text(part: Json, read_file: FileBytes) -> str:
    if part.get("file_id"):
        record, data = await read_file(part["file_id"])
        filename, mime = record.filename, record.mime_type
    elif part.get("file_data"):
        filename, mime = part.get("filename") or "file", None
        data = _inline(part["file_data"])
    else:
        raise InvalidInput(
            "An input_file by URL cannot be read by this server: send file_id or file_data.", param="input"
        )
    extracted = await asyncio.to_thread(extract_text, data, filename, mime, max_chars=MAX_ATTACHMENT_BYTES)
    return f"The file {filename}:\n{extracted.text}"


def _inline(data: str) -> bytes:
    """``file_data``: a data URL or bare base64."""
    payload = data.split(",", 1)[1] if data.startswith("data:") else data
    try:
        decoded = base64.b64decode(payload, validate=True)
    except ValueError:
        raise InvalidInput("file_data is not base64.", param="input") from None
    if len(decoded) > MAX_ATTACHMENT_BYTES:
        raise InvalidInput(f"file_data may hold at most {MAX_ATTACHMENT_BYTES >> 20} MiB.", param="input")
    return decoded
