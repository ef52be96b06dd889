"""The SQL adapter: migrations, driver selection, failure translation, and the row stores' queries."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import subprocess
import sys
from dataclasses import dataclass

import anyio
import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from cairn.adapters.sql.engine import SqlDatabase, async_database_url
from cairn.adapters.sql.objects import SqlObjectRows
from cairn.adapters.sql.sessions import SqlUploadSessionRows
from cairn.compose import Composition
from cairn.core.errors import Conflict, Unavailable
from cairn.core.records import ObjectRecord, UploadSession

pytestmark = pytest.mark.anyio


@dataclass
class Rows:
    """The row stores of one database, as one process or replica holds them."""

    database: SqlDatabase
    objects: SqlObjectRows
    sessions: SqlUploadSessionRows


def rows_on(url: str) -> Rows:
    database = SqlDatabase(url)
    return Rows(database, SqlObjectRows(database), SqlUploadSessionRows(database))


def test_plain_postgres_urls_get_the_async_driver() -> None:
    assert async_database_url("sqlite:///x.db") == "sqlite:///x.db"
    assert async_database_url("postgresql://u:p@h/db") == "postgresql+asyncpg://u:p@h/db"
    assert async_database_url("postgresql+asyncpg://h/db") == "postgresql+asyncpg://h/db"


async def test_migrate_is_idempotent_and_creates_the_listing_indexes(composition: Composition) -> None:
    database = composition.database
    await database.migrate()
    version_query = sa.text("SELECT version_num FROM alembic_version")
    version = await database.runner.read(lambda c: c.execute(version_query).scalar_one())
    indexes = await database.runner.read(
        lambda c: {
            i["name"]
            for table in ("objects", "chat_completions", "jobs", "responses", "conversation_items")
            for i in sa.inspect(c).get_indexes(table)
        }
    )
    assert version == "0015"
    assert {
        "ix_objects_listing",
        "ix_objects_purpose",
        "ix_objects_expires_at",
        "ix_chat_completions_tenant_created_at",
        "ix_jobs_claimable",
        "ix_responses_tenant_id",
        "ix_responses_tenant_model_id",
        "ix_conversation_items_item_id",
    } <= indexes


def test_concurrent_migrations_from_several_processes(database_url: str) -> None:
    script = (
        "import asyncio, sys\n"
        "from cairn.adapters.sql.engine import SqlDatabase\n"
        "async def main():\n"
        "    s = SqlDatabase(sys.argv[1]); await s.migrate(); await s.close()\n"
        "asyncio.run(main())\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, database_url]) for _ in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]


async def test_unreachable_database_is_unavailable() -> None:
    store = SqlDatabase("postgresql://nobody@127.0.0.1:1/none")
    try:
        with pytest.raises(Unavailable):
            await store.ping()
    finally:
        await store.close()


async def test_racing_writers_never_make_a_path_both_a_file_and_a_folder(database_url: str) -> None:
    """Two stores on one database, as two processes or replicas, commit a file and a key under it (a
    file or a folder marker) at the same moment, by insert, replacement or a session's completion:
    exactly one of each pair wins, whichever it is."""
    stores = [rows_on(database_url) for _ in range(2)]
    await stores[0].database.migrate()
    now = 1_800_000_000
    ids = itertools.count()

    def record(key: str) -> ObjectRecord:
        return ObjectRecord(
            id=f"file-{next(ids):032x}",
            tenant="t",
            bucket="workspace",
            key=key,
            filename="f",
            mime_type="text/plain",
            bytes=1,
            sha256="0" * 64,
            purpose="p",
            created_at=now,
            expires_at=None,
        )

    async def complete(store: Rows, object_record: ObjectRecord) -> ObjectRecord | None:
        session = UploadSession(
            id=f"upload-{next(ids):032x}",
            tenant="t",
            bucket="workspace",
            key=object_record.key,
            filename="f",
            mime_type="text/plain",
            size=1,
            sha256=None,
            purpose="p",
            created_at=now,
            expires_at=now + 3600,
            object_id=None,
            object_expires_after=None,
            client_metadata=None,
        )
        await store.sessions.insert_session(session)
        return await store.sessions.complete_session(session.id, object_record)

    writes = [
        lambda store, r: store.objects.insert_object(r),
        lambda store, r: store.objects.replace_object(r),
        complete,
    ]
    try:
        for round_ in range(24):
            first, second = writes[round_ % 3], writes[round_ // 3 % 3]
            file, under = f"r{round_}", f"r{round_}/x" if round_ % 2 else f"r{round_}/"
            results = await asyncio.gather(
                first(stores[0], record(file)), second(stores[1], record(under)), return_exceptions=True
            )
            assert [isinstance(result, Conflict) for result in results].count(True) == 1, (round_, results)
            listed = await stores[0].objects.list_key_sizes(
                "t", "workspace", prefix=f"r{round_}", start_after=None, limit=10, now=now
            )
            assert [row[0] for row in listed] in ([file], [under]), (round_, listed)
    finally:
        for store in stores:
            await store.database.close()


async def test_objects_by_id_are_read_through_the_primary_key_alone(postgres_url: str) -> None:
    """With no statistics (a young table, or autovacuum off) PostgreSQL's planner takes the (tenant,
    bucket, key) index for a lookup that names the owner too, and reads the whole bucket for one id."""
    store = rows_on(postgres_url)
    await store.database.migrate()
    fill = sa.text(
        "INSERT INTO objects (id, tenant, bucket, key, filename, mime_type, bytes, sha256, purpose,"
        " created_at) SELECT 'file-' || lpad(n::text, 32, '0'), 't', 'b', 'k' || n, 'f', 'text/plain', 1,"
        " '', 'p', n FROM generate_series(1, 5000) AS n"
    )
    await store.database.runner.write(lambda c: c.execute(fill))
    ids = [f"file-{n:032d}" for n in range(1, 5001, 250)]
    lookups = 6 * len(ids)  # a delete looks the object up, then deletes it by id
    try:
        for object_id in ids:
            assert (await store.objects.get_object("t", "b", object_id, now=0)) is not None
            assert (await store.objects.get_object("t", None, object_id, now=0)) is not None
            assert (await store.objects.get_object("u", "b", object_id, now=0)) is None
            assert (await store.objects.delete_object("t", "c", object_id, now=0)) is None
            assert (await store.objects.delete_object("t", "b", object_id, now=0)) is not None
    finally:
        await store.database.close()  # the server flushes a connection's statistics when it ends

    reader = SqlDatabase(postgres_url)
    query = sa.text(
        "SELECT indexrelname, idx_scan, idx_tup_read FROM pg_stat_user_indexes WHERE relname = 'objects'"
    )
    try:
        for _ in range(50):
            scans = {row[0]: row[1:] for row in await reader.runner.read(lambda c: c.execute(query).all())}
            if scans["objects_pkey"][0] >= lookups:
                break
            await anyio.sleep(0.1)
    finally:
        await reader.close()
    assert scans["objects_pkey"] == (lookups, lookups)
    assert {name: scan for name, scan in scans.items() if name != "objects_pkey"} == {
        name: (0, 0)
        for name in ("uq_objects_key", "ix_objects_listing", "ix_objects_purpose", "ix_objects_expires_at")
    }


async def test_postgres_migration_creates_pgvector_and_the_vector_index_tables(postgres_url: str) -> None:
    database = SqlDatabase(postgres_url)
    await database.migrate()

    def fill(c: sa.Connection) -> str:
        c.execute(sa.text("INSERT INTO vector_stores_index VALUES ('vs_1', 3)"))
        c.execute(sa.text("""INSERT INTO vector_files VALUES ('vs_1', 'file-1', '{"k": 1}')"""))
        chunk = "INSERT INTO vector_chunks VALUES ('vs_1', 'file-1', 0, 3, 'Running dogs ran', '[1,0,0]')"
        c.execute(sa.text(chunk))
        return c.execute(sa.text("SELECT tsv::text FROM vector_chunks")).scalar_one()

    def chunk_of_another_dimension(c: sa.Connection) -> None:
        c.execute(sa.text("INSERT INTO vector_chunks VALUES ('vs_1', 'file-1', 1, 3, 'x', '[1,0]')"))

    def drop_store(c: sa.Connection) -> int:
        c.execute(sa.text("DELETE FROM vector_stores_index WHERE store_id = 'vs_1'"))
        return c.execute(sa.text("SELECT count(*) FROM vector_chunks")).scalar_one()

    version_query = sa.text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    try:
        version = await database.runner.read(lambda c: c.execute(version_query).scalar_one())
        assert tuple(int(part) for part in version.split(".")[:2]) >= (0, 8)
        # 'simple': every word, lower-cased, none stemmed
        assert await database.runner.write(fill) == "'dogs':2 'ran':3 'running':1"
        with pytest.raises(sa.exc.IntegrityError):
            await database.runner.write(chunk_of_another_dimension)
        assert await database.runner.write(drop_store) == 0
    finally:
        await database.close()


async def test_postgres_migration_says_who_must_create_pgvector(postgres_url: str) -> None:
    """pgvector is not a trusted extension: a user who owns the database but is no superuser cannot create
    it. The migration says so, and goes through once an administrator has created it."""
    role = f"cairn_owner_{secrets.token_hex(4)}"
    url = make_url(postgres_url)
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'CREATE ROLE "{role}" LOGIN')
        await admin.execute(f'ALTER DATABASE "{url.database}" OWNER TO "{role}"')
        owner = SqlDatabase(url.set(username=role).render_as_string(hide_password=False))
        try:
            with pytest.raises(RuntimeError, match=r"pgvector extension \(>= 0.8\).*CREATE EXTENSION vector"):
                await owner.migrate()
            await admin.execute("CREATE EXTENSION vector")
            await owner.migrate()
        finally:
            await owner.close()
    finally:
        await admin.execute(f'REASSIGN OWNED BY "{role}" TO postgres')
        await admin.execute(f'DROP ROLE "{role}"')
        await admin.close()
