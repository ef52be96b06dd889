"""Metadata in SQL through SQLAlchemy Core (async): SQLite (WAL) by default, PostgreSQL at scale.

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
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import anyio
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from ..core.errors import Unavailable
from ..core.ports import Order
from ..core.records import ApiKeyRecord, ListPage, ObjectRecord

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
POSTGRES_MIGRATION_LOCK = 0x6361_6972_6E  # "cairn"

metadata = sa.MetaData()

objects = sa.Table(
    "objects",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("bucket", sa.String(64), nullable=False),
    sa.Column("key", sa.String(1024), nullable=False),
    sa.Column("filename", sa.String(1024), nullable=False),
    sa.Column("mime_type", sa.String(255), nullable=False),
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


def async_database_url(url: str) -> str:
    """Pick the async driver for a plain ``sqlite:///`` or ``postgresql://`` URL."""
    parsed = make_url(url)
    driver = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}.get(parsed.drivername)
    return parsed.set(drivername=driver).render_as_string(hide_password=False) if driver else url


@contextlib.asynccontextmanager
async def _translated() -> AsyncIterator[None]:
    try:
        yield
    except (sa.exc.OperationalError, sa.exc.InterfaceError, OSError) as exc:
        raise Unavailable("The metadata database is unavailable. Retry shortly.") from exc
    except sa.exc.DBAPIError as exc:
        if exc.connection_invalidated:
            raise Unavailable("The metadata database connection was lost. Retry shortly.") from exc
        raise


def _live(now: int) -> sa.ColumnElement[bool]:
    return sa.or_(objects.c.expires_at.is_(None), objects.c.expires_at > now)


def _object(row: sa.Row[Any]) -> ObjectRecord:
    return ObjectRecord(**row._mapping)


def _api_key(row: sa.Row[Any]) -> ApiKeyRecord:
    return ApiKeyRecord(**row._mapping)


class SqlMetadataStore:
    def __init__(self, url: str) -> None:
        self.url = async_database_url(url)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            self._sqlite_path = Path(parsed.database or "")
            self._sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_async_engine(self.url, pool_size=8, max_overflow=8)
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_async_engine(self.url, pool_size=10, max_overflow=10, pool_pre_ping=True)

    async def migrate(self) -> None:
        async with _translated():
            if self.dialect == "sqlite":
                lock_fd = os.open(
                    f"{self._sqlite_path}.migrate-lock", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600
                )
                try:
                    await anyio.to_thread.run_sync(fcntl.flock, lock_fd, fcntl.LOCK_EX)
                    await self._upgrade()
                finally:
                    os.close(lock_fd)
            else:
                await self._upgrade()

    async def _upgrade(self) -> None:
        async with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                await conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": POSTGRES_MIGRATION_LOCK})
            try:
                await conn.run_sync(_run_alembic_upgrade)
                await conn.commit()
            finally:
                if self.dialect == "postgresql":
                    await conn.execute(
                        sa.text("SELECT pg_advisory_unlock(:k)"), {"k": POSTGRES_MIGRATION_LOCK}
                    )
                    await conn.commit()

    async def close(self) -> None:
        await self.engine.dispose()

    @contextlib.asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        async with _translated(), self.engine.connect() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        async with _translated(), self.engine.begin() as conn:
            yield conn

    async def ping(self) -> None:
        async with self._read() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def insert_object(self, record: ObjectRecord) -> None:
        async with self._write() as conn:
            await conn.execute(objects.insert().values(**dataclasses.asdict(record)))

    async def get_object(self, tenant: str, bucket: str, object_id: str, now: int) -> ObjectRecord | None:
        query = objects.select().where(
            objects.c.id == object_id, objects.c.tenant == tenant, objects.c.bucket == bucket, _live(now)
        )
        async with self._read() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _object(row)

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
        query = objects.select().where(objects.c.tenant == tenant, objects.c.bucket == bucket, _live(now))
        if purpose is not None:
            query = query.where(objects.c.purpose == purpose)
        if after is not None:
            query = query.where(objects.c.id < after if order == "desc" else objects.c.id > after)
        query = query.order_by(objects.c.id.desc() if order == "desc" else objects.c.id.asc()).limit(
            limit + 1
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return ListPage(items=[_object(r) for r in rows[:limit]], has_more=len(rows) > limit)

    async def delete_object(self, tenant: str, bucket: str, object_id: str, now: int) -> ObjectRecord | None:
        statement = (
            objects.delete()
            .where(
                objects.c.id == object_id, objects.c.tenant == tenant, objects.c.bucket == bucket, _live(now)
            )
            .returning(*objects.c)
        )
        async with self._write() as conn:
            row = (await conn.execute(statement)).first()
        return None if row is None else _object(row)

    async def take_expired(self, now: int, limit: int) -> list[ObjectRecord]:
        due = sa.select(objects.c.id).where(objects.c.expires_at <= now).limit(limit).scalar_subquery()
        statement = objects.delete().where(objects.c.id.in_(due)).returning(*objects.c)
        async with self._write() as conn:
            rows = (await conn.execute(statement)).all()
        return [_object(r) for r in rows]

    async def existing_ids(self, ids: Iterable[str]) -> set[str]:
        wanted = list(ids)
        if not wanted:
            return set()
        async with self._read() as conn:
            rows = await conn.execute(sa.select(objects.c.id).where(objects.c.id.in_(wanted)))
        return {r.id for r in rows}

    async def insert_api_key(self, record: ApiKeyRecord) -> None:
        async with self._write() as conn:
            await conn.execute(api_keys.insert().values(**dataclasses.asdict(record)))

    async def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        query = api_keys.select().where(api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None))
        async with self._read() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _api_key(row)

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        async with self._read() as conn:
            rows = await conn.execute(api_keys.select().order_by(api_keys.c.created_at, api_keys.c.id))
        return [_api_key(r) for r in rows]

    async def revoke_api_key(self, key_id: str, now: int) -> bool:
        statement = (
            api_keys.update()
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        async with self._write() as conn:
            result = await conn.execute(statement)
        return result.rowcount == 1

    async def has_active_api_keys(self) -> bool:
        query = sa.select(api_keys.c.id).where(api_keys.c.revoked_at.is_(None)).limit(1)
        async with self._read() as conn:
            return (await conn.execute(query)).first() is not None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _run_alembic_upgrade(connection: sa.Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
