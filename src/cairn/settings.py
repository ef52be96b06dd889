"""All configuration in one model: environment variables ``CAIRN_*`` (the CLI sets them from its flags)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, IPvAnyNetwork, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

GiB = 1 << 30
MiB = 1 << 20
_ORIGIN = re.compile(r"https?://[^/\s?#]+")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CAIRN_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address to listen on. Non-loopback requires API keys.")
    port: int = Field(8321, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64, description="Server processes sharing one data directory.")
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
    upload_expiry: int = Field(86_400, ge=60, description="Seconds an unfinished upload session lives.")
    expiry_interval: float = Field(60.0, gt=0, description="Seconds between sweeps for expired objects.")
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
    def _s3_needs_postgres(self) -> Settings:
        # upload sessions staged in S3 take their locks from PostgreSQL (docs/decisions.md D17)
        if self.blob_store and not self.resolved_database_url.startswith("postgresql"):
            raise ValueError("blob_store s3://… needs a PostgreSQL database_url (postgresql://…)")
        return self

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
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        origins = [origin.rstrip("/") for origin in value]
        for origin in origins:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(f"{origin!r} is not an origin such as https://app.example.com or '*'")
        return origins

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be a redis://, rediss:// or unix:// URL, e.g. redis://127.0.0.1:6379/0")
        return value or None

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'cairn.db'}"
