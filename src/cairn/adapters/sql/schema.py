"""The tables, as SQLAlchemy Core sees them (the migrations in ``migrations/`` create them)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()


def _placement() -> list[sa.Column[Any]]:
    """Where an object lives and what it is called: shared by objects and the uploads that make them."""
    return [
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("bucket", sa.String(64), nullable=False),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("filename", sa.String(1024), nullable=False),
        sa.Column("mime_type", sa.String(255), nullable=False),
    ]


objects = sa.Table(
    "objects",
    metadata,
    *_placement(),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("purpose", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=True),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("revoked_at", sa.BigInteger, nullable=True),
)

upload_sessions = sa.Table(
    "upload_sessions",
    metadata,
    *_placement(),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=True),
    sa.Column("purpose", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("object_id", sa.String(64), nullable=True),
    sa.Column("object_expires_after", sa.BigInteger, nullable=True),
    sa.Column("client_metadata", sa.String(4096), nullable=True),
    sa.Column("in_parts", sa.Boolean, nullable=False, server_default=sa.false()),
)

registered_models = sa.Table(
    "registered_models",
    metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("identifier", sa.String(256), primary_key=True),
    sa.Column("provider_id", sa.String(64), nullable=False),
    sa.Column("provider_model_id", sa.String(256), nullable=False),
    sa.Column("model_type", sa.String(16), nullable=False),
    sa.Column("metadata", sa.Text, nullable=False),  # a JSON object
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

chat_completions = sa.Table(
    "chat_completions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("model", sa.String(256), nullable=False),
    sa.Column("metadata", sa.JSON, nullable=False),  # JSON, not text: lists filter on its keys
    sa.Column("input_messages", sa.Text, nullable=False),  # JSON, as the rest
    sa.Column("choices", sa.Text, nullable=False),
    sa.Column("usage", sa.Text, nullable=True),
    sa.Index("ix_chat_completions_tenant_created_at", "tenant", "created_at", "id"),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("max_attempts", sa.Integer, nullable=False),
    sa.Column("run_at", sa.Double, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("worker", sa.String(128), nullable=True),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("result", sa.JSON, nullable=True),
    sa.Column("error", sa.JSON, nullable=True),
    sa.Column("ended_at", sa.Double, nullable=True),
)

# Vector stores as the API sees them; their chunks are the vector index's (``vector_stores_index`` …)
vector_store_objects = sa.Table(
    "vector_store_objects",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("last_active_at", sa.BigInteger, nullable=False),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("expires_after_days", sa.Integer, nullable=True),
    sa.Column("expires_at", sa.BigInteger, nullable=True),
    sa.Column("embedding_model", sa.String(256), nullable=False),
    sa.Column("embedding_dimension", sa.Integer, nullable=False),
    sa.Column("reclaimed_at", sa.BigInteger, nullable=True),
    sa.Column("description", sa.String(512), nullable=True),
    sa.Index("ix_vector_store_objects_tenant_id", "tenant", "id"),
)

vector_store_files = sa.Table(
    "vector_store_files",
    metadata,
    sa.Column("store_id", sa.String(64), primary_key=True),
    sa.Column("file_id", sa.String(128), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("last_error", sa.JSON, nullable=True),
    sa.Column("attributes", sa.JSON, nullable=False),
    sa.Column("chunking_strategy", sa.JSON, nullable=False),
    sa.Column("usage_bytes", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("batch_id", sa.String(64), nullable=True),
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Index("ix_vector_store_files_listing", "store_id", "created_at", "file_id"),
    sa.Index("ix_vector_store_files_file_id", "file_id"),
    sa.Index("ix_vector_store_files_batch_id", "batch_id"),
)

vector_store_file_batches = sa.Table(
    "vector_store_file_batches",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("store_id", sa.String(64), nullable=False),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("cancelled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_vector_store_file_batches_store_id", "store_id"),
)

# Responses kept with ``store: true`` (``adapters/sql/responses.py``): ids sort by creation, lists page by id
responses = sa.Table(
    "responses",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("model", sa.String(256), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("previous_response_id", sa.String(64), nullable=True),
    sa.Column("conversation_id", sa.String(64), nullable=True),
    sa.Column("response", sa.Text, nullable=False),  # JSON as text: never filtered on
    sa.Column("input_items", sa.Text, nullable=False),
    sa.Index("ix_responses_tenant_id", "tenant", "id"),
    sa.Index("ix_responses_tenant_model_id", "tenant", "model", "id"),
)

# The stream events of background responses, for streams read again (``GET …?stream=true``)
response_events = sa.Table(
    "response_events",
    metadata,
    sa.Column("response_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("event", sa.Text, nullable=False),  # a JSON object
)


# OpenAI's Conversations API: a conversation's items are JSON text in append order (``seq``)
conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("last_seq", sa.BigInteger, nullable=False),  # the ``seq`` of the last item ever appended
)

conversation_items = sa.Table(
    "conversation_items",
    metadata,
    sa.Column("conversation_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("item_id", sa.String(256), nullable=False),
    sa.Column("item", sa.Text, nullable=False),  # a JSON object
    sa.Index("ix_conversation_items_item_id", "conversation_id", "item_id", unique=True),
)


# Llama Stack's Agents API: agents, their sessions, and each session's turns in append order (``seq``)
agents = sa.Table(
    "agents",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("config", sa.Text, nullable=False),  # the AgentConfig, a JSON object
    sa.Index("ix_agents_tenant_created_at", "tenant", "created_at", "id"),
)

agent_sessions = sa.Table(
    "agent_sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("agent_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("started_at", sa.Double, nullable=False),
    sa.Column("last_seq", sa.BigInteger, nullable=False),  # the ``seq`` of the last turn appended
    sa.Index("ix_agent_sessions_agent_started_at", "agent_id", "started_at", "id"),
)

agent_turns = sa.Table(
    "agent_turns",
    metadata,
    sa.Column("session_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("turn_id", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("turn", sa.Text, nullable=False),  # the Turn, a JSON object
    sa.Column("pending", sa.Text, nullable=True),  # what a resume needs, a JSON object
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Index("ix_agent_turns_turn_id", "session_id", "turn_id", unique=True),
)


# The tool groups tenants registered (Llama Stack's tool-runtime): remote MCP servers, by name
tool_groups = sa.Table(
    "tool_groups",
    metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("provider_id", sa.String(64), nullable=False),
    sa.Column("mcp_uri", sa.Text, nullable=False),
    sa.Column("args", sa.Text, nullable=True),  # a JSON object
    sa.Column("tools", sa.Text, nullable=False),  # the names of the tools listed, a JSON array
)

# Llama Stack's shields: a tenant's names for guard checks, each run by a model (``provider_resource_id``)
shields = sa.Table(
    "shields",
    metadata,
    sa.Column("tenant", sa.String(64), primary_key=True),
    sa.Column("identifier", sa.String(256), primary_key=True),
    sa.Column("provider_resource_id", sa.String(256), nullable=False),
    sa.Column("params", sa.Text, nullable=False),  # a JSON object
    sa.Column("created_at", sa.Double, nullable=False),
)
