"""The composer: the only place that picks adapters, builds the engine and mounts the faces."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI
from starlette.middleware.cors import CORSMiddleware

from . import __version__
from .adapters.blobs_local import LocalBlobStore
from .adapters.blobs_s3 import S3BlobStore, S3Client, S3Location
from .adapters.locks_pg import PgSessionLocks
from .adapters.meta_sql import SqlMetadataStore
from .adapters.ratelimit_redis import RedisRateLimiter
from .adapters.sessions_s3 import S3SessionStaging
from .api import artifacts, buckets, http, openai_files, openai_uploads, ratelimit, system, tus, workspace
from .api.deps import Services
from .api.docs_ui import install_docs
from .api.errors import drop_unused_validation_schema, install_error_handlers
from .api.ratelimit import RateLimit, RateLimitHeaders, document_rate_limits
from .core.auth import ApiKeys, is_loopback_host
from .core.objects import ObjectEngine
from .core.ratelimit import InProcessRateLimiter, RateLimiter, RouteClass
from .core.uploads import UploadEngine
from .settings import Settings

log = logging.getLogger("cairn")


def build_metadata(settings: Settings) -> SqlMetadataStore:
    return SqlMetadataStore(settings.resolved_database_url)


def build_blobs(settings: Settings) -> tuple[LocalBlobStore | S3BlobStore, LocalBlobStore | S3SessionStaging]:
    """Where object bytes live, and where upload sessions stage: on S3, where every replica can append
    to any session, one at a time under the database's advisory locks."""
    if not settings.blob_store:
        local = LocalBlobStore(settings.data_dir.resolve())
        return local, local
    secret = settings.s3_secret_access_key
    blobs = S3BlobStore(
        S3Location.parse(settings.blob_store),
        S3Client(
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=secret.get_secret_value() if secret else None,
        ),
    )
    return blobs, S3SessionStaging(blobs, PgSessionLocks(settings.resolved_database_url))


def build_services(settings: Settings) -> Services:
    meta = build_metadata(settings)
    blobs, staging = build_blobs(settings)
    engine = ObjectEngine(
        meta, blobs, max_object_bytes=settings.max_upload_bytes, min_free_bytes=settings.min_free_bytes
    )
    api_keys = ApiKeys(meta, allow_open_mode=is_loopback_host(settings.host))
    uploads = UploadEngine(engine, staging, expires_after=settings.upload_expiry)
    return Services(settings=settings, objects=engine, uploads=uploads, api_keys=api_keys)


def build_rate_limiter(settings: Settings) -> RateLimiter | None:
    """None when nothing is limited; in Redis when it is configured, so that replicas share budgets."""
    per_minute = {
        RouteClass.UPLOADS: settings.rate_limit_uploads,
        RouteClass.RETRIEVALS: settings.rate_limit_retrievals,
        RouteClass.DELETIONS: settings.rate_limit_deletions,
    }
    if not settings.rate_limits or not any(per_minute.values()):
        return None
    if settings.redis_url:
        return RedisRateLimiter(settings.redis_url, per_minute)
    return InProcessRateLimiter(per_minute)


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
    limiter = build_rate_limiter(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await services.objects.meta.migrate()
        maintenance = asyncio.create_task(
            _maintain(services.objects, services.uploads, settings.expiry_interval)
        )
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        log.info("cairn.ready url=http://%s:%d version=%s", host, settings.port, __version__)
        try:
            yield
        finally:
            maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await maintenance
            await services.objects.meta.close()
            if limiter is not None:
                await limiter.close()
            if isinstance(services.uploads.staging, S3SessionStaging):
                await services.uploads.staging.close()
            if isinstance(services.objects.blobs, S3BlobStore):
                await services.objects.blobs.close()

    app = FastAPI(
        title="Cairn",
        version=__version__,
        summary="Files for AI agents: an OpenAI-compatible Files API on a streaming engine.",
        lifespan=lifespan,
        docs_url=None,  # served by install_docs, without a CDN
        redoc_url=None,
    )
    install_docs(app)
    app.state.services = services
    app.state.rate_limiter = limiter
    install_error_handlers(app, {"/v1/tus": tus.error_response, "/api/v1/files": workspace.error_response})
    drop_unused_validation_schema(app)
    limited = [] if limiter is None else [Depends(RateLimit(limiter))]
    app.include_router(system.router)
    faces = [
        (openai_files.router, "/v1"),
        (openai_uploads.router, "/v1"),
        (artifacts.router, ""),
        (buckets.router, ""),
        (tus.router, ""),
        (workspace.router, ""),
        (openai_files.router, "/v1/openai/v1"),  # the Files API where Llama Stack clients look for it
    ]
    for router, prefix in faces:
        app.include_router(router, prefix=prefix, dependencies=limited)
    if limiter is not None:
        document_rate_limits(app, faces)
        app.add_middleware(RateLimitHeaders)
    if settings.cors_origins:  # none by default: see docs/decisions.md D14
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=tus.CORS_METHODS,
            allow_headers=tus.CORS_ALLOW_HEADERS,
            expose_headers=[
                *tus.CORS_EXPOSE_HEADERS,
                *http.CORS_EXPOSE_HEADERS,
                *ratelimit.CORS_EXPOSE_HEADERS,
            ],
        )
    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory``: every worker process builds its app from ``CAIRN_*``."""
    return create_app(Settings())
