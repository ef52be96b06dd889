"""The bodies of Llama Stack's Agents API as Llama Stack defines them (``AgentConfig``, a turn, a
resume), checked before any model sees them: types, ranges and sizes here, with Llama Stack's defaults
filled in; what the values mean (the model, the tools, the pending calls) in the service. Unknown fields
are refused, so a misspelt option is an error, never a silent default."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .inference_requests import MAX_TEXT

MAX_TOOLS = 128
MAX_MESSAGES = 1024
MAX_ITEMS = 256  # content items in one message
MAX_SHIELDS = 16
MAX_GRAMMAR_RULES = 256
MAX_GRAMMAR_CHARS = 64 << 10  # a grammar's rule bodies, together

Name = Annotated[str, Field(min_length=1, max_length=256)]
ToolName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
CallId = Annotated[str, Field(min_length=1, max_length=256)]
LongText = Annotated[str, Field(max_length=MAX_TEXT)]
PromptFormat = Literal["json", "function_tag", "python_list"]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Content


class URL(_Closed):
    uri: LongText


class Image(_Closed):
    url: URL | None = None
    data: LongText | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Image:
        if (self.url is None) == (self.data is None):
            raise ValueError("an image is given by url or by data, one of them")
        return self


class ImageItem(_Closed):
    type: Literal["image"]
    image: Image


class TextItem(_Closed):
    type: Literal["text"]
    text: LongText


Item = Annotated[ImageItem | TextItem, Field(discriminator="type")]
Content = LongText | Item | Annotated[list[Item], Field(max_length=MAX_ITEMS)]
"""Llama Stack's ``InterleavedContent``."""


class UserMessage(_Closed):
    role: Literal["user"]
    content: Content
    context: Content | None = None


class ToolResponseMessage(_Closed):
    role: Literal["tool"]
    call_id: CallId
    content: Content


Message = Annotated[UserMessage | ToolResponseMessage, Field(discriminator="role")]


class Document(_Closed):
    content: Content | URL
    mime_type: Annotated[str, Field(max_length=255)]


# Configuration


class GreedyStrategy(_Closed):
    type: Literal["greedy"]


class TopPStrategy(_Closed):
    type: Literal["top_p"]
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = 0.95


class TopKStrategy(_Closed):
    type: Literal["top_k"]
    top_k: Annotated[int, Field(ge=1, le=1000)]


Strategy = Annotated[GreedyStrategy | TopPStrategy | TopKStrategy, Field(discriminator="type")]


class SamplingParams(_Closed):
    strategy: Strategy = GreedyStrategy(type="greedy")
    max_tokens: Annotated[int, Field(ge=0, le=1_000_000)] | None = 0
    """Per inference step; 0: no bound but the model's."""
    repetition_penalty: Annotated[float, Field(ge=0, le=10)] | None = 1.0
    stop: Annotated[list[Annotated[str, Field(max_length=1024)]], Field(max_length=4)] | None = None


class ToolParameter(_Closed):
    name: ToolName
    parameter_type: Annotated[str, Field(max_length=64)]
    description: LongText
    required: bool = True
    default: Any = None
    items: dict[str, Any] | None = None
    title: Annotated[str, Field(max_length=256)] | None = None


class ToolDef(_Closed):
    """A client tool: its parameters as Llama Stack lists them, or as a JSON schema (``input_schema``,
    as later clients send it)."""

    name: ToolName
    description: LongText | None = None
    parameters: Annotated[list[ToolParameter], Field(max_length=64)] | None = None
    input_schema: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    tool_prompt_format: PromptFormat | None = None
    """Sent by the ``@client_tool`` helper; tools are described to the model by its chat template."""


class ToolConfig(_Closed):
    tool_choice: Annotated[str, Field(min_length=1, max_length=64)] | None = "auto"
    """``auto``, ``required``, ``none``, or the name of a tool."""
    tool_prompt_format: PromptFormat | None = None
    system_message_behavior: Literal["append", "replace"] | None = "append"


class ToolGroupWithArgs(_Closed):
    name: Name
    args: dict[str, Any]


ToolGroup = Name | ToolGroupWithArgs
ToolGroups = Annotated[list[ToolGroup], Field(max_length=MAX_TOOLS)]


class JsonSchemaFormat(_Closed):
    type: Literal["json_schema"]
    json_schema: dict[str, Any]


GrammarRule = Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,64}$")]  # a GBNF rule's name
GrammarRules = Annotated[
    dict[GrammarRule, Annotated[str, Field(min_length=1)]], Field(max_length=MAX_GRAMMAR_RULES)
]


class GrammarFormat(_Closed):
    """``bnf``: a GBNF grammar as its rules, each name to its body; ``root`` is where every answer
    starts."""

    type: Literal["grammar"]
    bnf: GrammarRules

    @model_validator(mode="after")
    def _rooted(self) -> GrammarFormat:
        if "root" not in self.bnf:
            raise ValueError("a grammar needs a `root` rule, where every answer starts")
        if sum(len(body) for body in self.bnf.values()) > MAX_GRAMMAR_CHARS:
            raise ValueError(f"a grammar's rules may hold at most {MAX_GRAMMAR_CHARS} characters")
        return self


ResponseFormat = Annotated[JsonSchemaFormat | GrammarFormat, Field(discriminator="type")]


class AgentConfig(_Closed):
    """Llama Stack's ``AgentConfig``; ``tool_choice`` and ``tool_prompt_format`` (deprecated) go into
    ``tool_config``, and must agree with it when both are given."""

    model: Name
    instructions: LongText
    name: Name | None = None
    sampling_params: SamplingParams | None = SamplingParams()
    input_shields: Annotated[list[Name], Field(max_length=MAX_SHIELDS)] | None = []
    output_shields: Annotated[list[Name], Field(max_length=MAX_SHIELDS)] | None = []
    toolgroups: ToolGroups | None = []
    client_tools: Annotated[list[ToolDef], Field(max_length=MAX_TOOLS)] | None = []
    tool_choice: Literal["auto", "required", "none"] | None = None
    tool_prompt_format: PromptFormat | None = None
    tool_config: ToolConfig | None = None
    max_infer_iters: Annotated[int, Field(ge=1, le=100)] = 10
    enable_session_persistence: bool | None = False
    """Sessions are kept either way."""
    response_format: ResponseFormat | None = None

    @model_validator(mode="after")
    def _tool_config(self) -> AgentConfig:
        if self.tool_config is None:
            given = {"tool_choice": self.tool_choice, "tool_prompt_format": self.tool_prompt_format}
            self.tool_config = ToolConfig(**{key: value for key, value in given.items() if value})
        elif self.tool_choice and self.tool_config.tool_choice != self.tool_choice:
            raise ValueError("tool_choice is deprecated. Use tool_choice in tool_config instead.")
        elif self.tool_prompt_format and self.tool_config.tool_prompt_format != self.tool_prompt_format:
            raise ValueError(
                "tool_prompt_format is deprecated. Use tool_prompt_format in tool_config instead."
            )
        return self


# Bodies


class CreateAgentRequest(_Closed):
    agent_config: AgentConfig


class CreateSessionRequest(_Closed):
    session_name: Annotated[str, Field(max_length=256)]


class CreateTurnRequest(_Closed):
    messages: Annotated[list[Message], Field(min_length=1, max_length=MAX_MESSAGES)]
    stream: bool | None = False
    documents: Annotated[list[Document], Field(max_length=64)] | None = None
    toolgroups: ToolGroups | None = None
    """Offered in this turn besides the agent's."""
    tool_config: ToolConfig | None = None
    """In place of the agent's, for this turn."""


class ToolResponse(_Closed):
    call_id: CallId
    tool_name: ToolName
    content: Content
    metadata: dict[str, Any] | None = None


class ResumeTurnRequest(_Closed):
    tool_responses: Annotated[list[ToolResponse], Field(min_length=1, max_length=MAX_TOOLS)]
    stream: bool | None = False
