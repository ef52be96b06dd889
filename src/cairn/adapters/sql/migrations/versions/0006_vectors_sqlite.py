"""The vector index on SQLite (``adapters/vectors_sqlite.py``, D30); nothing on PostgreSQL, whose vector
tables (pgvector) come in 0007.

- ``vector_stores_index``: one row per store, its dimension and how many chunks it holds. ``id`` is never
  reused (AUTOINCREMENT), so a store dropped and made again under the same name is a new partition.
- ``vector_files``: one row per file in a store, its attributes (a JSON object) and its chunk count.
- ``vector_chunks``: a file's chunks, their text, their embedding (float32, little-endian) and its sign
  bits (the binary code the approximate search scans). ``id`` only grows (AUTOINCREMENT): the chunks a
  reader has not seen yet are those above the largest id it has.
- ``vector_chunks_fts``: FTS5 over the chunk text, contentless, kept by triggers in the transaction that
  writes the chunks. Its ``store`` column holds one token per store (``s<id>``), so a keyword search
  intersects with the store's rows inside the full-text index, and is weighted 0 in bm25.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLES = (
    """CREATE TABLE vector_stores_index (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        store_id TEXT NOT NULL UNIQUE,
        dimension INTEGER NOT NULL,
        chunks INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE vector_files (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        store INTEGER NOT NULL,
        file_id TEXT NOT NULL,
        attributes TEXT NOT NULL,
        chunks INTEGER NOT NULL,
        UNIQUE (store, file_id)
    )""",
    """CREATE TABLE vector_chunks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        store INTEGER NOT NULL,
        file INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        text TEXT NOT NULL,
        embedding BLOB NOT NULL,
        code BLOB NOT NULL
    )""",
    "CREATE INDEX ix_vector_chunks_store ON vector_chunks (store, id)",
    "CREATE INDEX ix_vector_chunks_file ON vector_chunks (file)",
    """CREATE VIRTUAL TABLE vector_chunks_fts USING fts5(
        store, text, content='', tokenize='unicode61 remove_diacritics 2'
    )""",
    """CREATE TRIGGER vector_chunks_indexed AFTER INSERT ON vector_chunks BEGIN
        INSERT INTO vector_chunks_fts (rowid, store, text) VALUES (new.id, 's' || new.store, new.text);
    END""",
    """CREATE TRIGGER vector_chunks_unindexed AFTER DELETE ON vector_chunks BEGIN
        INSERT INTO vector_chunks_fts (vector_chunks_fts, rowid, store, text)
        VALUES ('delete', old.id, 's' || old.store, old.text);
    END""",
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for statement in TABLES:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in ("vector_chunks_fts", "vector_chunks", "vector_files", "vector_stores_index"):
        op.execute(f"DROP TABLE {table}")
