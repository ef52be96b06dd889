"""The bodies of the inference routes as OpenAI defines them, validated before any model sees them.

Unknown fields are kept and passed on to the runtime (``top_k``, ``repetition_penalty``, ``min_p``, …:
every OpenAI-compatible server has its own), except that a field the OpenAI API defines is checked
here. Every list and string is bounded."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_MESSAGES = 4096
MAX_TOOLS = 128
MAX_EMBEDDING_INPUTS = 2048
MAX_TEXT = 4_000_000  # characters in one message or input; the JSON body limit is lower by default

Text = Annotated[str, Field(max_length=MAX_TEXT)]
MetadataKey = Annotated[str, Field(pattern=r'^[^"\\]{1,64}$')]  # lists filter on keys: no quote, no backslash
Metadata = Annotated[dict[MetadataKey, Annotated[str, Field(max_length=512)]], Field(max_length=16)]
"""OpenAI's metadata: up to 16 pairs, keys of up to 64 characters, values of up to 512."""


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextPart(_Closed):
    type: Literal["text"]
    text: Text


class ImageUrl(_Closed):
    url: Annotated[str, Field(max_length=MAX_TEXT)]
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Closed):
    type: Literal["image_url"]
    image_url: ImageUrl


Part = Annotated[TextPart | ImagePart, Field(discriminator="type")]
Content = Text | Annotated[list[Part], Field(max_length=MAX_MESSAGES)]


class FunctionCall(_Closed):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    arguments: Text


class ToolCall(_Closed):
    id: Annotated[str, Field(min_length=1, max_length=256)]
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(_Closed):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Content | None = None
    name: Annotated[str, Field(max_length=256)] | None = None
    tool_calls: Annotated[list[ToolCall], Field(max_length=MAX_TOOLS)] | None = None
    tool_call_id: Annotated[str, Field(max_length=256)] | None = None
    refusal: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> Message:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs tool_call_id")
        if self.role == "assistant" and self.content is None and not self.tool_calls:
            raise ValueError("an assistant message needs content or tool_calls")
        if self.role in ("system", "developer", "user", "tool") and self.content is None:
            raise ValueError(f"a {self.role} message needs content")
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only assistant messages carry tool_calls")
        return self


class Function(_Closed):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: Annotated[str, Field(max_length=MAX_TEXT)] | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Closed):
    type: Literal["function"]
    function: Function


class NamedFunction(_Closed):
    name: Annotated[str, Field(min_length=1, max_length=64)]


class NamedToolChoice(_Closed):
    type: Literal["function"]
    function: NamedFunction


class JsonSchema(_Closed):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Closed):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchema | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("response_format of type json_schema needs json_schema")
        return self


class StreamOptions(_Closed):
    include_usage: bool | None = None


class _Sampling(_Open):
    model: Annotated[str, Field(min_length=1, max_length=256)]
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    stop: Annotated[str, Field(max_length=1024)] | Annotated[list[str], Field(max_length=4)] | None = None
    seed: int | None = None
    n: int | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    user: Annotated[str, Field(max_length=256)] | None = None

    @model_validator(mode="after")
    def _one_choice(self) -> _Sampling:
        if self.n not in (None, 1):
            raise ValueError("only n=1 is supported: ask again for another choice")
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed with stream=true")
        return self


class ChatCompletionRequest(_Sampling):
    messages: Annotated[list[Message], Field(min_length=1, max_length=MAX_MESSAGES)]
    tools: Annotated[list[Tool], Field(max_length=MAX_TOOLS)] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    metadata: Metadata | None = None
    store: bool | None = None  # keep the completion (``GET /v1/chat/completions``); OpenAI's default: no

    @model_validator(mode="after")
    def _tools_agree(self) -> ChatCompletionRequest:
        declared = {tool.function.name for tool in self.tools or ()}
        if isinstance(self.tool_choice, NamedToolChoice) and self.tool_choice.function.name not in declared:
            raise ValueError(f"tool_choice names '{self.tool_choice.function.name}', which is not in tools")
        if self.tool_choice == "required" and not declared:
            raise ValueError("tool_choice 'required' needs tools")
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs=true")
        return self

    def for_router(self) -> dict[str, Any]:
        """The request as the router takes it: what was sent, ``max_completion_tokens`` as
        ``max_tokens`` (what every runtime reads)."""
        body = self.model_dump(exclude_none=True, by_alias=True)
        if "max_completion_tokens" in body:
            body["max_tokens"] = body.pop("max_completion_tokens")
        return body


class CompletionRequest(_Sampling):
    prompt: Text | Annotated[list[Text], Field(min_length=1, max_length=1)]
    echo: bool | None = None
    suffix: Annotated[str, Field(max_length=MAX_TEXT)] | None = None
    logprobs: Annotated[int, Field(ge=0, le=5)] | None = None

    def for_router(self) -> dict[str, Any]:
        body = self.model_dump(exclude_none=True)
        if isinstance(body["prompt"], list):
            body["prompt"] = body["prompt"][0]
        return body


TokenIds = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1, max_length=100_000)]


class EmbeddingRequest(_Closed):
    model: Annotated[str, Field(min_length=1, max_length=256)]
    input: (
        Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
        | Annotated[list[Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]], Field(min_length=1)]
        | TokenIds
        | Annotated[list[TokenIds], Field(min_length=1)]
    )
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Field(ge=1)] | None = None
    user: Annotated[str, Field(max_length=256)] | None = None

    @model_validator(mode="after")
    def _bounded(self) -> EmbeddingRequest:
        if (
            isinstance(self.input, list)
            and len(self.input) > MAX_EMBEDDING_INPUTS
            and not (self.input and isinstance(self.input[0], int))
        ):
            raise ValueError(f"input may hold at most {MAX_EMBEDDING_INPUTS} items")
        return self

    def inputs(self) -> list[str | list[int]]:
        """One entry per vector asked for."""
        if isinstance(self.input, str):
            return [self.input]
        if self.input and isinstance(self.input[0], int):
            return [self.input]
        return list(self.input)  # type: ignore[arg-type]


class UpdateChatCompletionRequest(_Closed):
    metadata: Metadata | None
    """The completion's new metadata, in place of the old; null: none."""


class RegisterModelRequest(_Closed):
    """Llama Stack's ``models.register``."""

    model_id: Annotated[str, Field(min_length=1, max_length=256)]
    provider_model_id: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    provider_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    model_type: Literal["llm", "embedding"] | None = None
    metadata: Annotated[dict[Annotated[str, Field(max_length=256)], Any], Field(max_length=64)] | None = None
