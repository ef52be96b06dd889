from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cairn.compose import Composition, composed
from cairn.core.objects import ObjectEngine
from cairn.core.ports.agents import AgentRows
from cairn.core.ports.blobs import BlobStore
from cairn.core.ports.completions import ChatCompletionRows
from cairn.core.ports.conversations import ConversationRows
from cairn.core.ports.jobs import JobRows
from cairn.core.ports.keys import ApiKeyRows
from cairn.core.ports.models import ModelRows
from cairn.core.ports.objects import ObjectRows
from cairn.core.ports.responses import ResponseRows
from cairn.core.ports.sessions import UploadSessionRows
from cairn.core.ports.shields import ShieldRows
from cairn.core.ports.staging import SessionStaging
from cairn.core.ports.tool_groups import ToolGroupRows
from cairn.core.ports.vector_stores import VectorStoreRows
from cairn.core.ports.vectors import VectorIndex
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


def backend_settings(tmp_path: Path, backend: Backend, **overrides: object) -> Settings:
    """Settings of the backend set: its database and its blob store (a data directory, or S3)."""
    return Settings(
        data_dir=tmp_path / "data",
        database_url=backend.database_url,
        rate_limits=False,
        **{**backend.blob_settings, **overrides},
    )


@pytest.fixture
async def composition(tmp_path: Path, backend: Backend) -> AsyncIterator[Composition]:
    """The adapters of the backend set, as the composer builds them for the server."""
    async with composed(backend_settings(tmp_path, backend)) as built:
        yield built


@pytest.fixture
def object_rows(composition: Composition) -> ObjectRows:
    return composition.object_rows


@pytest.fixture
def session_rows(composition: Composition) -> UploadSessionRows:
    return composition.session_rows


@pytest.fixture
def key_rows(composition: Composition) -> ApiKeyRows:
    return composition.key_rows


@pytest.fixture
def model_rows(composition: Composition) -> ModelRows:
    return composition.model_rows


@pytest.fixture
def completion_rows(composition: Composition) -> ChatCompletionRows:
    return composition.completion_rows


@pytest.fixture
def conversation_rows(composition: Composition) -> ConversationRows:
    return composition.conversation_rows


@pytest.fixture
def response_rows(composition: Composition) -> ResponseRows:
    return composition.response_rows


@pytest.fixture
def agent_rows(composition: Composition) -> AgentRows:
    return composition.agent_rows


@pytest.fixture
def tool_group_rows(composition: Composition) -> ToolGroupRows:
    return composition.tool_group_rows


@pytest.fixture
def shield_rows(composition: Composition) -> ShieldRows:
    return composition.shield_rows


@pytest.fixture
def job_rows(composition: Composition) -> JobRows:
    return composition.job_rows


@pytest.fixture
def vector_store_rows(composition: Composition) -> VectorStoreRows:
    return composition.vector_store_rows


@pytest.fixture
def vector_index(composition: Composition) -> VectorIndex:
    return composition.vector_index


@pytest.fixture
def blobs(composition: Composition) -> BlobStore:
    return composition.blobs


@pytest.fixture
def staging(composition: Composition) -> SessionStaging:
    return composition.staging


@pytest.fixture
def engine(composition: Composition, clock: FakeClock) -> ObjectEngine:
    """The engine on the backend's adapters, with a clock of the test's."""
    return ObjectEngine(
        composition.object_rows,
        composition.blobs,
        max_object_bytes=64 << 20,
        free_space=composition.free_space,
        clock=clock,
    )
