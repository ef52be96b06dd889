"""The composer: the one place that turns settings into adapters, builds the engine on them, and owns
their lifetimes. Everything that needs an engine (the app, `cairn keys`, `cairn migrate`, `cairn
doctor`, the tests) enters ``composed(settings)``; on exit every adapter it opened is closed, in the
reverse order, by one exit stack. Nothing else constructs or closes an adapter.

What the adapters can do beyond their port is discovered here, as capabilities (``ReportsFreeSpace``),
and handed to the engine; ``Composition.describe`` says what was composed.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from . import __version__
from .adapters.blobs_local import LocalBlobStore
from .adapters.blobs_s3 import S3BlobStore, S3Client, S3Location
from .adapters.locks_pg import PgSessionLocks
from .adapters.ratelimit_memory import InProcessRateLimiter
from .adapters.ratelimit_redis import RedisRateLimiter
from .adapters.sessions_s3 import S3SessionStaging
from .adapters.sql.engine import SqlDatabase
from .adapters.sql.keys import SqlApiKeyRows
from .adapters.sql.objects import SqlObjectRows
from .adapters.sql.sessions import SqlUploadSessionRows
from .api.deps import Services
from .core.auth import ApiKeys, is_loopback_host
from .core.health import Probe
from .core.objects import ObjectEngine
from .core.ports.blobs import BlobStore, ReportsFreeSpace
from .core.ports.keys import ApiKeyRows
from .core.ports.objects import ObjectRows
from .core.ports.ratelimit import RateLimiter
from .core.ports.sessions import UploadSessionRows
from .core.ports.staging import SessionStaging
from .core.ratelimit import RouteClass
from .core.uploads import UploadEngine
from .settings import Settings


@dataclass(frozen=True)
class Composition:
    services: Services
    database: SqlDatabase
    object_rows: ObjectRows
    session_rows: UploadSessionRows
    key_rows: ApiKeyRows
    blobs: BlobStore
    free_space: ReportsFreeSpace | None
    staging: SessionStaging
    backends: dict[str, str]
    capabilities: dict[str, bool]

    def describe(self) -> list[tuple[str, str]]:
        """What was composed, for `cairn doctor` and the startup log: (what, which)."""
        rows = [("cairn", __version__)]
        rows += [(f"backend {role}", which) for role, which in self.backends.items()]
        rows += [(f"capability {name}", "yes" if able else "no") for name, able in self.capabilities.items()]
        return rows


@contextlib.asynccontextmanager
async def composed(settings: Settings, *, migrate: bool = True) -> AsyncIterator[Composition]:
    """The engine on the adapters ``settings`` name; ``migrate``: bring the schema up to date first."""
    storage, limits = settings.storage, settings.limits
    async with contextlib.AsyncExitStack() as lifetimes:
        database = SqlDatabase(storage.resolved_database_url)
        lifetimes.push_async_callback(database.close)
        if migrate:
            await database.migrate()
        object_rows = SqlObjectRows(database)
        blobs, staging, backends = await _blobs_and_staging(settings, lifetimes)
        backends = {"metadata": database.dialect, **backends}
        free_space = blobs if isinstance(blobs, ReportsFreeSpace) else None
        objects = ObjectEngine(
            object_rows,
            blobs,
            max_object_bytes=limits.max_upload_bytes,
            free_space=free_space,
            min_free_bytes=limits.min_free_bytes,
        )
        session_rows = SqlUploadSessionRows(database)
        uploads = UploadEngine(objects, staging, session_rows, expires_after=limits.upload_expiry)
        key_rows = SqlApiKeyRows(database)
        api_keys = ApiKeys(key_rows, allow_open_mode=is_loopback_host(settings.server.host))
        probes: dict[str, Probe] = {"metadata": database.ping, "blobs": blobs.ping}
        limiter = _rate_limiter(settings)
        if limiter is not None:
            lifetimes.push_async_callback(limiter.close)
            if storage.redis_url:
                probes["redis"] = limiter.ping
        backends["rate limits"] = "off" if limiter is None else "redis" if storage.redis_url else "memory"
        services = Services(
            settings=settings,
            objects=objects,
            uploads=uploads,
            api_keys=api_keys,
            rate_limiter=limiter,
            probes=probes,
        )
        yield Composition(
            services=services,
            database=database,
            object_rows=object_rows,
            session_rows=session_rows,
            key_rows=key_rows,
            blobs=blobs,
            free_space=free_space,
            staging=staging,
            backends=backends,
            capabilities={
                "free space reporting": free_space is not None,
                "any replica continues any upload": isinstance(staging, S3SessionStaging),
            },
        )


async def _blobs_and_staging(
    settings: Settings, lifetimes: contextlib.AsyncExitStack
) -> tuple[BlobStore, SessionStaging, dict[str, str]]:
    """Where object bytes live, and where upload sessions stage: on S3, where every replica can append
    to any session, one at a time under the database's advisory locks."""
    storage = settings.storage
    if not storage.blob_store:
        local = LocalBlobStore(storage.data_dir.resolve())
        where = f"local {storage.data_dir.resolve()}"
        return local, local, {"blobs": where, "upload staging": where, "upload locks": "local files"}
    secret = storage.s3_secret_access_key
    blobs = S3BlobStore(
        S3Location.parse(storage.blob_store),
        S3Client(
            endpoint_url=storage.s3_endpoint_url,
            region=storage.s3_region,
            access_key_id=storage.s3_access_key_id,
            secret_access_key=secret.get_secret_value() if secret else None,
        ),
    )
    lifetimes.push_async_callback(blobs.close)
    locks = PgSessionLocks(storage.resolved_database_url)
    lifetimes.push_async_callback(locks.close)
    backends = {
        "blobs": storage.blob_store,
        "upload staging": storage.blob_store,
        "upload locks": "postgresql advisory locks",
    }
    return blobs, S3SessionStaging(blobs, locks), backends


def _per_minute(settings: Settings) -> dict[RouteClass, int]:
    limits = settings.limits
    return {
        RouteClass.UPLOADS: limits.rate_limit_uploads,
        RouteClass.RETRIEVALS: limits.rate_limit_retrievals,
        RouteClass.DELETIONS: limits.rate_limit_deletions,
    }


def rate_limits_on(settings: Settings) -> bool:
    return settings.limits.rate_limits and any(_per_minute(settings).values())


def _rate_limiter(settings: Settings) -> RateLimiter | None:
    """None when nothing is limited; in Redis when it is configured, so that replicas share budgets."""
    if not rate_limits_on(settings):
        return None
    per_minute = _per_minute(settings)
    if settings.storage.redis_url:
        return RedisRateLimiter(settings.storage.redis_url, per_minute)
    return InProcessRateLimiter(per_minute)
