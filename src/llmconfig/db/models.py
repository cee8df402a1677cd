"""Typed SQLAlchemy models. The schema itself is owned by the Alembic migrations in ``migrations/``.

Rows that people edit carry a ``version`` that SQLAlchemy checks on every UPDATE (``version_id_col``),
so two writers racing on the same row cannot both win.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite hands back naive values otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class InteractionType(Timestamped, Base):
    __tablename__ = "interaction_types"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # "chat" | "embeddings"
    description: Mapped[str] = mapped_column(Text, default="")
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}


class Provider(Timestamped, Base):
    __tablename__ = "providers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    provider_type: Mapped[str] = mapped_column(String(16))  # "openai" | "anthropic" | "custom"
    api_base_url: Mapped[str | None] = mapped_column(String(2048))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    validation_status: Mapped[str] = mapped_column(String(16), default="never")
    validation_error: Mapped[str | None] = mapped_column(Text)
    validated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer, default=1)

    models: Mapped[list[ProviderModel]] = relationship(
        back_populates="provider", cascade="all, delete-orphan", order_by="ProviderModel.model_name"
    )
    # Its API keys, the first one first; loaded with the provider (every public view shows the first's hint).
    keys: Mapped[list[ProviderKey]] = relationship(
        back_populates="provider",
        cascade="all, delete-orphan",
        order_by="(ProviderKey.created_at, ProviderKey.id)",
        lazy="selectin",
    )

    __mapper_args__ = {"version_id_col": version}


class ProviderKey(Base):
    """One API key of a provider: a reference into the secret backend (bound to the provider), never the key."""

    __tablename__ = "provider_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    provider_id: Mapped[str] = mapped_column(ForeignKey("providers.id", ondelete="CASCADE"), index=True)
    secret_ref: Mapped[str] = mapped_column(Text)
    # The last four characters of keys of 12 characters or more, so that operators can tell keys apart.
    hint: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    provider: Mapped[Provider] = relationship(back_populates="keys")


class ProviderModel(Base):
    """One entry of a provider's catalog."""

    __tablename__ = "provider_models"
    __table_args__ = (UniqueConstraint("provider_id", "model_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider_id: Mapped[str] = mapped_column(ForeignKey("providers.id", ondelete="CASCADE"), index=True)
    model_name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))  # "chat" | "embeddings"
    display_name: Mapped[str | None] = mapped_column(String(255))
    discovered_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    provider: Mapped[Provider] = relationship(back_populates="models")


class ModelSettings:
    """The fields shared by a global config entry and a user override."""

    provider_id: Mapped[str] = mapped_column(ForeignKey("providers.id", ondelete="RESTRICT"), index=True)
    model_name: Mapped[str] = mapped_column(String(255))
    temperature: Mapped[float | None] = mapped_column(Float)
    max_tokens: Mapped[int | None] = mapped_column(Integer)
    extra_params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    fallbacks: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    # The share of traffic of the entry's own provider and model (the variant named "main"), and the other
    # variants with theirs; see llmconfig.config.variants.
    weight: Mapped[int] = mapped_column(Integer, default=100)
    variants: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    updated_by: Mapped[str | None] = mapped_column(String(255))


class GlobalConfig(ModelSettings, Timestamped, Base):
    __tablename__ = "global_configs"

    interaction_type: Mapped[str] = mapped_column(
        ForeignKey("interaction_types.name", ondelete="RESTRICT"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, default=1)

    provider: Mapped[Provider] = relationship()

    __mapper_args__ = {"version_id_col": version}


class UserConfig(ModelSettings, Timestamped, Base):
    __tablename__ = "user_configs"
    __table_args__ = (UniqueConstraint("user_id", "interaction_type"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    interaction_type: Mapped[str] = mapped_column(ForeignKey("interaction_types.name", ondelete="RESTRICT"))
    version: Mapped[int] = mapped_column(Integer, default=1)

    provider: Mapped[Provider] = relationship()

    __mapper_args__ = {"version_id_col": version}


class Group(Base):
    """A group of users that share entries. It exists once it has members or entries, until it is deleted."""

    __tablename__ = "groups"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class GroupConfig(ModelSettings, Timestamped, Base):
    """One group's entry of one interaction type; it wins over the global entry for the group's members."""

    __tablename__ = "group_configs"
    __table_args__ = (UniqueConstraint("group_name", "interaction_type"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    group_name: Mapped[str] = mapped_column(ForeignKey("groups.name", ondelete="RESTRICT"), index=True)
    interaction_type: Mapped[str] = mapped_column(ForeignKey("interaction_types.name", ondelete="RESTRICT"))
    version: Mapped[int] = mapped_column(Integer, default=1)

    provider: Mapped[Provider] = relationship()

    __mapper_args__ = {"version_id_col": version}


class GroupMember(Base):
    """A user's membership of a group; ``position`` orders a user's groups (0 first, the first one wins)."""

    __tablename__ = "group_members"
    __table_args__ = (UniqueConstraint("user_id", "position"),)

    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    group_name: Mapped[str] = mapped_column(
        ForeignKey("groups.name", ondelete="RESTRICT"), primary_key=True, index=True
    )
    position: Mapped[int] = mapped_column(Integer)


class ConfigRevision(Base):
    """A single counter bumped in the same transaction as every change that can alter resolution.

    Processes that cache resolved models compare it with the value they saw last: one indexed read of one
    row tells them whether anything changed.
    """

    __tablename__ = "config_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger, default=0)


class ApiToken(Base):
    """A bearer token of the REST API. Only its SHA-256 is stored; the token itself is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))  # "admin" | "viewer" | "client"
    # Client tokens only: the interaction types the token may use; None means all of them.
    interaction_types: Mapped[list[str] | None] = mapped_column(JSON)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters, so operators can tell tokens apart without the token.
    token_prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(255))
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditEntry(Base):
    """One change: who, when, what, and the object before and after (never with a secret in it)."""

    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(512), index=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class UsageRecord(Base):
    """One call made through an object from get_llm / get_embeddings."""

    __tablename__ = "usage_records"
    # Budgets sum spend per period by the column their scope names (llmconfig.usage.budgets).
    __table_args__ = (
        Index("ix_usage_records_user_id_at", "user_id", "at"),
        Index("ix_usage_records_provider_id_at", "provider_id", "at"),
        Index("ix_usage_records_interaction_type_at", "interaction_type", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    interaction_type: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(255))
    # No foreign key: usage outlives the providers it was made with.
    provider_id: Mapped[str | None] = mapped_column(String(36))
    provider_name: Mapped[str] = mapped_column(String(100))
    model_name: Mapped[str] = mapped_column(String(255))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[float] = mapped_column(Float)
    success: Mapped[bool] = mapped_column(Boolean)
    error_class: Mapped[str | None] = mapped_column(String(100))
    # The hint of the provider key that served the call (None: no key, or one too short for a hint).
    key_hint: Mapped[str | None] = mapped_column(String(8))
    cost_usd: Mapped[float | None] = mapped_column(Float)
    # The variant of the entry that made the call ("main" for its own model); NULL when the entry has none.
    variant: Mapped[str | None] = mapped_column(String(64))


class ModelPrice(Base):
    """List price of a model, per million input and output tokens, used to estimate the cost of usage."""

    __tablename__ = "model_prices"

    model_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    input_per_million: Mapped[float] = mapped_column(Float)
    output_per_million: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}


class Budget(Base):
    """A cap on what one scope may spend per period, in USD and/or tokens (see llmconfig.usage.budgets)."""

    __tablename__ = "budgets"

    # "type:<interaction type>", "user:<user id>", "group:<group>" or "provider:<provider id>".
    scope: Mapped[str] = mapped_column(String(300), primary_key=True)
    period: Mapped[str] = mapped_column(String(8))  # "hour" | "day" | "month", in UTC
    limit_usd: Mapped[float | None] = mapped_column(Float)
    limit_tokens: Mapped[int | None] = mapped_column(BigInteger)
    # {"provider_id", "model_name"}: the model calls go to once the budget is spent; None: they fail.
    on_exceed: Mapped[dict[str, str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}
