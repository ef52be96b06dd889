"""The body of ``POST /v1/responses`` as OpenAI defines it, checked before any model sees it: types,
ranges and sizes here; what the values mean (the model, the items, the tools, the chain) in the service.
Unknown fields are refused, so a misspelt option is an error, never a silent default."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .inference_requests import MAX_TEXT, Metadata

MAX_TOOLS = 128
MAX_ITEMS = 4096
Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,256}$")]
Include = Literal[
    "file_search_call.results",
    "message.output_text.logprobs",
    "message.input_image.image_url",
    "reasoning.encrypted_content",
    "web_search_call.action.sources",
    "web_search_call.results",
    "code_interpreter_call.outputs",
    "computer_call_output.output.image_url",
]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConversationRef(_Closed):
    id: Id


class TextFormat(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    type: Literal["text", "json_object", "json_schema"]
    name: Annotated[str, Field(max_length=64)] | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _schema(self) -> TextFormat:
        if self.type == "json_schema" and (self.schema_ is None or not self.name):
            raise ValueError("a json_schema format needs a name and a schema")
        return self


class Text(_Closed):
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class StreamOptions(_Closed):
    include_obfuscation: bool | None = None


class ResponseContext(_Closed):
    """What the model reads: ``POST /v1/responses/input_tokens`` takes this much."""

    model: Annotated[str, Field(min_length=1, max_length=256)]
    input: (
        Annotated[str, Field(max_length=MAX_TEXT)]
        | Annotated[list[dict[str, Any]], Field(max_length=MAX_ITEMS)]
    ) = []
    instructions: Annotated[str, Field(max_length=MAX_TEXT)] | None = None
    previous_response_id: Id | None = None
    conversation: Id | ConversationRef | None = None
    tools: Annotated[list[dict[str, Any]], Field(max_length=MAX_TOOLS)] | None = None
    tool_choice: Literal["auto", "none", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: Text | None = None
    truncation: Literal["auto", "disabled"] | None = None
    reasoning: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _tools(self) -> ResponseContext:
        for tool in self.tools or ():
            if not isinstance(tool.get("type"), str):
                raise ValueError("every tool needs a type")
            if tool["type"] == "function" and not isinstance(tool.get("name"), str):
                raise ValueError("a function tool needs a name")
        return self

    def for_service(self) -> dict[str, Any]:
        body = self.model_dump(exclude_none=True, by_alias=True)
        if isinstance(self.conversation, ConversationRef):
            body["conversation"] = self.conversation.id
        return body


class CreateResponseRequest(ResponseContext):
    max_tool_calls: Annotated[int, Field(ge=1, le=1000)] | None = None
    max_output_tokens: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    store: bool | None = None
    metadata: Metadata | None = None
    background: bool | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    include: Annotated[list[Include], Field(max_length=16)] | None = None
    user: Annotated[str, Field(max_length=256)] | None = None
    safety_identifier: Annotated[str, Field(max_length=256)] | None = None
    prompt_cache_key: Annotated[str, Field(max_length=256)] | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None = None
    max_infer_iters: Annotated[int, Field(ge=1, le=100)] | None = None
    """Llama Stack's: at most this many inference steps (default 10)."""
