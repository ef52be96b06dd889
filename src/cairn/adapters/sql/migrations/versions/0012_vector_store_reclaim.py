"""Expired vector stores: ``reclaimed_at`` says when the maintenance loop dropped an expired store's chunks
(``core.vectors.stores``); ``ix_vector_store_objects_unreclaimed`` holds only the stores that expire
and were not reclaimed yet, in ``expires_at`` order, so a pass reads the ones due and never the ones
already done.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

UNRECLAIMED = sa.text("expires_at IS NOT NULL AND reclaimed_at IS NULL")


def upgrade() -> None:
    op.add_column("vector_store_objects", sa.Column("reclaimed_at", sa.BigInteger, nullable=True))
    op.create_index(
        "ix_vector_store_objects_unreclaimed",
        "vector_store_objects",
        ["expires_at"],
        postgresql_where=UNRECLAIMED,
        sqlite_where=UNRECLAIMED,
    )


def downgrade() -> None:
    op.drop_index("ix_vector_store_objects_unreclaimed", "vector_store_objects")
    op.drop_column("vector_store_objects", "reclaimed_at")
