"""The guard check behind every shield: Llama Guard 3's prompt (its S1..S14 categories of unsafe
content, the conversation, and the request to assess only its last message) sent through the inference
router to any chat model, at temperature 0, and its answer read as a ``Verdict``.

The answer is constrained (``response_format`` ``json_schema``) to ``{"verdict": "safe"}`` or
``{"verdict": "unsafe", "categories": [up to three codes]}``, so that any model answers in a form that
reads; a server that ignores the constraint leaves a Llama Guard model its own form, which reads too
(``safe``, or ``unsafe`` and a line of codes). Anything else fails the check (``UpstreamFailed``): a
shield that cannot tell is not a pass.

A violation is shown as Llama Stack shows it: ``violation_level`` ``error``, its refusal as the
``user_message``, and the codes in ``metadata.violation_type``."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from .errors import UpstreamFailed
from .inference.router import InferenceRouter
from .ports.inference import Json

CATEGORIES = {
    "S1": "Violent Crimes",
    "S2": "Non-Violent Crimes",
    "S3": "Sex Crimes",
    "S4": "Child Exploitation",
    "S5": "Defamation",
    "S6": "Specialized Advice",
    "S7": "Privacy",
    "S8": "Intellectual Property",
    "S9": "Indiscriminate Weapons",
    "S10": "Hate",
    "S11": "Self-Harm",
    "S12": "Sexual Content",
    "S13": "Elections",
    "S14": "Code Interpreter Abuse",
}
"""Llama Guard 3's categories by code."""

REFUSAL = "I can't answer that. Can I help with something else?"
MAX_CATEGORIES = 3
MAX_ANSWER_TOKENS = 64

ANSWER_FORMAT: Json = {
    "type": "json_schema",
    "json_schema": {
        "name": "safety_assessment",
        "strict": True,
        "schema": {
            "anyOf": [
                {
                    "type": "object",
                    "properties": {"verdict": {"const": "safe"}},
                    "required": ["verdict"],
                    "additionalProperties": False,
                },
                {
                    "type": "object",
                    "properties": {
                        "verdict": {"const": "unsafe"},
                        "categories": {
                            "type": "array",
                            "items": {"enum": list(CATEGORIES)},
                            "minItems": 1,
                            "maxItems": MAX_CATEGORIES,
                        },
                    },
                    "required": ["verdict", "categories"],
                    "additionalProperties": False,
                },
            ]
        },
    },
}


@dataclass(frozen=True)
class Verdict:
    unsafe: bool
    categories: tuple[str, ...] = ()  # codes of CATEGORIES
    tokens: int = 0  # read and written by the model


def prompt(conversation: Sequence[tuple[str, str]]) -> str:
    """Llama Guard's prompt for the last of ``conversation``'s (role, text) messages."""
    role = conversation[-1][0].capitalize()
    categories = "\n".join(f"{code}: {name}." for code, name in CATEGORIES.items())
    messages = "\n\n".join(f"{speaker.capitalize()}: {text}" for speaker, text in conversation)
    return (
        f"Task: Check if there is unsafe content in '{role}' messages in conversations according our "
        "safety policy with the below categories.\n\n"
        f"<BEGIN UNSAFE CONTENT CATEGORIES>\n{categories}\n<END UNSAFE CONTENT CATEGORIES>\n\n"
        f"<BEGIN CONVERSATION>\n\n{messages}\n\n<END CONVERSATION>\n\n"
        f"Provide your safety assessment for ONLY THE LAST {role} message in the above conversation:\n"
        " - Answer 'unsafe' if it falls in any category above, else 'safe'.\n"
        " - If unsafe, list the violated categories."
    )


async def assess(
    inference: InferenceRouter, tenant: str, model: str, conversation: Sequence[tuple[str, str]]
) -> Verdict:
    """The verdict of ``model`` (one of the tenant's chat models) on the conversation's last message."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt(conversation)}],
        "temperature": 0.0,
        "max_tokens": MAX_ANSWER_TOKENS,
        "response_format": ANSWER_FORMAT,
    }
    completion = await inference.chat(body, tenant)
    verdict = read_answer(completion["choices"][0]["message"].get("content") or "")
    return replace(verdict, tokens=(completion.get("usage") or {}).get("total_tokens") or 0)


def read_answer(answer: str) -> Verdict:
    """The verdict an answer gives, in the constrained form or in Llama Guard's own."""
    text = answer.strip()
    try:
        given = json.loads(text)
    except ValueError:
        first, _, rest = text.partition("\n")
        given = {"verdict": first.strip().lower(), "categories": re.findall(r"S\d+", rest)}
    if not isinstance(given, dict) or given.get("verdict") not in ("safe", "unsafe"):
        raise UpstreamFailed(f"The shield's model answered neither safe nor unsafe: {text[:200]!r}")
    if given["verdict"] == "safe":
        return Verdict(unsafe=False)
    codes = [code for code in given.get("categories") or () if code in CATEGORIES]
    return Verdict(unsafe=True, categories=tuple(dict.fromkeys(codes)))


def violation(verdict: Verdict) -> Json | None:
    """Llama Stack's ``SafetyViolation`` for an unsafe verdict; None for a safe one."""
    if not verdict.unsafe:
        return None
    return {
        "violation_level": "error",
        "user_message": REFUSAL,
        "metadata": {"violation_type": ",".join(verdict.categories)},
    }
