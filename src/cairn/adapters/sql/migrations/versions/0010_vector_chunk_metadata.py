"""A chunk's own metadata in the vector index, on both dialects: ``vector_chunks.metadata``, a JSON object
or NULL. Chunks inserted through Llama Stack's vector-io (``core/vectors/raw_chunks.py``) carry their
document, id and metadata there; chunks of ingested files have none. It is written and removed with its
chunk (``put_file``, ``remove_file``, ``drop_store``), and never searched: keyword search reads the text.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    json = postgresql.JSONB() if op.get_bind().dialect.name == "postgresql" else sa.Text()
    op.add_column("vector_chunks", sa.Column("metadata", json, nullable=True))


def downgrade() -> None:
    op.drop_column("vector_chunks", "metadata")
