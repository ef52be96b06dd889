"""What the vector store tests share: the settings of a composition on a database, an uploader of Cairn
objects, and waiting for an ingestion to end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from cairn.compose import Composition
from cairn.core.records import ObjectRecord, VectorFileStatus, VectorStoreFileRecord
from cairn.core.vectors.stores import VectorStores
from cairn.settings import Settings


def settings(data: Path, database_url: str, **overrides: object) -> Settings:
    return Settings(data_dir=data, database_url=database_url, rate_limits=False, **overrides)


Upload = Callable[..., Awaitable[ObjectRecord]]


def uploader(composition: Composition) -> Upload:
    async def upload(tenant: str, filename: str, data: bytes, bucket: str = "files") -> ObjectRecord:
        objects = composition.services.objects

        async def body() -> AsyncIterator[bytes]:
            yield data

        staged = await objects.stage(body())
        return await objects.commit(
            staged,
            tenant=tenant,
            bucket=bucket,
            filename=filename,
            mime_type="application/octet-stream",
            purpose="assistants",
        )

    return upload


async def settled(stores: VectorStores, tenant: str, store_id: str, file_id: str) -> VectorStoreFileRecord:
    """The file once its ingestion ended."""
    deadline = time.monotonic() + 60
    while (file := await stores.get_file(tenant, store_id, file_id)).status is VectorFileStatus.IN_PROGRESS:
        assert time.monotonic() < deadline, "the ingestion did not end"
        await asyncio.sleep(0.05)
    return file
