"""Plain records passed between the engine and its ports."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ObjectRecord:
    """One stored object. ``id`` (``file-…``) names it everywhere and also names its blob."""

    id: str
    tenant: str
    bucket: str
    key: str
    filename: str
    mime_type: str
    bytes: int
    sha256: str
    purpose: str
    created_at: int
    expires_at: int | None


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """An API key as stored: only its hash, never the key itself."""

    id: str
    tenant: str
    key_hash: str
    created_at: int
    revoked_at: int | None


@dataclass(frozen=True, slots=True)
class ListPage:
    items: list[ObjectRecord]
    has_more: bool


@dataclass(frozen=True, slots=True)
class UploadSession:
    """An upload in progress: bytes are appended to its staging until ``size`` is reached, then the
    object ``(tenant, bucket, key)`` appears whole. The offset is never stored: it is the staged size."""

    id: str
    tenant: str
    bucket: str
    key: str
    filename: str
    mime_type: str
    size: int
    sha256: str | None
    purpose: str
    created_at: int
    expires_at: int
    object_id: str | None
    object_expires_after: int | None = None
    """Seconds the completed object lives; None: until deleted."""
    client_metadata: str | None = None
    """The client's own description of the upload, kept verbatim (tus ``Upload-Metadata``)."""
    in_parts: bool = False
    """Whether the bytes arrive as parts joined at completion, not as appends at an offset."""


@dataclass(frozen=True, slots=True)
class RegisteredModel:
    """A tenant's own name (``identifier``) for a model a provider serves (Llama Stack's
    ``models.register``); only that tenant sees it."""

    tenant: str
    identifier: str
    provider_id: str
    provider_model_id: str
    model_type: str  # ``ModelType``'s value: "llm" or "embedding"
    metadata: dict[str, Any]
    created_at: int


@dataclass(frozen=True, slots=True)
class StoredChatCompletion:
    """A chat completion kept because its request said ``store: true``: what was asked (the input
    messages as sent) and what the model answered, as the ``chat.completion`` object had it."""

    id: str  # the completion's ``chatcmpl-…`` id
    tenant: str
    created_at: int
    model: str
    input_messages: list[dict[str, Any]]
    choices: list[dict[str, Any]]
    usage: dict[str, Any] | None
    metadata: dict[str, str]


@dataclass(frozen=True, slots=True)
class ChatCompletionPage:
    items: list[StoredChatCompletion]
    has_more: bool


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A response of the Responses API as its row keeps it: the response object as last shown (its
    ``status``, ``output`` and ``usage`` change while it runs) and the input items it was given. Its
    context is the chain of ``previous_response_id`` (each response keeps only its own input)."""

    id: str  # ``resp_…``: the time in milliseconds first, so ids sort by creation
    tenant: str
    created_at: int
    model: str
    status: str  # the object's ``status``: queued, in_progress, completed, incomplete, failed, cancelled
    previous_response_id: str | None
    conversation_id: str | None
    response: dict[str, Any]  # the ``response`` object, without ``input``
    input_items: list[dict[str, Any]]


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A unit of background work of some ``kind``, done for a tenant by whichever worker claims it.

    Times are seconds since the epoch, as floats (leases are shorter than a second in tests)."""

    id: str
    tenant: str
    kind: str
    payload: dict[str, Any]
    status: JobStatus
    attempts: int
    """Claims so far, the one running now included."""
    max_attempts: int
    run_at: float
    """When the job may next be claimed: a queued job once it is due, a running one once its lease
    ends (its worker stopped renewing it)."""
    created_at: float
    worker: str | None = None
    """Who holds, or last held, the job."""
    cancel_requested: bool = False
    result: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    """The last failure as ``{"code", "message"}``: the message is safe to show a client."""
    ended_at: float | None = None


class VectorFileStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class VectorStoreRecord:
    """A vector store as its row keeps it; its status, file counts and usage are derived from its files.
    Times are whole seconds since the epoch."""

    id: str  # ``vs_…``
    tenant: str
    name: str
    created_at: int
    last_active_at: int
    metadata: dict[str, str]
    expires_after_days: int | None
    """OpenAI's ``expires_after`` (its one anchor is ``last_active_at``); None: never expires."""
    expires_at: int | None
    embedding_model: str  # the catalog identifier of the model its chunks were embedded with
    embedding_dimension: int
    reclaimed_at: int | None = None
    """When its chunks were dropped, the store having expired."""
    description: str | None = None
    """OpenAI's ``description``, given at creation only."""

    def expired(self, now: float) -> bool:
        """Whether its expiry has passed, which is for good (``core.vectors.stores``)."""
        return self.reclaimed_at is not None or (self.expires_at is not None and self.expires_at <= now)


@dataclass(frozen=True, slots=True)
class VectorStoreFileRecord:
    """A Cairn object attached to a vector store, and where its ingestion stands."""

    store_id: str
    file_id: str
    tenant: str
    status: VectorFileStatus
    last_error: dict[str, str] | None  # ``{"code", "message"}``: OpenAI's ``last_error``
    attributes: dict[str, str | int | float | bool]
    chunking_strategy: dict[str, Any]  # as resolved: ``{"type": "static", "static": {…}}``
    usage_bytes: int
    created_at: int
    batch_id: str | None
    generation: int
    """Counts attachments of the file to the store that were ingested anew: names its ingestion job."""


@dataclass(frozen=True, slots=True)
class VectorStoreBatchRecord:
    id: str  # ``vsfb_…``
    store_id: str
    tenant: str
    created_at: int
    cancelled: bool


@dataclass(frozen=True, slots=True)
class FileCounts:
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def total(self) -> int:
        return self.in_progress + self.completed + self.failed + self.cancelled


@dataclass(frozen=True, slots=True)
class StoreTally:
    """What a store's (or a batch's) files add up to."""

    file_counts: FileCounts
    usage_bytes: int


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    has_more: bool


@dataclass(frozen=True, slots=True)
class ConversationRecord:
    """A conversation (OpenAI's Conversations API): its items are kept beside it, in order."""

    id: str  # ``conv_…``
    tenant: str
    created_at: int  # seconds since the epoch
    metadata: dict[str, str]


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """An agent of Llama Stack's Agents API: its configuration, as the service normalised it."""

    id: str  # a UUID, as Llama Stack's
    tenant: str
    created_at: float  # seconds since the epoch
    config: dict[str, Any]  # the ``AgentConfig`` object


@dataclass(frozen=True, slots=True)
class AgentSessionRecord:
    """A session with an agent; its turns are kept beside it, in order."""

    id: str
    tenant: str
    agent_id: str
    name: str
    started_at: float


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """A turn of a session as its row keeps it. ``turn`` is the ``Turn`` object as last shown;
    ``pending``, while the turn awaits the client's tool results (``awaiting_input``), is what its resume
    needs (the in-progress ``tool_execution`` step, the turn's own tool settings). ``revision`` counts
    the writes of the row, so that of two resumes of one turn only the first is kept."""

    id: str
    tenant: str
    session_id: str
    status: str  # awaiting_input or completed
    turn: dict[str, Any]
    pending: dict[str, Any] | None = None
    revision: int = 0


@dataclass(frozen=True, slots=True)
class ToolGroupRecord:
    """A tool group a tenant registered (Llama Stack's ``ToolGroup``): a remote MCP server, with the names
    of the tools it listed when it was registered, by which a call of a tool finds its group."""

    id: str  # the name the tenant gave it (``mcp::weather``)
    tenant: str
    created_at: float  # seconds since the epoch
    provider_id: str
    mcp_uri: str
    args: dict[str, Any] | None
    tools: list[str]


@dataclass(frozen=True, slots=True)
class ShieldRecord:
    """A tenant's shield (Llama Stack's ``shields.register``): a guard check run by a chat model the
    tenant can use (``provider_resource_id``); only that tenant sees it."""

    tenant: str
    identifier: str
    provider_resource_id: str
    params: dict[str, Any]
    created_at: float  # seconds since the epoch
