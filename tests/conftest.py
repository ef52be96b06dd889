"""Shared fixtures: the backend matrix and a real Cairn server on 127.0.0.1.

Every storage test runs once per backend set through the ``database_url`` fixture. PostgreSQL cases
are skipped with the reason when no server answers, unless ``CAIRN_TEST_REQUIRE_POSTGRES=1`` (CI sets
it), where a missing PostgreSQL fails the run instead of hiding it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from cairn.adapters.meta_sql import SqlMetadataStore
from cairn.app import create_app
from cairn.core.auth import ApiKeys
from cairn.settings import Settings

POSTGRES_ADMIN_URL = os.environ.get(
    "CAIRN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ["sqlite+local", "postgres+local"]


def _postgres_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


async def _postgres_admin(statement: str) -> None:
    import asyncpg

    dsn = POSTGRES_ADMIN_URL
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty metadata database of each backend kind."""
    if request.param == "sqlite+local":
        yield f"sqlite:///{tmp_path / 'cairn.db'}"
        return
    if not _postgres_reachable():
        if os.environ.get("CAIRN_TEST_REQUIRE_POSTGRES") == "1":
            pytest.fail(
                "PostgreSQL is required (CAIRN_TEST_REQUIRE_POSTGRES=1) but 127.0.0.1:5432 does not answer"
            )
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    name = f"cairn_test_{secrets.token_hex(6)}"
    asyncio.run(_postgres_admin(f'CREATE DATABASE "{name}"'))
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(_postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


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
        return Tenant(tenant, asyncio.run(_create_key(self.settings.resolved_database_url, tenant)))

    def client(self, tenant: Tenant | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {tenant.key}"} if tenant else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


async def _create_key(database_url: str, tenant: str) -> str:
    meta = SqlMetadataStore(database_url)
    try:
        await meta.migrate()
        key, _ = await ApiKeys(meta).create(tenant)
        return key
    finally:
        await meta.close()


def start_server(settings: Settings) -> LiveServer:
    app = create_app(settings)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, loop="uvloop", http="httptools", log_level="warning", lifespan="on"
    )
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
def make_server(tmp_path: Path, database_url: str) -> Iterator[Callable[..., LiveServer]]:
    """Start servers on the current backend; keyword arguments override settings. ``keyed=True``
    (the default) creates a key before start so the server runs in keyed mode from its first request."""
    started: list[LiveServer] = []

    def make(*, keyed: bool = True, **overrides: Any) -> LiveServer:
        settings = Settings(
            data_dir=tmp_path / f"data-{len(started)}",
            database_url=database_url,
            min_free_bytes=0,
            expiry_interval=3600,
            **overrides,
        )
        if keyed:
            asyncio.run(_create_key(settings.resolved_database_url, "bootstrap"))
        live = start_server(settings)
        started.append(live)
        return live

    yield make
    for live in started:
        live.stop()


@pytest.fixture
def server(make_server: Callable[..., LiveServer]) -> LiveServer:
    return make_server()


@pytest.fixture
def tenant(server: LiveServer) -> Tenant:
    return server.new_tenant()


@pytest.fixture
def client(server: LiveServer, tenant: Tenant) -> Iterator[httpx.Client]:
    with server.client(tenant) as http:
        yield http
