"""Settings read from the environment (prefix ``LLMCONFIG_``) and from ``.env``.

One :class:`Settings` object is built per process (or per test) and passed down explicitly; nothing in the
package reads the environment behind the caller's back except :func:`get_settings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything an operator can set; see the configuration table in the README."""

    model_config = SettingsConfigDict(
        env_prefix="LLMCONFIG_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = "sqlite:///./llmconfig.db"
    host: str = "127.0.0.1"
    port: int = Field(default=8900, ge=1, le=65535)
    admin_token: SecretStr | None = None
    secret_backend: Literal["local", "aws"] = "local"
    master_key: SecretStr | None = None
    master_key_file: Path = Path("./llmconfig.key")
    aws_endpoint_url: str | None = None
    aws_region: str = "us-east-1"
    aws_secret_prefix: str = "llmconfig/"
    request_timeout: float = Field(default=10.0, gt=0, le=300)
    # How long a resolved model may be served from the cache before the database is asked whether the
    # configuration changed. Only a version counter is read, so this is cheap.
    cache_ttl: float = Field(default=1.0, ge=0, le=3600)

    # On PostgreSQL, receive changes by LISTEN/NOTIFY instead of checking every cache_ttl seconds.
    listen_for_changes: bool = True
    # Record every call made through get_llm / get_embeddings objects (tokens, latency, cost).
    usage_tracking: bool = True

    @field_validator("database_url")
    @classmethod
    def _normalise_postgres_driver(cls, value: str) -> str:
        # Operators paste URLs from their cloud console; psycopg 3 is the only driver we ship.
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        return value


def get_settings() -> Settings:
    """Build settings from the current environment and ``.env``."""
    return Settings()
