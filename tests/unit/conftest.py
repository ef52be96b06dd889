from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cairn.adapters.blobs_s3 import S3BlobStore
from cairn.adapters.meta_sql import SqlMetadataStore
from cairn.adapters.sessions_s3 import S3SessionStaging
from cairn.app import build_blobs
from cairn.core.objects import ObjectEngine
from cairn.core.ports import BlobStore, SessionStaging
from cairn.settings import Settings

if TYPE_CHECKING:
    from conftest import Backend


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def meta(database_url: str) -> AsyncIterator[SqlMetadataStore]:
    store = SqlMetadataStore(database_url)
    await store.migrate()
    yield store
    await store.close()


@pytest.fixture
async def stores(tmp_path: Path, backend: Backend) -> AsyncIterator[tuple[BlobStore, SessionStaging]]:
    """The backend's blob store (a data directory, or a fresh S3 bucket) and its session staging."""
    settings = Settings(
        data_dir=tmp_path / "data", database_url=backend.database_url, **backend.blob_settings
    )
    store, staging = build_blobs(settings)
    yield store, staging
    if isinstance(staging, S3SessionStaging):
        await staging.close()
    if isinstance(store, S3BlobStore):
        await store.close()


@pytest.fixture
def blobs(stores: tuple[BlobStore, SessionStaging]) -> BlobStore:
    return stores[0]


@pytest.fixture
def staging(stores: tuple[BlobStore, SessionStaging]) -> SessionStaging:
    return stores[1]


@pytest.fixture
def engine(meta: SqlMetadataStore, blobs: BlobStore, clock: FakeClock) -> ObjectEngine:
    return ObjectEngine(meta, blobs, max_object_bytes=64 << 20, clock=clock)
