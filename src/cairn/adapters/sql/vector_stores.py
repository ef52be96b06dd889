"""Vector store rows in SQL (``core.ports.vector_stores``). Stores page by id on ``(tenant, id)``; a store's
files by ``(created_at, file_id)`` on ``(store_id, created_at, file_id)``, the cursor's creation time
looked up in the same read. File counts and usage are ``GROUP BY`` aggregates over the file rows. An
attachment and an ingestion's end are each one transaction whose WHERE clause (or read under the
single writer on SQLite, a row lock on PostgreSQL) decides what is written."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import sqlalchemy as sa

from ...core.errors import Conflict
from ...core.ports.objects import Order
from ...core.ports.vector_stores import TallyOf
from ...core.ports.vectors import Scalar
from ...core.records import (
    FileCounts,
    Page,
    StoreTally,
    VectorFileStatus,
    VectorStoreBatchRecord,
    VectorStoreFileRecord,
    VectorStoreRecord,
)
from .engine import SqlDatabase
from .schema import vector_store_file_batches as batches
from .schema import vector_store_files as files
from .schema import vector_store_objects as stores

ONGOING = (VectorFileStatus.IN_PROGRESS, VectorFileStatus.COMPLETED)


def _store(row: sa.Row[Any]) -> VectorStoreRecord:
    return VectorStoreRecord(**row._mapping)


def _file(row: sa.Row[Any]) -> VectorStoreFileRecord:
    values = dict(row._mapping)
    values["status"] = VectorFileStatus(values["status"])
    return VectorStoreFileRecord(**values)


def _batch(row: sa.Row[Any]) -> VectorStoreBatchRecord:
    return VectorStoreBatchRecord(**row._mapping)


def _file_values(file: VectorStoreFileRecord) -> dict[str, Any]:
    return {
        "store_id": file.store_id,
        "file_id": file.file_id,
        "tenant": file.tenant,
        "status": file.status.value,
        "last_error": file.last_error,
        "attributes": file.attributes,
        "chunking_strategy": file.chunking_strategy,
        "usage_bytes": file.usage_bytes,
        "created_at": file.created_at,
        "batch_id": file.batch_id,
        "generation": file.generation,
    }


def _mine(tenant: str, store_id: str, file_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(files.c.tenant == tenant, files.c.store_id == store_id, files.c.file_id == file_id)


def _paged(rows: list[sa.Row[Any]], limit: int, backwards: bool) -> tuple[list[sa.Row[Any]], bool]:
    page = rows[:limit]
    return (page[::-1] if backwards else page), len(rows) > limit


class SqlVectorStoreRows:
    def __init__(self, database: SqlDatabase) -> None:
        self._db = database.runner

    async def insert_store(self, store: VectorStoreRecord) -> None:
        values = {name: getattr(store, name) for name in VectorStoreRecord.__slots__}
        try:
            await self._db.write(lambda conn: conn.execute(stores.insert(), values))
        except sa.exc.IntegrityError as exc:
            raise Conflict(f"The vector store '{store.id}' exists already.") from exc

    async def get_store(self, tenant: str, store_id: str) -> VectorStoreRecord | None:
        query = stores.select().where(stores.c.id == store_id, stores.c.tenant == tenant)
        row = await self._db.read_point(lambda conn: conn.execute(query).first())
        return None if row is None else _store(row)

    async def list_stores(
        self, tenant: str, *, after: str | None, before: str | None, limit: int, order: Order
    ) -> Page[VectorStoreRecord]:
        backwards = before is not None
        ascending = (order == "asc") != backwards
        query = stores.select().where(stores.c.tenant == tenant)
        cursor = before if backwards else after
        if cursor is not None:
            query = query.where(stores.c.id > cursor if ascending else stores.c.id < cursor)
        query = query.order_by(stores.c.id.asc() if ascending else stores.c.id.desc()).limit(limit + 1)
        rows = await self._db.read(lambda conn: list(conn.execute(query).all()))
        page, more = _paged(rows, limit, backwards)
        return Page([_store(r) for r in page], more)

    async def update_store(self, store: VectorStoreRecord) -> VectorStoreRecord | None:
        statement = (
            stores.update()
            .where(stores.c.id == store.id, stores.c.tenant == store.tenant)
            .values(
                name=store.name,
                metadata=store.metadata,
                expires_after_days=store.expires_after_days,
                last_active_at=store.last_active_at,
                expires_at=store.expires_at,
            )
            .returning(*stores.c)
        )
        row = await self._db.write(lambda conn: conn.execute(statement).first())
        return None if row is None else _store(row)

    async def touch_store(self, tenant: str, store_id: str, now: int) -> None:
        days = stores.c.expires_after_days
        statement = (
            stores.update()
            .where(
                stores.c.id == store_id,
                stores.c.tenant == tenant,
                sa.or_(stores.c.expires_at.is_(None), stores.c.expires_at > now),
            )
            .values(last_active_at=now, expires_at=sa.case((days.is_(None), None), else_=now + days * 86400))
        )
        await self._db.write(lambda conn: conn.execute(statement))

    async def expired_stores(self, now: int, limit: int) -> list[VectorStoreRecord]:
        query = (
            stores.select()
            .where(
                stores.c.expires_at.is_not(None), stores.c.reclaimed_at.is_(None), stores.c.expires_at <= now
            )
            .order_by(stores.c.expires_at)
            .limit(limit)
        )
        return await self._db.read(lambda conn: [_store(r) for r in conn.execute(query)])

    async def mark_reclaimed(self, tenant: str, store_id: str, now: int) -> None:
        statement = (
            stores.update().where(stores.c.id == store_id, stores.c.tenant == tenant).values(reclaimed_at=now)
        )
        await self._db.write(lambda conn: conn.execute(statement))

    async def delete_store(self, tenant: str, store_id: str) -> list[VectorStoreFileRecord] | None:
        def work(conn: sa.Connection) -> list[VectorStoreFileRecord] | None:
            deleted = conn.execute(
                stores.delete().where(stores.c.id == store_id, stores.c.tenant == tenant)
            ).rowcount
            if not deleted:
                return None
            conn.execute(batches.delete().where(batches.c.store_id == store_id))
            gone = conn.execute(files.delete().where(files.c.store_id == store_id).returning(*files.c))
            return [_file(r) for r in gone]

        return await self._db.write(work)

    async def tally(self, tenant: str, of: TallyOf, ids: Collection[str]) -> dict[str, StoreTally]:
        key = files.c.store_id if of == "store" else files.c.batch_id
        wanted = list(ids)
        query = (
            sa.select(key, files.c.status, sa.func.count(), sa.func.sum(files.c.usage_bytes))
            .where(files.c.tenant == tenant, key.in_(wanted))
            .group_by(key, files.c.status)
        )
        rows = await self._db.read(lambda conn: conn.execute(query).all()) if wanted else []
        counts: dict[str, dict[str, int]] = {i: {} for i in wanted}
        usage = dict.fromkeys(wanted, 0)
        for owner, status, count, used in rows:
            counts[owner][status] = int(count)
            usage[owner] += int(used or 0)
        return {i: StoreTally(FileCounts(**counts[i]), usage[i]) for i in wanted}

    async def attach_file(self, file: VectorStoreFileRecord) -> VectorStoreFileRecord:
        key = _mine(file.tenant, file.store_id, file.file_id)

        def work(conn: sa.Connection) -> VectorStoreFileRecord:
            existing = conn.execute(files.select().where(key).with_for_update()).first()
            if existing is None:
                conn.execute(files.insert(), _file_values(file))
            elif existing.status in ONGOING:
                if file.batch_id is not None:
                    conn.execute(files.update().where(key).values(batch_id=file.batch_id))
            else:
                values = _file_values(file) | {"generation": existing.generation + 1}
                conn.execute(files.update().where(key).values(values))
            return _file(conn.execute(files.select().where(key)).one())

        return await self._db.write(work)

    async def put_completed_file(self, file: VectorStoreFileRecord) -> VectorStoreFileRecord | None:
        key = _mine(file.tenant, file.store_id, file.file_id)
        # the store's row is held (FOR KEY SHARE on PostgreSQL) so that it cannot be deleted meanwhile
        store = (
            sa.select(stores.c.id)
            .where(stores.c.id == file.store_id, stores.c.tenant == file.tenant)
            .with_for_update(read=True, key_share=True)
        )

        def work(conn: sa.Connection) -> VectorStoreFileRecord | None:
            if conn.execute(store).first() is None:
                return None
            existing = conn.execute(files.select().where(key).with_for_update()).first()
            if existing is None:
                conn.execute(files.insert(), _file_values(file))
            else:
                kept = {"created_at": existing.created_at, "generation": existing.generation + 1}
                conn.execute(files.update().where(key).values(_file_values(file) | kept))
            return _file(conn.execute(files.select().where(key)).one())

        return await self._db.write(work)

    async def get_file(self, tenant: str, store_id: str, file_id: str) -> VectorStoreFileRecord | None:
        query = files.select().where(_mine(tenant, store_id, file_id))
        row = await self._db.read_point(lambda conn: conn.execute(query).first())
        return None if row is None else _file(row)

    async def list_files(
        self,
        tenant: str,
        store_id: str,
        *,
        batch_id: str | None = None,
        status: VectorFileStatus | None = None,
        after: str | None,
        before: str | None,
        limit: int,
        order: Order,
    ) -> Page[VectorStoreFileRecord]:
        backwards = before is not None
        ascending = (order == "asc") != backwards
        query = files.select().where(files.c.tenant == tenant, files.c.store_id == store_id)
        if batch_id is not None:
            query = query.where(files.c.batch_id == batch_id)
        if status is not None:
            query = query.where(files.c.status == status.value)
        ordering = (files.c.created_at, files.c.file_id)
        query = query.order_by(*(c.asc() if ascending else c.desc() for c in ordering)).limit(limit + 1)
        cursor = before if backwards else after

        def work(conn: sa.Connection) -> list[sa.Row[Any]]:
            paged = query
            if cursor is not None:
                at = conn.execute(
                    sa.select(files.c.created_at).where(_mine(tenant, store_id, cursor))
                ).scalar()
                if at is None:
                    return []
                paged = query.where(
                    sa.tuple_(*ordering) > sa.tuple_(sa.literal(at), sa.literal(cursor))
                    if ascending
                    else sa.tuple_(*ordering) < sa.tuple_(sa.literal(at), sa.literal(cursor))
                )
            return list(conn.execute(paged).all())

        rows = await self._db.read(work)
        page, more = _paged(rows, limit, backwards)
        return Page([_file(r) for r in page], more)

    async def files_of_object(self, tenant: str, file_id: str) -> list[VectorStoreFileRecord]:
        query = files.select().where(files.c.file_id == file_id, files.c.tenant == tenant)
        return await self._db.read(lambda conn: [_file(r) for r in conn.execute(query)])

    async def set_attributes(
        self, tenant: str, store_id: str, file_id: str, attributes: Mapping[str, Scalar]
    ) -> VectorStoreFileRecord | None:
        statement = (
            files.update()
            .where(_mine(tenant, store_id, file_id))
            .values(attributes=dict(attributes))
            .returning(*files.c)
        )
        row = await self._db.write(lambda conn: conn.execute(statement).first())
        return None if row is None else _file(row)

    async def finish_file(
        self,
        tenant: str,
        store_id: str,
        file_id: str,
        generation: int,
        status: VectorFileStatus,
        *,
        usage_bytes: int = 0,
        last_error: dict[str, str] | None = None,
    ) -> VectorStoreFileRecord | None:
        statement = (
            files.update()
            .where(
                _mine(tenant, store_id, file_id),
                files.c.generation == generation,
                files.c.status == VectorFileStatus.IN_PROGRESS.value,
            )
            .values(status=status.value, usage_bytes=usage_bytes, last_error=last_error)
            .returning(*files.c)
        )
        row = await self._db.write(lambda conn: conn.execute(statement).first())
        return None if row is None else _file(row)

    async def delete_file(self, tenant: str, store_id: str, file_id: str) -> VectorStoreFileRecord | None:
        statement = files.delete().where(_mine(tenant, store_id, file_id)).returning(*files.c)
        row = await self._db.write(lambda conn: conn.execute(statement).first())
        return None if row is None else _file(row)

    async def insert_batch(self, batch: VectorStoreBatchRecord) -> None:
        values = {name: getattr(batch, name) for name in VectorStoreBatchRecord.__slots__}
        await self._db.write(lambda conn: conn.execute(batches.insert(), values))

    async def get_batch(self, tenant: str, store_id: str, batch_id: str) -> VectorStoreBatchRecord | None:
        query = batches.select().where(
            batches.c.id == batch_id, batches.c.tenant == tenant, batches.c.store_id == store_id
        )
        row = await self._db.read_point(lambda conn: conn.execute(query).first())
        return None if row is None else _batch(row)

    async def cancel_batch(
        self, tenant: str, store_id: str, batch_id: str
    ) -> list[VectorStoreFileRecord] | None:
        def work(conn: sa.Connection) -> list[VectorStoreFileRecord] | None:
            marked = conn.execute(
                batches.update()
                .where(batches.c.id == batch_id, batches.c.tenant == tenant, batches.c.store_id == store_id)
                .values(cancelled=True)
            ).rowcount
            if not marked:
                return None
            cancelled = conn.execute(
                files.update()
                .where(
                    files.c.tenant == tenant,
                    files.c.batch_id == batch_id,
                    files.c.status == VectorFileStatus.IN_PROGRESS.value,
                )
                .values(status=VectorFileStatus.CANCELLED.value)
                .returning(*files.c)
            )
            return [_file(r) for r in cancelled]

        return await self._db.write(work)
