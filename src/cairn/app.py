"""The composer: the only place that picks adapters, builds the engine and mounts the faces."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI

from . import __version__
from .adapters.blobs_local import LocalBlobStore
from .adapters.meta_sql import SqlMetadataStore
from .api import artifacts, buckets, openai_files, system
from .api.deps import Services
from .api.errors import drop_unused_validation_schema, install_error_handlers
from .core.auth import ApiKeys, is_loopback_host
from .core.objects import ObjectEngine
from .core.uploads import UploadEngine
from .settings import Settings

log = logging.getLogger("cairn")


def build_metadata(settings: Settings) -> SqlMetadataStore:
    return SqlMetadataStore(settings.resolved_database_url)


def build_services(settings: Settings) -> Services:
    meta = build_metadata(settings)
    blobs = LocalBlobStore(settings.data_dir.resolve())
    engine = ObjectEngine(
        meta, blobs, max_object_bytes=settings.max_upload_bytes, min_free_bytes=settings.min_free_bytes
    )
    api_keys = ApiKeys(meta, allow_open_mode=is_loopback_host(settings.host))
    uploads = UploadEngine(engine, blobs, expires_after=settings.upload_expiry)
    return Services(settings=settings, objects=engine, uploads=uploads, api_keys=api_keys)


SWEEP_INTERVAL_SECONDS = 3600.0


async def _maintain(engine: ObjectEngine, uploads: UploadEngine, interval: float) -> None:
    """Every ``interval``: reclaim expired objects. At start and then hourly: remove what a crash left
    behind (the sweep walks every blob, so it runs less often)."""
    last_sweep = float("-inf")
    while True:
        try:
            if time.monotonic() - last_sweep >= SWEEP_INTERVAL_SECONDS:
                last_sweep = time.monotonic()
                await engine.sweep()
            await engine.expire_due()
            await uploads.expire_due()
        except Exception:
            log.exception("maintenance.failed")
        await asyncio.sleep(interval)


def create_app(settings: Settings) -> FastAPI:
    services = build_services(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await services.objects.meta.migrate()
        maintenance = asyncio.create_task(
            _maintain(services.objects, services.uploads, settings.expiry_interval)
        )
        log.info("cairn.ready url=http://%s:%d version=%s", settings.host, settings.port, __version__)
        try:
            yield
        finally:
            maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await maintenance
            await services.objects.meta.close()

    app = FastAPI(
        title="Cairn",
        version=__version__,
        summary="Files for AI agents: an OpenAI-compatible Files API on a streaming engine.",
        lifespan=lifespan,
    )
    app.state.services = services
    install_error_handlers(app)
    drop_unused_validation_schema(app)
    app.include_router(system.router)
    app.include_router(openai_files.router, prefix="/v1")
    app.include_router(openai_files.router, prefix="/v1/openai/v1", include_in_schema=False)
    app.include_router(artifacts.router)
    app.include_router(buckets.router)
    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory``: every worker process builds its app from ``CAIRN_*``."""
    return create_app(Settings())
