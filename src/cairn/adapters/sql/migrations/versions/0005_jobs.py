"""Jobs: durable background work, claimed under leases by any worker of any replica.

The claim query walks ``ix_jobs_claimable`` in ``run_at`` order; it holds only the jobs that can still
be claimed (queued, or running under a lease that may end), so ended jobs never slow a claim.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

CLAIMABLE = sa.text("status IN ('queued', 'running')")


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("run_at", sa.Double, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("worker", sa.String(128), nullable=True),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("result", sa.JSON, nullable=True),
        sa.Column("error", sa.JSON, nullable=True),
        sa.Column("ended_at", sa.Double, nullable=True),
    )
    op.create_index(
        "ix_jobs_claimable",
        "jobs",
        ["run_at", "kind"],
        postgresql_where=CLAIMABLE,
        sqlite_where=CLAIMABLE,
    )


def downgrade() -> None:
    op.drop_table("jobs")
