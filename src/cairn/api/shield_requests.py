"""The bodies of Llama Stack's shields and safety routes and of OpenAI's moderations, checked before any
model sees them: types, ranges and sizes here; what the names mean (the shield, its model) in
``core.shields``. Unknown fields are refused."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .agent_requests import MAX_MESSAGES, CallId, Content, Name
from .inference_requests import MAX_TEXT

MAX_INPUTS = 32  # texts of one moderation request, each checked by one inference


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


Text = Annotated[str, Field(max_length=MAX_TEXT)]
Params = Annotated[dict[Annotated[str, Field(max_length=256)], Any], Field(max_length=64)]


class RegisterShieldRequest(_Closed):
    """Llama Stack's ``shields.register``."""

    shield_id: Name
    provider_shield_id: Name | None = None
    """The model that runs the shield's check; by default the ``shield_id``."""
    provider_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    params: Params | None = None


class ShieldMessage(_Closed):
    """One of Llama Stack's messages (user, system, tool response or the model's); its text is
    checked."""

    role: Literal["user", "system", "tool", "assistant"]
    content: Content
    context: Content | None = None
    call_id: CallId | None = None
    stop_reason: Literal["end_of_turn", "end_of_message", "out_of_tokens"] | None = None
    tool_calls: Annotated[list[dict[str, Any]], Field(max_length=128)] | None = None


class RunShieldRequest(_Closed):
    shield_id: Name
    messages: Annotated[list[ShieldMessage], Field(min_length=1, max_length=MAX_MESSAGES)]
    params: Params | None = None


class ModerationRequest(_Closed):
    """OpenAI's moderations request: a text or a list of them, and the model of one of the tenant's
    shields."""

    input: (
        Annotated[str, Field(max_length=MAX_TEXT)]
        | Annotated[
            list[Annotated[str, Field(max_length=MAX_TEXT)]], Field(min_length=1, max_length=MAX_INPUTS)
        ]
    )
    model: Name | None = None
