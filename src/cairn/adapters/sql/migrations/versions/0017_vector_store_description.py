"""A vector store's ``description`` (OpenAI's create parameter), kept with its row; NULL when none was given.

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("vector_store_objects", sa.Column("description", sa.String(512), nullable=True))


def downgrade() -> None:
    op.drop_column("vector_store_objects", "description")
