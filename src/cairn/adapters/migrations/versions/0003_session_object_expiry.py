"""Upload sessions remember how long the object they make should live (OpenAI Uploads' expires_after).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("upload_sessions", sa.Column("object_expires_after", sa.BigInteger, nullable=True))


def downgrade() -> None:
    op.drop_column("upload_sessions", "object_expires_after")
