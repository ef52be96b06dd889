"""The models tenants register (Llama Stack's models.register) and the chat completions they store
(OpenAI's ``store: true``), paged per tenant by creation time.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registered_models",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("identifier", sa.String(256), primary_key=True),
        sa.Column("provider_id", sa.String(64), nullable=False),
        sa.Column("provider_model_id", sa.String(256), nullable=False),
        sa.Column("model_type", sa.String(16), nullable=False),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "chat_completions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("input_messages", sa.Text, nullable=False),
        sa.Column("choices", sa.Text, nullable=False),
        sa.Column("usage", sa.Text, nullable=True),
    )
    op.create_index(
        "ix_chat_completions_tenant_created_at", "chat_completions", ["tenant", "created_at", "id"]
    )


def downgrade() -> None:
    op.drop_table("chat_completions")
    op.drop_table("registered_models")
