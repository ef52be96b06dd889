"""Metadata in SQL through SQLAlchemy Core: SQLite (WAL) by default, PostgreSQL at scale.

Every operation is one synchronous function of a ``Connection``, run the cheapest way for the backend:
on SQLite the whole function runs in one worker thread on a pooled ``sqlite3`` connection (a thread hop
per operation, not per driver call), and writers of one process queue on a lock instead of spinning in
SQLite's busy handler; on PostgreSQL it runs on the asyncpg event-loop driver through ``run_sync``.
Single-row lookups by primary or unique key on SQLite run inline on the event loop (tens of
microseconds, far less than a thread handoff) on a connection that gives up after a few milliseconds
if the database is busy, and then take the thread path (docs/decisions.md, D10).

The schema is owned by the Alembic migrations in ``migrations/``; ``migrate()`` applies them under a
lock (a file lock beside the SQLite database, an advisory lock on PostgreSQL) so several processes can
start at once. Lists are keyset-paginated on ``(tenant, bucket, id)`` indexes and object ids sort by
creation time, so a page costs the same at any table size and a cursor never skips or repeats a row.
Connection and locking failures surface as ``Unavailable``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ..core.errors import Conflict, Unavailable
from ..core.keys import prefix_end
from ..core.paths import WORKSPACE_BUCKET, enclosing_folders, folder_clash
from ..core.ports import KeySize, Order
from ..core.records import ApiKeyRecord, ListPage, ObjectRecord, UploadSession

T = TypeVar("T")
Work = Callable[[sa.Connection], T]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
POSTGRES_MIGRATION_LOCK = 0x6361_6972_6E  # "cairn"

metadata = sa.MetaData()


def _placement() -> list[sa.Column[Any]]:
    """Where an object lives and what it is called: shared by objects and the uploads that make them."""
    return [
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("bucket", sa.String(64), nullable=False),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("filename", sa.String(1024), nullable=False),
        sa.Column("mime_type", sa.String(255), nullable=False),
    ]


objects = sa.Table(
    "objects",
    metadata,
    *_placement(),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("purpose", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=True),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("revoked_at", sa.BigInteger, nullable=True),
)

upload_sessions = sa.Table(
    "upload_sessions",
    metadata,
    *_placement(),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=True),
    sa.Column("purpose", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("object_id", sa.String(64), nullable=True),
    sa.Column("object_expires_after", sa.BigInteger, nullable=True),
    sa.Column("client_metadata", sa.String(4096), nullable=True),
    sa.Column("in_parts", sa.Boolean, nullable=False, server_default=sa.false()),
)

_live = sa.or_(objects.c.expires_at.is_(None), objects.c.expires_at > sa.bindparam("now"))
# Objects are found by id alone and their owner checked in Python (``_owned_object``): with the owner's
# columns in the WHERE clause, PostgreSQL without statistics (a young table, or autovacuum off) takes
# the (tenant, bucket, key) index for them and reads every row of the bucket to find one id.
GET_OBJECT_BY_ID = objects.select().where(objects.c.id == sa.bindparam("object_id"))
DELETE_OBJECT_BY_ID = objects.delete().where(objects.c.id == sa.bindparam("object_id")).returning(*objects.c)
INSERT_OBJECT = objects.insert()
ANY_API_KEY = sa.select(api_keys.c.id).limit(1)
FIND_API_KEY = api_keys.select().where(
    api_keys.c.key_hash == sa.bindparam("key_hash"), api_keys.c.revoked_at.is_(None)
)


def async_database_url(url: str) -> str:
    """Pick the async driver for a plain ``postgresql://`` URL (SQLite uses the standard ``sqlite3``)."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


# SQLSTATE classes of a server that cannot serve now: a connection failed or was closed (08), no
# connection or memory left (53), shutting down, starting up or terminated by an operator (57P)
UNAVAILABLE_SQLSTATES = ("08", "53", "57P")


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except (sa.exc.OperationalError, sa.exc.InterfaceError, OSError) as exc:
        raise Unavailable("The metadata database is unavailable. Retry shortly.") from exc
    except sa.exc.TimeoutError as exc:  # every pooled connection stayed busy
        raise Unavailable("The metadata database is busy. Retry shortly.") from exc
    except sa.exc.DBAPIError as exc:
        if exc.connection_invalidated:
            raise Unavailable("The metadata database connection was lost. Retry shortly.") from exc
        if str(getattr(exc.orig, "sqlstate", None) or "").startswith(UNAVAILABLE_SQLSTATES):
            raise Unavailable("The metadata database is unavailable. Retry shortly.") from exc
        raise


SQLITE_THREADS = 8
INLINE_BUSY_TIMEOUT_MS = 5


class _SqliteRunner:
    """Runs each operation in one worker thread; one writer per process at a time.

    As many threads as pooled connections: more would only contend for the GIL, and connections
    beyond the pool would be opened (with their PRAGMAs) and closed on every use."""

    def __init__(self, url: URL) -> None:
        self.path = Path(url.database or "")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.engine = sa.create_engine(url.set(drivername="sqlite"), pool_size=SQLITE_THREADS, max_overflow=0)
        event.listen(self.engine, "connect", _sqlite_pragmas)
        self._write_lock = threading.Lock()
        self._threads = anyio.CapacityLimiter(SQLITE_THREADS)
        # Used only from the event loop, one call at a time: one connection is enough.
        self._inline = sa.create_engine(url.set(drivername="sqlite"), poolclass=sa.pool.StaticPool)
        event.listen(self._inline, "connect", _sqlite_pragmas)
        event.listen(self._inline, "connect", _short_busy_timeout)

    async def read(self, work: Work[T]) -> T:
        return await anyio.to_thread.run_sync(self._read, work, limiter=self._threads)

    async def read_point(self, work: Work[T]) -> T:
        try:
            with self._inline.connect() as conn:
                return work(conn)
        except sa.exc.OperationalError:  # busy (a checkpoint, a recovery): wait for it off the loop
            return await self.read(work)

    async def write(self, work: Work[T]) -> T:
        return await anyio.to_thread.run_sync(self._write, work, limiter=self._threads)

    def _read(self, work: Work[T]) -> T:
        with _translated(), self.engine.connect() as conn:
            return work(conn)

    def _write(self, work: Work[T]) -> T:
        with _translated(), self._write_lock, self.engine.begin() as conn:
            return work(conn)

    async def migrate(self) -> None:
        lock_fd = os.open(f"{self.path}.migrate-lock", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            await anyio.to_thread.run_sync(fcntl.flock, lock_fd, fcntl.LOCK_EX)
            await self.write(_run_alembic_upgrade)
        finally:
            os.close(lock_fd)

    async def close(self) -> None:
        self._inline.dispose()
        await anyio.to_thread.run_sync(self.engine.dispose)


POSTGRES_CONNECT_TIMEOUT_SECONDS = 10
POSTGRES_POOL_SIZE = 20  # connections kept per process; more requests at once wait for one


class _AsyncRunner:
    """Runs each operation on an async driver (asyncpg) without threads.

    Pooled connections are not tested before use (that was a fifth of a lookup's cost): when one turns
    out dead (a restart of the server or of the network between them), the pool drops every connection
    as old as it, and a read runs again on a new one; a write answers 503 and its client retries. A
    server that does not answer at all fails each request after the connect timeout, not asyncpg's
    minute."""

    def __init__(self, url: URL) -> None:
        self.engine = create_async_engine(
            url,
            pool_size=POSTGRES_POOL_SIZE,
            max_overflow=0,  # overflow connections close on return: under load, a new backend per query
            connect_args={"timeout": POSTGRES_CONNECT_TIMEOUT_SECONDS},
        )
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    async def read(self, work: Work[T]) -> T:
        return await self._read(self.engine, work)

    async def write(self, work: Work[T]) -> T:
        with _translated():
            async with self.engine.begin() as conn:
                return await conn.run_sync(work)

    async def read_point(self, work: Work[T]) -> T:
        """One single-row lookup in autocommit: no BEGIN and ROLLBACK around it, a third of the round
        trips of the hottest queries (API keys and objects by id)."""
        return await self._read(self._autocommit, work)

    @staticmethod
    async def _read(engine: AsyncEngine, work: Work[T]) -> T:
        """A read that meets a dead connection (the server restarted) runs again, once: the pool has
        dropped every connection as old as that one by then."""
        with _translated():
            for attempt in (1, 2):
                try:
                    async with engine.connect() as conn:
                        return await conn.run_sync(work)
                except sa.exc.DBAPIError as exc:
                    if attempt == 2 or not exc.connection_invalidated:
                        raise
        raise AssertionError("unreachable")

    async def migrate(self) -> None:
        with _translated():
            async with self.engine.connect() as conn:
                await conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": POSTGRES_MIGRATION_LOCK})
                try:
                    await conn.run_sync(_run_alembic_upgrade)
                    await conn.commit()
                finally:
                    await conn.execute(
                        sa.text("SELECT pg_advisory_unlock(:k)"), {"k": POSTGRES_MIGRATION_LOCK}
                    )
                    await conn.commit()

    async def close(self) -> None:
        await self.engine.dispose()


# Transaction-level advisory locks on a key (seed 0) and on a workspace path as file or folder (seed 1)
KEY_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))")
FOLDER_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 1))")
FOLDER_LOCK_SHARED = sa.text("SELECT pg_advisory_xact_lock_shared(hashtextextended(:k, 1))")


def _place(conn: sa.Connection, record: ObjectRecord, *, replace: bool) -> ObjectRecord | None:
    """Insert ``record``; with ``replace``, in place of the object that holds its key (returned). In the
    workspace bucket, refuse a key that would be both a file and a folder (``Conflict``)."""
    postgres = conn.dialect.name == "postgresql"
    in_workspace = record.bucket == WORKSPACE_BUCKET
    if postgres and replace:
        # Writers onto one key at once would both delete nothing under READ COMMITTED and one insert
        # would then violate the unique key: take turns per key instead. (SQLite has one writer.)
        conn.execute(KEY_LOCK, {"k": f"{record.tenant}/{record.bucket}/{record.key}"})
    if postgres and in_workspace:
        _take_turns_with_clashing_keys(conn, record)
    replaced = None
    if replace:
        replaced = conn.execute(
            objects.delete()
            .where(
                objects.c.tenant == record.tenant,
                objects.c.bucket == record.bucket,
                objects.c.key == record.key,
            )
            .returning(*objects.c)
        ).first()
    conn.execute(INSERT_OBJECT, dataclasses.asdict(record))
    if in_workspace:
        # After the first write: SQLite begins the transaction with it, and from then on no other
        # process can commit a clashing key before this one ends.
        _refuse_folder_clash(conn, record)
    return None if replaced is None else _object(replaced)


def _take_turns_with_clashing_keys(conn: sa.Connection, record: ObjectRecord) -> None:
    """Hold the folders the key lies in shared and a file's own path exclusively (outermost first, so
    no two writers wait for each other): a file and a key under it never commit at once."""
    scope = f"{record.tenant}/{record.bucket}/"
    for folder in enclosing_folders(record.key):
        conn.execute(FOLDER_LOCK_SHARED, {"k": scope + folder})
    if not record.key.endswith("/"):
        conn.execute(FOLDER_LOCK, {"k": scope + record.key})


def _refuse_folder_clash(conn: sa.Connection, record: ObjectRecord) -> None:
    """``Conflict`` if a live object is a file that the key lies in, or, for a file, lies under it."""
    clashes = [objects.c.key.in_(enclosing_folders(record.key))]
    if not record.key.endswith("/"):
        under = record.key + "/"
        clashes.append(sa.and_(objects.c.key >= under, objects.c.key < prefix_end(under)))
    query = (
        sa.select(objects.c.key)
        .where(objects.c.tenant == record.tenant, objects.c.bucket == record.bucket, _live, sa.or_(*clashes))
        .limit(1)
    )
    clash = conn.execute(query, {"now": record.created_at}).scalar()
    if clash is not None:
        raise folder_clash(record.key, clash)


class SqlMetadataStore:
    def __init__(self, url: str) -> None:
        parsed = make_url(async_database_url(url))
        self.dialect = parsed.get_backend_name()
        self._db = _SqliteRunner(parsed) if self.dialect == "sqlite" else _AsyncRunner(parsed)

    async def migrate(self) -> None:
        await self._db.migrate()

    async def close(self) -> None:
        await self._db.close()

    async def ping(self) -> None:
        await self._db.read(lambda conn: conn.execute(sa.text("SELECT 1")).all())

    async def insert_object(self, record: ObjectRecord) -> None:
        await self._db.write(lambda conn: _place(conn, record, replace=False))

    async def get_object(
        self, tenant: str, bucket: str | None, object_id: str, now: int
    ) -> ObjectRecord | None:
        return await self._db.read_point(lambda conn: _owned_object(conn, tenant, bucket, object_id, now))

    async def list_objects(
        self,
        tenant: str,
        bucket: str,
        *,
        purpose: str | None,
        after: str | None,
        limit: int,
        order: Order,
        now: int,
    ) -> ListPage:
        query = objects.select().where(objects.c.tenant == tenant, objects.c.bucket == bucket, _live)
        if purpose is not None:
            query = query.where(objects.c.purpose == purpose)
        if after is not None:
            query = query.where(objects.c.id < after if order == "desc" else objects.c.id > after)
        query = query.order_by(objects.c.id.desc() if order == "desc" else objects.c.id.asc()).limit(
            limit + 1
        )
        rows = await self._db.read(lambda conn: conn.execute(query, {"now": now}).all())
        return ListPage(items=[_object(r) for r in rows[:limit]], has_more=len(rows) > limit)

    async def delete_object(
        self, tenant: str, bucket: str | None, object_id: str, now: int
    ) -> ObjectRecord | None:
        def work(conn: sa.Connection) -> ObjectRecord | None:
            if _owned_object(conn, tenant, bucket, object_id, now) is None:
                return None
            return _first_object(conn.execute(DELETE_OBJECT_BY_ID, {"object_id": object_id}))

        return await self._db.write(work)

    async def take_expired(self, now: int, limit: int) -> list[ObjectRecord]:
        due = sa.select(objects.c.id).where(objects.c.expires_at <= now).limit(limit).scalar_subquery()
        statement = objects.delete().where(objects.c.id.in_(due)).returning(*objects.c)
        rows = await self._db.write(lambda conn: conn.execute(statement).all())
        return [_object(r) for r in rows]

    async def existing_ids(self, ids: Iterable[str]) -> set[str]:
        wanted = list(ids)
        if not wanted:
            return set()
        query = sa.select(objects.c.id).where(objects.c.id.in_(wanted))
        return await self._db.read(lambda conn: set(conn.execute(query).scalars()))

    async def get_object_by_key(self, tenant: str, bucket: str, key: str, now: int) -> ObjectRecord | None:
        query = objects.select().where(
            objects.c.tenant == tenant, objects.c.bucket == bucket, objects.c.key == key, _live
        )
        return await self._db.read_point(lambda conn: _first_object(conn.execute(query, {"now": now})))

    async def list_objects_by_key(
        self,
        tenant: str,
        bucket: str,
        *,
        prefix: str,
        start_after: str | None,
        limit: int,
        now: int,
        start_at: str | None = None,
    ) -> ListPage:
        # A page may be 10,000 rows: they become records in the worker, by position (columns in the
        # record's field order), ~10x cheaper than by mapping.
        columns = [objects.c[field.name] for field in dataclasses.fields(ObjectRecord)]
        query = _key_range(sa.select(*columns), tenant, bucket, prefix, start_after, start_at)
        query = query.limit(limit + 1)
        records = await self._db.read(
            lambda conn: [ObjectRecord(*row) for row in conn.execute(query, {"now": now})]
        )
        return ListPage(items=records[:limit], has_more=len(records) > limit)

    async def list_key_sizes(
        self,
        tenant: str,
        bucket: str,
        *,
        prefix: str,
        start_after: str | None,
        limit: int,
        now: int,
        start_at: str | None = None,
    ) -> Sequence[KeySize]:
        # Three columns instead of eleven, and rows as they come: a quarter of the cost of records.
        columns = (objects.c.key, objects.c.bytes, objects.c.created_at)
        query = _key_range(sa.select(*columns), tenant, bucket, prefix, start_after, start_at).limit(limit)
        return await self._db.read(lambda conn: conn.execute(query, {"now": now}).all())

    async def delete_object_by_key(self, tenant: str, bucket: str, key: str, now: int) -> ObjectRecord | None:
        statement = (
            objects.delete()
            .where(objects.c.tenant == tenant, objects.c.bucket == bucket, objects.c.key == key, _live)
            .returning(*objects.c)
        )
        return await self._db.write(lambda conn: _first_object(conn.execute(statement, {"now": now})))

    async def list_buckets(self, tenant: str, now: int) -> list[str]:
        query = (
            sa.select(objects.c.bucket)
            .where(objects.c.tenant == tenant, _live)
            .distinct()
            .order_by(objects.c.bucket)
        )
        return await self._db.read(lambda conn: list(conn.execute(query, {"now": now}).scalars()))

    async def insert_session(self, session: UploadSession) -> None:
        values = dataclasses.asdict(session)
        await self._db.write(lambda conn: conn.execute(upload_sessions.insert(), values))

    async def get_session(self, tenant: str, session_id: str, now: int) -> UploadSession | None:
        query = upload_sessions.select().where(
            upload_sessions.c.id == session_id,
            upload_sessions.c.tenant == tenant,
            upload_sessions.c.expires_at > now,
        )
        row = await self._db.read_point(lambda conn: conn.execute(query).first())
        return None if row is None else UploadSession(**row._mapping)

    async def delete_session(self, tenant: str, session_id: str) -> UploadSession | None:
        statement = (
            upload_sessions.delete()
            .where(upload_sessions.c.id == session_id, upload_sessions.c.tenant == tenant)
            .returning(*upload_sessions.c)
        )
        row = await self._db.write(lambda conn: conn.execute(statement).first())
        return None if row is None else UploadSession(**row._mapping)

    async def replace_object(self, record: ObjectRecord) -> ObjectRecord | None:
        return await self._db.write(lambda conn: _place(conn, record, replace=True))

    async def complete_session(self, session_id: str, record: ObjectRecord) -> ObjectRecord | None:
        def work(conn: sa.Connection) -> ObjectRecord | None:
            marked = conn.execute(
                upload_sessions.update()
                .where(upload_sessions.c.id == session_id, upload_sessions.c.object_id.is_(None))
                .values(object_id=record.id)
            )
            if marked.rowcount != 1:
                raise Conflict("The upload is no longer pending: it was completed, cancelled or expired.")
            return _place(conn, record, replace=True)

        return await self._db.write(work)

    async def expired_sessions(self, now: int, limit: int) -> list[UploadSession]:
        query = (
            upload_sessions.select()
            .where(upload_sessions.c.expires_at <= now)
            .order_by(upload_sessions.c.expires_at)
            .limit(limit)
        )
        rows = await self._db.read(lambda conn: conn.execute(query).all())
        return [UploadSession(**r._mapping) for r in rows]

    async def insert_api_key(self, record: ApiKeyRecord) -> None:
        values = dataclasses.asdict(record)
        await self._db.write(lambda conn: conn.execute(api_keys.insert(), values))

    async def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        row = await self._db.read_point(
            lambda conn: conn.execute(FIND_API_KEY, {"key_hash": key_hash}).first()
        )
        return None if row is None else ApiKeyRecord(**row._mapping)

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        query = api_keys.select().order_by(api_keys.c.created_at, api_keys.c.id)
        rows = await self._db.read(lambda conn: conn.execute(query).all())
        return [ApiKeyRecord(**r._mapping) for r in rows]

    async def revoke_api_key(self, key_id: str, now: int) -> bool:
        statement = (
            api_keys.update()
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return await self._db.write(lambda conn: conn.execute(statement).rowcount == 1)

    async def has_api_keys(self) -> bool:
        return await self._db.read_point(lambda conn: conn.execute(ANY_API_KEY).first() is not None)


def _key_range(
    query: sa.Select[Any],
    tenant: str,
    bucket: str,
    prefix: str,
    start_after: str | None,
    start_at: str | None,
) -> sa.Select[Any]:
    """Live objects under ``prefix`` in key order, strictly after ``start_after``, from ``start_at`` on.

    Keys compare bytewise on both backends (PostgreSQL: collation "C"), so the keys under a prefix are
    one range of the (tenant, bucket, key) index. One lower bound, the tightest: given two, SQLite seeks
    to one and filters by the other, which would make every page read again the rows of all the pages
    before it."""
    query = query.where(objects.c.tenant == tenant, objects.c.bucket == bucket, _live)
    lower = max(prefix, start_at or "")
    if start_after is not None and start_after >= lower:
        query = query.where(objects.c.key > start_after)
    elif lower:
        query = query.where(objects.c.key >= lower)
    if (end := prefix_end(prefix)) is not None:
        query = query.where(objects.c.key < end)
    return query.order_by(objects.c.key)


def _object(row: sa.Row[Any]) -> ObjectRecord:
    return ObjectRecord(**row._mapping)


def _owned_object(
    conn: sa.Connection, tenant: str, bucket: str | None, object_id: str, now: int
) -> ObjectRecord | None:
    """The live object ``object_id`` if ``tenant`` owns it in ``bucket`` (None: in any bucket)."""
    found = _first_object(conn.execute(GET_OBJECT_BY_ID, {"object_id": object_id}))
    if (
        found is None
        or found.tenant != tenant
        or (bucket is not None and found.bucket != bucket)
        or (found.expires_at is not None and found.expires_at <= now)
    ):
        return None
    return found


def _first_object(result: sa.CursorResult[Any]) -> ObjectRecord | None:
    row = result.first()
    return None if row is None else _object(row)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # an acknowledged object must survive a power loss
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _short_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute(f"PRAGMA busy_timeout={INLINE_BUSY_TIMEOUT_MS}")


def _run_alembic_upgrade(connection: sa.Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
