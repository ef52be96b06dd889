"""Llama Stack's messages and the agent loop's chat-completions messages, each way.

A session's context is its turns in order, each as Llama Stack rebuilds it (``turn_to_messages``): the
turn's input messages (a ``UserMessage`` without its ``context``, which served that turn only; a
``ToolResponseMessage`` unless a ``tool_execution`` step of the turn holds the same answer), then per
step the model's message (``inference``), its tool answers (``tool_execution``), or the refusal of a
shield that found a violation (``shield_call``). A resumed turn reads itself so too, its user messages'
``context`` kept.

Content is Llama Stack's ``InterleavedContent``: a string, a ``text`` or ``image`` item, or a list of
them. The model reads a text item as text and an image as an ``image_url`` part (its URL, or its base64
data as a data URL)."""

from __future__ import annotations

import json
from typing import Any

from ..errors import InvalidInput
from ..ports.inference import Json
from .loop import ToolCall

IMAGE_SIGNATURES = {"iVBOR": "image/png", "/9j/": "image/jpeg", "R0lGOD": "image/gif", "UklGR": "image/webp"}


def as_text(content: Any) -> str:
    """The text of ``InterleavedContent`` (its images left out), items joined as Llama Stack joins them."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text", "")) if content.get("type") == "text" else ""
    return " ".join(as_text(item) for item in content or ())


def chat_content(content: Any) -> str | list[Json]:
    """``InterleavedContent`` as a chat message's content: text alone, or parts when there is an image."""
    items = content if isinstance(content, list) else [content]
    if not any(isinstance(item, dict) and item.get("type") == "image" for item in items):
        return as_text(content)
    parts: list[Json] = []
    for item in items:
        if isinstance(item, str):
            parts.append({"type": "text", "text": item})
        elif item.get("type") == "text":
            parts.append({"type": "text", "text": item["text"]})
        else:
            parts.append({"type": "image_url", "image_url": {"url": _image_url(item["image"])}})
    return parts


def _image_url(image: Json) -> str:
    if image.get("url"):
        return str(image["url"]["uri"])
    data = image.get("data") or ""
    mime = next((kind for start, kind in IMAGE_SIGNATURES.items() if data.startswith(start)), None)
    if mime is None:
        raise InvalidInput("An image's data is not a PNG, JPEG, GIF or WebP in base64.", param="messages")
    return f"data:{mime};base64,{data}"


def input_message(message: Json) -> Json:
    """A turn's ``UserMessage`` or ``ToolResponseMessage`` as the model reads it."""
    if message["role"] == "tool":
        return {"role": "tool", "tool_call_id": message["call_id"], "content": as_text(message["content"])}
    content = chat_content(message["content"])
    if message.get("context"):
        context = as_text(message["context"])
        content = f"{content}\n\n{context}" if isinstance(content, str) else [*content, _text(context)]
    return {"role": "user", "content": content}


def turn_messages(turn: Json, *, current: bool = False) -> list[Json]:
    """The turn as the model reads it in the turns after it (Llama Stack's ``turn_to_messages``), or,
    ``current``, as it reads it in the turn itself when it is resumed: with its user messages' context."""
    answered = {
        response["call_id"]
        for step in turn["steps"]
        if step["step_type"] == "tool_execution"
        for response in step["tool_responses"]
    }
    messages = [
        input_message(message if current else {**message, "context": None})
        for message in turn["input_messages"]
        if message["role"] != "tool" or message["call_id"] not in answered
    ]
    for step in turn["steps"]:
        messages += step_messages(step)
    return messages


def step_messages(step: Json) -> list[Json]:
    kind = step["step_type"]
    if kind == "inference":
        return [assistant_message(step["model_response"])]
    if kind == "tool_execution":
        return [
            {"role": "tool", "tool_call_id": response["call_id"], "content": as_text(response["content"])}
            for response in step["tool_responses"]
        ]
    if kind == "shield_call" and step.get("violation"):
        return [{"role": "assistant", "content": step["violation"].get("user_message") or ""}]
    return []


def assistant_message(message: Json) -> Json:
    """A ``CompletionMessage`` as the model wrote it."""
    chat: Json = {"role": "assistant", "content": as_text(message["content"]) or None}
    if message.get("tool_calls"):
        chat["tool_calls"] = [
            {
                "id": call["call_id"],
                "type": "function",
                "function": {"name": call["tool_name"], "arguments": _arguments_text(call)},
            }
            for call in message["tool_calls"]
        ]
    return chat


def _arguments_text(call: Json) -> str:
    if call.get("arguments_json") is not None:
        return str(call["arguments_json"])
    arguments = call.get("arguments")
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def tool_call(call: ToolCall) -> Json:
    """A call of the loop as Llama Stack's ``ToolCall``: its arguments parsed, and as written; a call
    whose arguments are not a JSON object keeps them as text."""
    try:
        arguments: Any = call.parsed()
    except ValueError:
        arguments = call.arguments
    return {
        "call_id": call.call_id,
        "tool_name": call.name,
        "arguments": arguments,
        "arguments_json": call.arguments,
    }


def _text(text: str) -> Json:
    return {"type": "text", "text": text}
