"""All configuration in one model made of sections (``server``, ``storage``, ``limits``, ...).

Each value comes from, highest first: a keyword argument (``Settings(idle_timeout=5)`` or
``Settings(limits={"idle_timeout": 5})``), an environment variable ``CAIRN_<NAME>`` (the CLI sets
them from its flags; the names are flat, ``CAIRN_IDLE_TIMEOUT``, whichever section holds the value),
the TOML file that ``CAIRN_CONFIG`` names (tables ``[server]``, ``[storage]``, ...), or the default.
``describe_settings`` tells for every value where it came from.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

GiB = 1 << 30
MiB = 1 << 20
_ORIGIN = re.compile(r"https?://[^/\s?#]+")
ENV_PREFIX = "CAIRN_"
CONFIG_VARIABLE = "CAIRN_CONFIG"


def _comma_separated(value: Any) -> Any:
    """A list from the environment's ``a, b, c``; anything else as it is."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class ServerSettings(BaseModel):
    """How the HTTP server listens, logs, and is reached."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="Address to listen on. Non-loopback requires API keys.")
    port: int = Field(8321, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64, description="Server processes sharing one data directory.")
    log_level: str = Field("info")
    access_log: bool = Field(True, description="Log one line per request (uvicorn's access log).")
    public_url: str | None = Field(
        None, description="Externally visible base URL, e.g. https://files.example.com; absolute URLs use it."
    )
    trusted_proxies: Annotated[list[IPvAnyNetwork], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated addresses or networks of reverse proxies whose Forwarded and "
        "X-Forwarded-Proto/-Host headers are honoured; none by default.",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated browser origins allowed cross-origin access, or '*'; none by default.",
    )

    @field_validator("public_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(
                "must be an http(s) URL without query or fragment, e.g. https://files.example.com"
            )
        return value.strip().rstrip("/")

    @field_validator("trusted_proxies", "cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return _comma_separated(value)

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        origins = [origin.rstrip("/") for origin in value]
        for origin in origins:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(f"{origin!r} is not an origin such as https://app.example.com or '*'")
        return origins


class StorageSettings(BaseModel):
    """Where metadata, object bytes and shared rate-limit counters live."""

    model_config = ConfigDict(extra="forbid")

    data_dir: Path = Field(Path("cairn-data"), description="Blobs, staging files and the SQLite database.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the metadata database; default: SQLite in the data directory."
    )
    blob_store: str | None = Field(
        None,
        description="Where object bytes go: s3://bucket/prefix for an S3-compatible store (needs a "
        "PostgreSQL database_url); default: the data directory.",
    )
    s3_endpoint_url: str | None = Field(
        None, description="S3 endpoint, e.g. http://127.0.0.1:8333; default: AWS_ENDPOINT_URL, else AWS."
    )
    s3_region: str | None = Field(None, description="S3 region; default: AWS_REGION or AWS_DEFAULT_REGION.")
    s3_access_key_id: str | None = Field(None, description="S3 access key; default: AWS_ACCESS_KEY_ID.")
    s3_secret_access_key: SecretStr | None = Field(
        None, description="S3 secret key; default: AWS_SECRET_ACCESS_KEY."
    )
    redis_url: str | None = Field(
        None,
        description="redis://host:6379/0 (or rediss://, unix://): rate limits shared by every replica; "
        "default: each process counts on its own.",
    )

    @field_validator("blob_store")
    @classmethod
    def _blob_store(cls, value: str | None) -> str | None:
        if not value or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise ValueError("must be s3://bucket or s3://bucket/prefix (unset: the data directory)")
        return value.strip()

    @model_validator(mode="after")
    def _s3_needs_postgres(self) -> StorageSettings:
        # upload sessions staged in S3 take their locks from PostgreSQL (docs/decisions.md D17)
        if self.blob_store and not self.resolved_database_url.startswith("postgresql"):
            raise ValueError("blob_store s3://… needs a PostgreSQL database_url (postgresql://…)")
        return self

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be a redis://, rediss:// or unix:// URL, e.g. redis://127.0.0.1:6379/0")
        return value or None

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'cairn.db'}"


class LimitsSettings(BaseModel):
    """Sizes, timeouts, expiry and per-tenant rate limits."""

    model_config = ConfigDict(extra="forbid")

    max_upload_bytes: int = Field(100 * GiB, ge=1, description="Largest object accepted, in bytes.")
    min_free_bytes: int = Field(256 * MiB, ge=0, description="Free space kept in reserve on the blob volume.")
    max_json_bytes: int = Field(
        1 * MiB, ge=1024, description="Largest JSON request body, in bytes; larger ones get 413 unread."
    )
    idle_timeout: float = Field(
        60.0,
        gt=0,
        description="Seconds a request body may stall, and that a request's headers may take, before the "
        "request is dropped (408).",
    )
    keepalive_timeout: float = Field(
        75.0,
        gt=0,
        description="Seconds an idle connection is kept for its client's next request. Longer than "
        "clients and load balancers keep one (httpx and the openai SDK 5 s, AWS ALB 60 s), so they close "
        "it first and never send a request as the server closes it.",
    )
    upload_expiry: int = Field(86_400, ge=60, description="Seconds an unfinished upload session lives.")
    expiry_interval: float = Field(
        60.0, gt=0, description="Seconds between sweeps for expired objects, uploads and vector stores."
    )
    rate_limits: bool = Field(True, description="Master switch of the per-tenant rate limits.")
    rate_limit_uploads: int = Field(
        100, ge=0, le=1_000_000, description="Uploads (create or append bytes) per tenant per minute; 0: off."
    )
    rate_limit_retrievals: int = Field(
        1000, ge=0, le=1_000_000, description="Retrievals (GET, HEAD) per tenant per minute; 0: off."
    )
    rate_limit_deletions: int = Field(
        100, ge=0, le=1_000_000, description="Deletions and cancels per tenant per minute; 0: off."
    )
    rate_limit_inference: int = Field(
        600,
        ge=0,
        le=1_000_000,
        description="Model requests (chat, completions, embeddings) per tenant per minute; 0: off.",
    )
    rate_limit_inference_tokens: int = Field(
        100_000,
        ge=0,
        le=10_000_000,
        description="Model tokens (prompt and completion) per tenant per minute; 0: off.",
    )
    inference_streams_per_tenant: int = Field(
        4,
        ge=0,
        le=10_000,
        description="Streamed model answers a tenant may have open at once, per process (not a rate "
        "limit: rate_limits does not switch it off); 0: off.",
    )


RemoteProviderType = Literal[
    "remote::openai", "remote::vllm", "remote::llama-cpp", "remote::ollama", "remote::tgi"
]
# Whose servers enforce tool_choice themselves (the others get Cairn's enforcement, core/inference/tool_calls)
NATIVE_TOOL_CHOICE: dict[str, bool] = {
    "remote::openai": True,
    "remote::vllm": True,
    "remote::tgi": True,
    "remote::llama-cpp": False,
    "remote::ollama": False,
}


class ProviderModelSettings(BaseModel):
    """A model a remote provider serves, as Cairn should list it."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=256, description="The provider's own model id.")
    type: Literal["llm", "embedding"] = "llm"
    context_length: int | None = Field(None, ge=1)
    dimension: int | None = Field(None, ge=1, description="Embedding models: the vector length.")


class ProviderSettings(BaseModel):
    """An OpenAI-compatible server Cairn routes to (``[[inference.providers]]`` in the config file)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$", description="Models are listed as <id>/<model>.")
    type: RemoteProviderType = "remote::openai"
    base_url: str = Field(pattern=r"^https?://", description="Its OpenAI API root, e.g. http://host:8000/v1.")
    api_key: SecretStr | None = None
    api_key_env: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="An environment variable holding the key."
    )
    models: list[ProviderModelSettings] | None = Field(
        None, description="The models to expose; unset: every model its /models lists, as chat models."
    )
    native_tool_choice: bool | None = Field(
        None, description="Whether it enforces tool_choice itself; unset: by type (openai, vllm, tgi do)."
    )
    timeout: float = Field(300.0, gt=0, description="Seconds to wait for it to answer or send more.")
    max_concurrency: int = Field(16, ge=1, le=4096, description="Requests in flight to it at once.")
    queue_depth: int = Field(64, ge=0, le=100_000, description="Requests that wait for a free place.")

    @property
    def key(self) -> str | None:
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    @property
    def enforces_tool_choice(self) -> bool:
        if self.native_tool_choice is not None:
            return self.native_tool_choice
        return NATIVE_TOOL_CHOICE[self.type]

    def __str__(self) -> str:
        return f"{self.id} ({self.type} at {self.base_url})"


class InferenceSettings(BaseModel):
    """Model providers: the embedded runtimes (models packaged with Cairn, and GGUF files by path) and
    remote OpenAI-compatible servers."""

    model_config = ConfigDict(extra="forbid")

    embedded_models: bool = Field(
        True, description="Serve the packaged models (a small chat model and an embedding model)."
    )
    gguf_models: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated GGUF chat model files to serve too, each named by its file name.",
    )
    threads: int = Field(
        0, ge=0, le=256, description="Threads per embedded model; 0: half the CPUs this process may use."
    )
    chat_slots: int = Field(2, ge=1, le=64, description="Chat requests an embedded model runs at once.")
    chat_context: int = Field(4096, ge=256, le=1 << 20, description="Tokens of context per chat slot.")
    chat_queue: int = Field(16, ge=0, le=10_000, description="Chat requests that wait for a free slot.")
    providers: list[ProviderSettings] = Field(
        default_factory=list, description="Remote OpenAI-compatible servers (a JSON list in the environment)."
    )

    @field_validator("gguf_models", mode="before")
    @classmethod
    def _split_paths(cls, value: Any) -> Any:
        return (
            [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value
        )

    @field_validator("gguf_models")
    @classmethod
    def _gguf_files(cls, value: list[Path]) -> list[Path]:
        files = [path.expanduser().resolve() for path in value]
        for path in files:
            if path.suffix != ".gguf" or not path.is_file():
                raise ValueError(f"{path} is not a .gguf file")
        names = [path.name for path in files]
        if len(set(names)) != len(names):
            raise ValueError("two GGUF files share a file name, which names the model")
        return files

    @field_validator("providers", mode="before")
    @classmethod
    def _json_providers(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _unique_providers(self) -> InferenceSettings:
        ids = [provider.id for provider in self.providers]
        taken = {"llama-cpp", "onnx"}  # the embedded providers
        clashes = sorted({i for i in ids if ids.count(i) > 1 or i in taken})
        if clashes:
            raise ValueError(f"provider ids must be unique and not llama-cpp or onnx: {', '.join(clashes)}")
        return self

    @property
    def embedded_threads(self) -> int:
        return self.threads or max(1, len(os.sched_getaffinity(0)) // 2)


class JobsSettings(BaseModel):
    """Background jobs (docs/decisions.md, D29): how many run at once in each process, how long a
    worker's hold on a job lasts without a heartbeat, and how often a job is tried."""

    model_config = ConfigDict(extra="forbid")

    job_workers: int = Field(2, ge=1, le=256, description="Jobs each server process runs at once.")
    job_lease_seconds: float = Field(
        60.0,
        ge=1,
        le=3600,
        description="Seconds a job stays with its worker without a heartbeat (one every third of it); "
        "then any process may take it over.",
    )
    job_max_attempts: int = Field(
        5, ge=1, le=100, description="Attempts at a job (its first run included) before it fails for good."
    )


class VectorStoresSettings(BaseModel):
    """Vector stores: the model a store embeds with unless it names one, and how large a file
    ingestion reads."""

    model_config = ConfigDict(extra="forbid")

    default_embedding_model: str = Field(
        "onnx/all-MiniLM-L6-v2",
        min_length=1,
        max_length=256,
        description="The embedding model of a vector store created without one (a model identifier).",
    )
    max_file_bytes: int = Field(
        64 * MiB,
        ge=1,
        description="A file larger than this fails its ingestion (too large for file search); its "
        "text may hold as many characters.",
    )
    rewrite_model: str = Field(
        "llama-cpp/SmolLM2-135M-Instruct",
        min_length=1,
        max_length=256,
        description="The chat model that rewrites a search's query when it asks for `rewrite_query`.",
    )


SECTIONS: dict[str, type[BaseModel]] = {
    "server": ServerSettings,
    "storage": StorageSettings,
    "limits": LimitsSettings,
    "inference": InferenceSettings,
    "jobs": JobsSettings,
    "vector_stores": VectorStoresSettings,
}
# A flat name (keyword argument, CAIRN_<NAME>) -> its section. Flat names are unique across sections.
SECTION_OF: dict[str, str] = {
    name: section for section, model in SECTIONS.items() for name in model.model_fields
}
if len(SECTION_OF) != sum(len(model.model_fields) for model in SECTIONS.values()):
    raise RuntimeError("two sections share a setting name, so CAIRN_<NAME> would be ambiguous")


class ConfigFileError(ValueError):
    """The config file is missing, is not TOML, or holds a table or key Cairn does not know. The
    message is one line that names the file."""


def _cairn_environ() -> dict[str, tuple[str, str]]:
    """``CAIRN_*`` variables by upper-cased name -> (name as set, value): names match in any case."""
    return {
        name.upper(): (name, value)
        for name, value in os.environ.items()
        if name.upper().startswith(ENV_PREFIX)
    }


def _env_layer() -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Values of the flat ``CAIRN_<NAME>`` variables, nested in their sections, and their sources."""
    environ = _cairn_environ()
    values: dict[str, dict[str, Any]] = {}
    sources: dict[str, str] = {}
    for name, section in SECTION_OF.items():
        found = environ.get(f"{ENV_PREFIX}{name.upper()}")
        if found is not None:
            values.setdefault(section, {})[name] = found[1]  # raw text: the sections' validators parse it
            sources[f"{section}.{name}"] = f"env {found[0]}"
    return values, sources


def config_path() -> str | None:
    """The config file ``CAIRN_CONFIG`` names, as written; None when unset or empty."""
    found = _cairn_environ().get(CONFIG_VARIABLE)
    return found[1] if found and found[1].strip() else None


def _unknown_key(path: str, key: str, table: str | None) -> str:
    where = f"in [{table}]" if table else "outside any table"
    if key in SECTION_OF and SECTION_OF[key] != table:
        return f"unknown key '{key}' {where} (it belongs in [{SECTION_OF[key]}])"
    known = list(SECTIONS[table].model_fields) if table else []
    close = difflib.get_close_matches(key, known, n=1)
    return f"unknown key '{key}' {where}" + (f" (did you mean '{close[0]}'?)" if close else "")


def _file_layer() -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Values of the TOML config file and their sources; nothing without ``CAIRN_CONFIG``."""
    path = config_path()
    if path is None:
        return {}, {}
    try:
        with Path(path).expanduser().open("rb") as file:
            document = tomllib.load(file)
    except FileNotFoundError:
        raise ConfigFileError(f"config file {path} ({CONFIG_VARIABLE}): no such file") from None
    except IsADirectoryError:
        raise ConfigFileError(f"config file {path} ({CONFIG_VARIABLE}): is a directory") from None
    except OSError as exc:
        raise ConfigFileError(f"config file {path} ({CONFIG_VARIABLE}): {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigFileError(f"config file {path}: not valid TOML: {exc}") from None
    problems: list[str] = []
    values: dict[str, dict[str, Any]] = {}
    sources: dict[str, str] = {}
    for table, content in document.items():
        if table not in SECTIONS:
            if isinstance(content, dict):
                problems.append(f"unknown table [{table}] (tables: {', '.join(f'[{s}]' for s in SECTIONS)})")
            else:
                problems.append(_unknown_key(path, table, None))
            continue
        if not isinstance(content, dict):
            problems.append(f"'{table}' must be a table [{table}], not a value")
            continue
        for key, value in content.items():
            if key not in SECTIONS[table].model_fields:
                problems.append(_unknown_key(path, key, table))
                continue
            values.setdefault(table, {})[key] = value
            sources[f"{table}.{key}"] = f"config {path}"
    if problems:
        raise ConfigFileError(f"config file {path}: {'; '.join(problems)}")
    return values, sources


class _EnvSource(PydanticBaseSettingsSource):
    """The flat ``CAIRN_<NAME>`` variables, each into its section."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads all variables at once

    def __call__(self) -> dict[str, Any]:
        return _env_layer()[0]


class _ConfigFileSource(PydanticBaseSettingsSource):
    """The TOML file named by ``CAIRN_CONFIG``."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the whole file

    def __call__(self) -> dict[str, Any]:
        return _file_layer()[0]


def _nest(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments with flat names (``idle_timeout=5``) moved into their sections; a section given
    as a model keeps only the fields set on it, so the others still come from env, file or default."""
    nested: dict[str, Any] = {}
    for name, value in arguments.items():
        if name in SECTIONS and isinstance(value, BaseModel):
            value = value.model_dump(exclude_unset=True)
        nested[name] = dict(value) if name in SECTIONS and isinstance(value, Mapping) else value
    for name, value in arguments.items():
        section = SECTION_OF.get(name)
        if section is None:
            continue
        del nested[name]
        into = nested.setdefault(section, {})
        if not isinstance(into, dict):
            raise TypeError(f"{name}= given beside {section}= that is not a mapping")
        if name in into:
            raise TypeError(f"{name} given twice: as {name}= and in {section}=")
        into[name] = value
    return nested


class Settings(BaseSettings):
    """Every setting, by section: ``settings.server.host``, ``settings.limits.idle_timeout``, ... Flat
    keyword arguments (``Settings(data_dir=..., idle_timeout=1)``) go to their section."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    server: ServerSettings = Field(default_factory=ServerSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    inference: InferenceSettings = Field(default_factory=InferenceSettings)
    jobs: JobsSettings = Field(default_factory=JobsSettings)
    vector_stores: VectorStoresSettings = Field(default_factory=VectorStoresSettings)

    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    def __init__(self, **values: Any) -> None:
        arguments = _nest(values)
        super().__init__(**arguments)
        # Where each value came from, by the same precedence as the sources below.
        sources = {**_file_layer()[1], **_env_layer()[1]}
        for section, given in arguments.items():
            if section in SECTIONS and isinstance(given, dict):
                sources.update({f"{section}.{name}": "argument" for name in given})
        self._sources = sources

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # highest first: keyword arguments > CAIRN_* variables > the CAIRN_CONFIG file > defaults
        return init_settings, _EnvSource(settings_cls), _ConfigFileSource(settings_cls)

    def source_of(self, dotted: str) -> str:
        """Where the value ``section.name`` came from: ``argument``, ``env CAIRN_X``, ``config <path>``
        or ``default``."""
        return self._sources.get(dotted, "default")


def _mask_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.netloc.rsplit("@", 1)[0].split(":", 1)[0]
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{user}:********@{host}").geturl()


def _render(name: str, value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, SecretStr):
        return "********" if value.get_secret_value() else "(empty)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or "(none)"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int) and name.endswith("_bytes") and value >= 1024:
        for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
            if value >= size:
                return f"{value} ({value / size:g} {unit})"
    if isinstance(value, str) and "://" in value:
        return _mask_url(value)
    return str(value)


def describe_settings(settings: Settings) -> list[tuple[str, str, str]]:
    """Every effective value as (``section.name``, value for humans with secrets masked, source), in
    section and field order. Sources: ``default``, ``env CAIRN_X``, ``config <path>``, ``argument``."""
    rows = []
    for section in SECTIONS:
        model = getattr(settings, section)
        for name in type(model).model_fields:
            dotted = f"{section}.{name}"
            rows.append((dotted, _render(name, getattr(model, name)), settings.source_of(dotted)))
    return rows


def source_hint(dotted: str) -> str | None:
    """Where ``section.name`` would come from now (env or config file), for an error message about a
    value that did not validate; None for a default or when the file itself cannot be read."""
    try:
        return {**_file_layer()[1], **_env_layer()[1]}.get(dotted)
    except ConfigFileError:
        return None
