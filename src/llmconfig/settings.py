"""Settings read from the environment (prefix ``LLMCONFIG_``) and from ``.env``.

One :class:`Settings` object is built per process (or per test) and passed down explicitly; nothing in the
package reads the environment behind the caller's back except :func:`get_settings`.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Everything an operator can set; see the configuration table in the README."""

    model_config = SettingsConfigDict(
        env_prefix="LLMCONFIG_", env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    database_url: str = "sqlite:///./llmconfig.db"
    host: str = "127.0.0.1"
    port: int = Field(default=8900, ge=1, le=65535)
    # Worker processes of `llmconfig serve` on this host, each with its own services and read snapshot.
    workers: int = Field(default=1, ge=1, le=64)
    admin_token: SecretStr | None = None
    secret_backend: Literal["local", "aws"] = "local"
    master_key: SecretStr | None = None
    # The key before the last rotation: secrets it encrypted still decrypt (new ones use master_key).
    master_key_previous: SecretStr | None = None
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
    # Usage events waiting to be written (a bound on their memory): while this many wait, because the database
    # or the server is slow or down, further ones are dropped and counted (llmconfig_usage_events_dropped_total).
    usage_queue_size: int = Field(default=100_000, ge=1, le=10_000_000)
    # Seconds between two readings of what each budget has spent (from the usage table, or the server's).
    budget_refresh: float = Field(default=2.0, gt=0, le=5)

    # The guard on validation, discovery and model calls (llmconfig.providers.outbound): comma-separated IP
    # addresses, CIDRs, host names or *.domain wildcards. NoDecode: the environment gives a plain list, not JSON.
    outbound_allow: Annotated[tuple[str, ...], NoDecode] = ()
    outbound_deny: Annotated[tuple[str, ...], NoDecode] = ()
    # A model list is kilobytes; a body this large is a wrong URL or a hostile server, and is not read further.
    outbound_max_response_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, le=1024**3)
    # The same for the answers of model calls (decoded, and in total for a stream): far above any completion
    # or batch of embeddings, far below what would hurt the process.
    model_max_response_bytes: int = Field(default=32 * 1024 * 1024, ge=1024, le=1024**3)
    # Requests to the OpenAI-compatible endpoints carry whole conversations, images as data URLs included:
    # far larger than the 1 MB documents of the rest of the API.
    gateway_max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024, le=1024**3)

    # Client mode (DESIGN §9): with both set, get_llm resolves through this llmconfig server, and the process
    # needs neither a database URL nor the master key.
    server_url: str | None = None
    token: SecretStr | None = None
    # Seconds between keep-alive comments on the change stream (GET /changes), so proxies keep it open.
    stream_heartbeat: float = Field(default=15.0, gt=0, le=300)

    # The environment fallback (DESIGN §1): OpenAI's own variables, read without the LLMCONFIG_ prefix.
    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")

    # Reverse proxies whose Forwarded / X-Forwarded-For headers name the real client (addresses or CIDRs).
    # Empty: those headers are ignored, and every client is known by the address it connects from.
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = ()

    @field_validator("openai_api_key", "openai_base_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # `export OPENAI_API_KEY=` (empty) means "not set", as it did for os.environ.get(...) or None.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("server_url")
    @classmethod
    def _server_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        url = value.strip().rstrip("/")
        scheme, _, rest = url.partition("://")
        if scheme.lower() not in ("http", "https") or not rest or rest.startswith("/"):
            raise ValueError(
                "LLMCONFIG_SERVER_URL must be the server's http(s) address, for example https://llmconfig.internal:8900"
            )
        return url

    @property
    def client_mode(self) -> bool:
        """Whether get_llm resolves through a server (LLMCONFIG_SERVER_URL and LLMCONFIG_TOKEN both set)."""
        return self.server_url is not None and self.token is not None

    @field_validator("database_url")
    @classmethod
    def _normalise_postgres_driver(cls, value: str) -> str:
        # Operators paste URLs from their cloud console; psycopg 3 is the only driver we ship.
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        return value

    @field_validator("outbound_allow", "outbound_deny", mode="before")
    @classmethod
    def _parse_outbound_rules(cls, value: Any, info: ValidationInfo) -> tuple[str, ...]:
        # Imported here: the providers package imports this module.
        from llmconfig.providers.outbound import parse_rule

        entries = value.split(",") if isinstance(value, str) else list(value or ())
        rules: list[str] = []
        for entry in entries:
            if not isinstance(entry, str):
                raise ValueError(f"LLMCONFIG_{(info.field_name or '').upper()}: entries must be strings")
            if not entry.strip():
                continue
            try:
                rules.append(parse_rule(entry).text)
            except ValueError as exc:
                raise ValueError(f"LLMCONFIG_{(info.field_name or '').upper()}: {exc}") from None
        return tuple(rules)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _parse_trusted_proxies(cls, value: Any) -> tuple[str, ...]:
        entries = value.split(",") if isinstance(value, str) else list(value or ())
        networks: list[str] = []
        for entry in entries:
            if not isinstance(entry, str):
                raise ValueError("LLMCONFIG_TRUSTED_PROXIES: entries must be strings")
            if not entry.strip():
                continue
            try:
                network = ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(
                    f"LLMCONFIG_TRUSTED_PROXIES: {entry.strip()!r} is not an IP address or CIDR (e.g. 10.0.0.0/8)"
                ) from None
            networks.append(str(network))
        return tuple(networks)


def get_settings() -> Settings:
    """Build settings from the current environment and ``.env``."""
    return Settings()
