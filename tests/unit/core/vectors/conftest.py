"""The vector store tests' composition: one per test module and database (SQLite, then PostgreSQL with
pgvector), with the embedded models, its job runner started so that attached files are ingested."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from _composition import settings

from cairn.compose import Composition, composed
from cairn.core.vectors.stores import VectorStores


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def composition(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str
) -> AsyncIterator[Composition]:
    async with composed(settings(tmp_path_factory.mktemp("vectors"), module_database_url)) as built:
        built.services.jobs.start()
        try:
            yield built
        finally:
            await built.services.jobs.close()


@pytest.fixture(scope="module")
def stores(composition: Composition) -> VectorStores:
    return composition.services.vector_stores
