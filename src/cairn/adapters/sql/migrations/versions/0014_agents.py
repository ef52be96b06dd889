"""Llama Stack's Agents API (``adapters/sql/agents.py``), on both dialects: agents (their configuration
as JSON text), their sessions, and each session's turns. The primary key ``(session_id, seq)`` keeps a
session's turns in the order they were appended; ``last_seq`` numbers the appends, and bumping it locks
the session's row on PostgreSQL, so appends to one session take their turns. ``ix_agent_turns_turn_id``
finds a turn by its id and keeps ids unique within their session.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("config", sa.Text, nullable=False),
    )
    op.create_index("ix_agents_tenant_created_at", "agents", ["tenant", "created_at", "id"])
    op.create_table(
        "agent_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("agent_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_agent_sessions_agent_started_at", "agent_sessions", ["agent_id", "started_at", "id"])
    op.create_table(
        "agent_turns",
        sa.Column("session_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("turn_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("turn", sa.Text, nullable=False),
        sa.Column("pending", sa.Text, nullable=True),
        sa.Column("revision", sa.Integer, nullable=False),
    )
    op.create_index("ix_agent_turns_turn_id", "agent_turns", ["session_id", "turn_id"], unique=True)


def downgrade() -> None:
    op.drop_table("agent_turns")
    op.drop_table("agent_sessions")
    op.drop_table("agents")
