"""All configuration in one model: environment variables ``CAIRN_*`` (the CLI sets them from its flags)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

GiB = 1 << 30
MiB = 1 << 20


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CAIRN_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address to listen on. Non-loopback requires API keys.")
    port: int = Field(8321, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64, description="Server processes sharing one data directory.")
    data_dir: Path = Field(Path("cairn-data"), description="Blobs, staging files and the SQLite database.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the metadata database; default: SQLite in the data directory."
    )
    max_upload_bytes: int = Field(100 * GiB, ge=1, description="Largest object accepted, in bytes.")
    min_free_bytes: int = Field(256 * MiB, ge=0, description="Free space kept in reserve on the blob volume.")
    idle_timeout: float = Field(
        60.0, gt=0, description="Seconds a request body may stall before it is dropped."
    )
    upload_expiry: int = Field(86_400, ge=60, description="Seconds an unfinished upload session lives.")
    expiry_interval: float = Field(60.0, gt=0, description="Seconds between sweeps for expired objects.")
    log_level: str = Field("info")
    access_log: bool = Field(True, description="Log one line per request (uvicorn's access log).")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'cairn.db'}"
