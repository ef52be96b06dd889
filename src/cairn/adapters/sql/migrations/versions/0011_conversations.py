"""Conversations (``adapters/sql/conversations.py``), on both dialects: the conversations and their
items, each item a JSON object as text with its place in the conversation (``seq``). The primary key
``(conversation_id, seq)`` is the index that item pages walk; ``ix_conversation_items_item_id`` finds an
item by its id, and keeps ids unique within their conversation. ``last_seq`` numbers the appends: an
append bumps it, which on PostgreSQL also locks the conversation's row, so appends to one conversation
take their turns.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "conversation_items",
        sa.Column("conversation_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("item_id", sa.String(256), nullable=False),
        sa.Column("item", sa.Text, nullable=False),
    )
    op.create_index(
        "ix_conversation_items_item_id", "conversation_items", ["conversation_id", "item_id"], unique=True
    )


def downgrade() -> None:
    op.drop_table("conversation_items")
    op.drop_table("conversations")
