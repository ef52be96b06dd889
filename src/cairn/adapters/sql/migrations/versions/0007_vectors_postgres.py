"""Vector stores on PostgreSQL: the pgvector extension (>= 0.8, for iterative index scans), and the tables
of the pgvector index (``adapters.vectors_pg``). On SQLite this revision does nothing: its vector index
lives in the tables of revision 0006.

One table holds the chunks of every store, whatever its dimension: ``embedding`` is a ``vector`` of no
fixed size, and each chunk carries its store's ``dimension``. HNSW indexes only vectors of one size, so
the index adds one partial HNSW index per dimension in use, on
``(embedding::vector(N)) vector_cosine_ops WHERE dimension = N``, when the first store of that dimension
is made (a handful of indexes, never one per store), and searches one store with
``hnsw.iterative_scan = relaxed_order`` so that the chunks of other stores never starve its results.
The primary key leads with ``store_id``, so the planner can read a small store whole and sort it
exactly instead (docs/decisions.md, D31).

``tsv`` holds the words of a chunk for keyword search, with the ``simple`` configuration: lower-cased
words, no stemming and no stop words, as SQLite's FTS5 tokenizer indexes them, so both backends find
the same chunks for the same words, in any language.

Revision ID: 0007
Revises: 0006
"""

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

PGVECTOR_MINIMUM = (0, 8)
NEEDS_PGVECTOR = "PostgreSQL needs the pgvector extension (>= 0.8) for vector stores: "


class Vector(sa.types.UserDefinedType[str]):
    """pgvector's ``vector``, of any dimension: named here so the table can be created."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "vector"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    _create_pgvector(bind)
    op.create_table(
        "vector_stores_index",
        sa.Column("store_id", sa.String(64), primary_key=True),
        sa.Column("dimension", sa.Integer, nullable=False),
        sa.CheckConstraint("dimension > 0", name="ck_vector_stores_index_dimension"),
    )
    op.create_table(
        "vector_files",
        sa.Column("store_id", sa.String(64), primary_key=True),
        sa.Column("file_id", sa.String(64), primary_key=True),
        sa.Column("attributes", postgresql.JSONB, nullable=False),
        sa.ForeignKeyConstraint(["store_id"], ["vector_stores_index.store_id"], ondelete="CASCADE"),
    )
    op.create_table(
        "vector_chunks",
        sa.Column("store_id", sa.String(64), primary_key=True),
        sa.Column("file_id", sa.String(64), primary_key=True),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("dimension", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("embedding", Vector(), nullable=False),
        sa.Column("tsv", postgresql.TSVECTOR, sa.Computed("to_tsvector('simple', text)", persisted=True)),
        sa.ForeignKeyConstraint(
            ["store_id", "file_id"],
            ["vector_files.store_id", "vector_files.file_id"],
            ondelete="CASCADE",
        ),
        sa.CheckConstraint("vector_dims(embedding) = dimension", name="ck_vector_chunks_dimension"),
    )
    op.create_index("ix_vector_chunks_tsv", "vector_chunks", ["tsv"], postgresql_using="gin")


def _create_pgvector(bind: sa.Connection) -> None:
    """``CREATE EXTENSION vector``, or an error that says what the server lacks and what to do."""
    available = bind.execute(
        sa.text("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'")
    ).scalar()
    if available is None:
        raise RuntimeError(
            NEEDS_PGVECTOR + "this server does not have it. Install it (a managed PostgreSQL that offers "
            "pgvector, the pgvector/pgvector image, or the postgresql-NN-pgvector package of the PostgreSQL "
            "project's apt and yum repositories), then start Cairn again."
        )
    try:
        bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
    except sa.exc.DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != "42501":  # insufficient_privilege
            raise
        raise RuntimeError(
            NEEDS_PGVECTOR + "the database user may not create it. Run CREATE EXTENSION vector; in this "
            "database as a superuser (on a managed service, its administrator role), then start Cairn again."
        ) from exc
    installed = sa.text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    version = bind.execute(installed).scalar_one()
    if tuple(int(part) for part in version.split(".")[:2]) < PGVECTOR_MINIMUM:
        raise RuntimeError(
            NEEDS_PGVECTOR + f"this database has {version}. Run ALTER EXTENSION vector UPDATE; as its owner "
            f"(the server offers {available}; install a newer pgvector first if that is older than 0.8), "
            "then start Cairn again."
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_table("vector_chunks")
    op.drop_table("vector_files")
    op.drop_table("vector_stores_index")
