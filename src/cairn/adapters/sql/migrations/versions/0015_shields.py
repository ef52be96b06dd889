"""Llama Stack's shields (``adapters/sql/shields.py``), on both dialects: a tenant's shields by
identifier, each naming the model that runs its check, with its parameters as JSON text.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shields",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("identifier", sa.String(256), primary_key=True),
        sa.Column("provider_resource_id", sa.String(256), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("shields")
