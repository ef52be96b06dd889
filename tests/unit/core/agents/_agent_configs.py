"""An agent's configuration as the Agents face completes it, and a user message, for the tests of the
Agents service on the embedded SmolLM2 (greedy)."""

from __future__ import annotations

CHAT = "llama-cpp/SmolLM2-135M-Instruct"
WEATHER = {
    "name": "get_weather",
    "description": "The current weather in a city.",
    "parameters": [{"name": "city", "parameter_type": "str", "description": "a city", "required": True}],
}


def config(max_tokens: int = 48, **fields: object) -> dict:
    return {
        "model": CHAT,
        "instructions": "Answer briefly.",
        "sampling_params": {"strategy": {"type": "greedy"}, "max_tokens": max_tokens},
        "toolgroups": [],
        "client_tools": [],
        "tool_config": {"tool_choice": "auto"},
        "max_infer_iters": 10,
        **fields,
    }


def said(text: str) -> dict:
    return {"role": "user", "content": text, "context": None}
