"""Responses of the Responses API kept with ``store: true`` (``adapters/sql/responses.py``), on both
dialects. Ids begin with their creation time, so lists page by id: on ``(tenant, id)``, and on
``(tenant, model, id)`` when they name a model. The response object and its input items are JSON text.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "responses",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("previous_response_id", sa.String(64), nullable=True),
        sa.Column("conversation_id", sa.String(64), nullable=True),
        sa.Column("response", sa.Text, nullable=False),
        sa.Column("input_items", sa.Text, nullable=False),
    )
    op.create_index("ix_responses_tenant_id", "responses", ["tenant", "id"])
    op.create_index("ix_responses_tenant_model_id", "responses", ["tenant", "model", "id"])


def downgrade() -> None:
    op.drop_table("responses")
