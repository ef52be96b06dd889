"""The tool groups tenants register for Llama Stack's tool-runtime (``adapters/sql/tool_groups.py``), on
both dialects: one row per (tenant, group name), the server's URI, the group's ``args`` and the names of
the tools it listed, as JSON text.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tool_groups",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("provider_id", sa.String(64), nullable=False),
        sa.Column("mcp_uri", sa.Text, nullable=False),
        sa.Column("args", sa.Text, nullable=True),
        sa.Column("tools", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tool_groups")
