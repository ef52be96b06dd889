from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cairn.adapters.blobs_local import LocalBlobStore
from cairn.adapters.meta_sql import SqlMetadataStore
from cairn.core.objects import ObjectEngine


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
def blobs(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "data")


@pytest.fixture
def engine(meta: SqlMetadataStore, blobs: LocalBlobStore, clock: FakeClock) -> ObjectEngine:
    return ObjectEngine(meta, blobs, max_object_bytes=64 << 20, clock=clock)
