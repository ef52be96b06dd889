"""The app: mounts the faces, installs the error handlers and middleware, and runs the engine that
``compose.composed`` builds for as long as the server runs (with its maintenance loop and its job
workers)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI
from starlette.middleware.cors import CORSMiddleware

from . import __version__, api
from .api import ratelimit
from .api.deps import Services
from .api.docs_ui import install_docs
from .api.errors import drop_unused_validation_schema, install_error_handlers
from .api.faces import Face, cors_headers, error_families
from .api.front_door import CORS_REQUEST_HEADERS, LlamaStackPrefixAnyCase
from .api.ratelimit import RateLimitHeaders, charge_rate_limit, document_rate_limits
from .compose import composed, rate_limits_on
from .settings import Settings

log = logging.getLogger("cairn")

FACE_MODULES = (
    "system",
    "bucket_files",
    "openai_files",
    "openai_uploads",
    "inference",
    "stored_completions",
    "vector_stores",
    "vector_io",
    "conversations",
    "responses",
    "agents",
    "tool_groups",
    "shields",
    "moderations",
    "artifacts",
    "buckets",
    "tus",
    "workspace",
)
"""Every API family (a module of ``cairn.api`` that declares its ``FACE``), in the order their routes are
matched. Adding a face: its module, and its name here."""
FACES: list[Face] = [importlib.import_module(f"{api.__name__}.{name}").FACE for name in FACE_MODULES]


SWEEP_INTERVAL_SECONDS = 3600.0


async def _maintain(services: Services, interval: float) -> None:
    """Every ``interval``: reclaim expired objects, uploads and vector stores. At start and then hourly:
    remove what a crash left behind (the sweep walks every blob, so it runs less often)."""
    last_sweep = float("-inf")
    while True:
        try:
            if time.monotonic() - last_sweep >= SWEEP_INTERVAL_SECONDS:
                last_sweep = time.monotonic()
                await services.objects.sweep()
            await services.objects.expire_due()
            await services.uploads.expire_due()
            await services.vector_stores.reclaim_expired()
        except Exception:
            log.exception("maintenance.failed")
        await asyncio.sleep(interval)


def create_app(settings: Settings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with composed(settings) as composition:
            services = app.state.services = composition.services
            maintenance = asyncio.create_task(_maintain(services, settings.limits.expiry_interval))
            services.jobs.start()
            host = f"[{settings.server.host}]" if ":" in settings.server.host else settings.server.host
            log.info(
                "cairn.ready url=http://%s:%d version=%s %s",
                host,
                settings.server.port,
                __version__,
                " ".join(f"{what.replace(' ', '_')}={which}" for what, which in composition.describe()[1:]),
            )
            try:
                yield
            finally:
                await services.jobs.close()
                maintenance.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await maintenance

    app = FastAPI(
        title="Cairn",
        version=__version__,
        summary="Files for AI agents: an OpenAI-compatible Files API on a streaming engine.",
        lifespan=lifespan,
        docs_url=None,  # served by install_docs, without a CDN
        redoc_url=None,
    )
    install_docs(app)
    install_error_handlers(app, error_families(FACES))
    drop_unused_validation_schema(app)
    limited = [Depends(charge_rate_limit)] if rate_limits_on(settings) else []
    for face in FACES:
        for prefix in face.prefixes:
            app.include_router(
                face.router,
                prefix=prefix,
                dependencies=limited if face.rate_limited else [],
                include_in_schema=face.in_openapi,
            )
    app.add_middleware(LlamaStackPrefixAnyCase)
    if limited:
        document_rate_limits(app, FACES)
        app.add_middleware(RateLimitHeaders)
    if settings.server.cors_origins:  # none by default: see docs/decisions.md D14
        request_headers, response_headers = cors_headers(FACES)
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.server.cors_origins,
            allow_methods=sorted({"OPTIONS", *(m for face in FACES for m in face.methods)}),
            allow_headers=[*CORS_REQUEST_HEADERS, *request_headers],
            expose_headers=[*response_headers, *ratelimit.CORS_EXPOSE_HEADERS],
        )
    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory``: every worker process builds its app from ``CAIRN_*``."""
    return create_app(Settings())
