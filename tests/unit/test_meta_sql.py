"""The SQL metadata adapter: migrations, driver selection, failure translation."""

from __future__ import annotations

import subprocess
import sys

import pytest
import sqlalchemy as sa

from cairn.adapters.meta_sql import SqlMetadataStore, async_database_url
from cairn.core.errors import Unavailable

pytestmark = pytest.mark.anyio


def test_plain_postgres_urls_get_the_async_driver() -> None:
    assert async_database_url("sqlite:///x.db") == "sqlite:///x.db"
    assert async_database_url("postgresql://u:p@h/db") == "postgresql+asyncpg://u:p@h/db"
    assert async_database_url("postgresql+asyncpg://h/db") == "postgresql+asyncpg://h/db"


async def test_migrate_is_idempotent_and_creates_the_listing_indexes(meta: SqlMetadataStore) -> None:
    await meta.migrate()
    version_query = sa.text("SELECT version_num FROM alembic_version")
    version = await meta._db.read(lambda c: c.execute(version_query).scalar_one())
    indexes = await meta._db.read(lambda c: {i["name"] for i in sa.inspect(c).get_indexes("objects")})
    assert version == "0003"
    assert {"ix_objects_listing", "ix_objects_purpose", "ix_objects_expires_at"} <= indexes


def test_concurrent_migrations_from_several_processes(database_url: str) -> None:
    script = (
        "import asyncio, sys\n"
        "from cairn.adapters.meta_sql import SqlMetadataStore\n"
        "async def main():\n"
        "    s = SqlMetadataStore(sys.argv[1]); await s.migrate(); await s.close()\n"
        "asyncio.run(main())\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, database_url]) for _ in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]


async def test_unreachable_database_is_unavailable() -> None:
    store = SqlMetadataStore("postgresql://nobody@127.0.0.1:1/none")
    try:
        with pytest.raises(Unavailable):
            await store.ping()
    finally:
        await store.close()
