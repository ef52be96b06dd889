"""What upload sessions remember beyond their target: how long the object they make should live
(OpenAI Uploads' expires_after), the client's own metadata (tus Upload-Metadata, echoed verbatim) and
whether the upload arrives as parts (OpenAI Uploads) or as appends at an offset.

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
    op.add_column("upload_sessions", sa.Column("client_metadata", sa.String(4096), nullable=True))
    op.add_column(
        "upload_sessions", sa.Column("in_parts", sa.Boolean, nullable=False, server_default=sa.false())
    )


def downgrade() -> None:
    for column in ("in_parts", "client_metadata", "object_expires_after"):
        op.drop_column("upload_sessions", column)
