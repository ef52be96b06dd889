"""Vector stores as the API sees them (``adapters/sql/vector_stores.py``), on both dialects: the stores
(``vector_store_objects``: the vector index owns ``vector_stores_index`` and the chunk tables), the
files attached to them and the batches that attached them. Counts and usage are aggregates over
``vector_store_files``; ``ix_vector_store_files_file_id`` finds every attachment of a deleted object.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vector_store_objects",
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
    )
    op.create_index("ix_vector_store_objects_tenant_id", "vector_store_objects", ["tenant", "id"])
    op.create_table(
        "vector_store_files",
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
    )
    op.create_index(
        "ix_vector_store_files_listing", "vector_store_files", ["store_id", "created_at", "file_id"]
    )
    op.create_index("ix_vector_store_files_file_id", "vector_store_files", ["file_id"])
    op.create_index("ix_vector_store_files_batch_id", "vector_store_files", ["batch_id"])
    op.create_table(
        "vector_store_file_batches",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("store_id", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("cancelled", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_vector_store_file_batches_store_id", "vector_store_file_batches", ["store_id"])


def downgrade() -> None:
    op.drop_table("vector_store_file_batches")
    op.drop_table("vector_store_files")
    op.drop_table("vector_store_objects")
