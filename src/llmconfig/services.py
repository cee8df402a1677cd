"""The composition root: every service of llmconfig, wired once from :class:`~llmconfig.settings.Settings`.

The REST API, the CLI, configuration as code and the model cache (``llmconfig.llm``) all receive the same
:class:`Services`; nothing else builds an engine, a secret backend or a service.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from llmconfig.audit import AuditService
from llmconfig.config.entries import EntryService
from llmconfig.config.groups import GroupService
from llmconfig.config.resolution import Resolver
from llmconfig.config.types import InteractionTypeService
from llmconfig.db.changes import Announcement, Change
from llmconfig.db.engine import create_db_engine, make_sessionmaker
from llmconfig.db.notifications import ChangeFeed
from llmconfig.providers.service import ProviderService
from llmconfig.secrets import SecretBackend, make_secret_backend
from llmconfig.settings import Settings, get_settings
from llmconfig.tokens import TokenService
from llmconfig.usage import UsageRecorder, UsageService
from llmconfig.usage.budgets import BudgetService
from llmconfig.usage.recorder import DatabaseSink
from llmconfig.usage.spend import SpendMeter


@dataclass(eq=False)
class Services:
    """The services of one process (or one test), sharing one engine, secret backend and change feed."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    changes: ChangeFeed
    secrets: SecretBackend
    providers: ProviderService
    types: InteractionTypeService
    config: EntryService
    groups: GroupService
    resolver: Resolver
    audit: AuditService
    usage: UsageService
    usage_recorder: UsageRecorder
    budgets: BudgetService
    spend: SpendMeter
    tokens: TokenService

    @classmethod
    def from_settings(cls, settings: Settings | None = None, *, engine: Engine | None = None) -> Services:
        """Wire everything from ``settings`` (the environment by default); ``engine`` reuses an existing one.

        On PostgreSQL (with ``listen_for_changes``) this starts the thread that LISTENs for other processes'
        changes; :meth:`close` stops it.
        """
        settings = settings or get_settings()
        engine = engine or create_db_engine(settings.database_url)
        sessions = make_sessionmaker(engine)
        secrets = make_secret_backend(settings)
        providers = ProviderService(sessions=sessions, secrets=secrets, settings=settings)
        types = InteractionTypeService(sessions=sessions)
        changes = ChangeFeed(engine, sessions, listen=settings.listen_for_changes)
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            changes=changes,
            secrets=secrets,
            providers=providers,
            types=types,
            config=EntryService(
                sessions=sessions,
                providers=providers,
                types=types,
                environment_fallback=settings.openai_api_key is not None,
            ),
            groups=GroupService(sessions=sessions),
            resolver=Resolver(sessions=sessions),
            audit=AuditService(sessions=sessions),
            usage=UsageService(sessions=sessions),
            usage_recorder=UsageRecorder(DatabaseSink(sessions), max_queue=settings.usage_queue_size),
            budgets=BudgetService(sessions=sessions),
            # A budget that becomes spent (or no longer is) is announced here, for the change stream's clients.
            spend=SpendMeter(
                sessions,
                refresh=settings.budget_refresh,
                on_change=lambda scope: changes.deliver(Announcement(Change.spend(scope))),
            ),
            tokens=TokenService(
                sessions=sessions,
                env_admin_token=settings.admin_token.get_secret_value() if settings.admin_token else None,
                # Tokens changed by another process (the CLI, a replica) are seen within this time at most.
                ttl=settings.cache_ttl,
                changes=changes,
            ),
        )

    def close(self) -> None:
        """Stop listening, write the usage still queued, close HTTP clients and database connections."""
        self.changes.close()
        self.usage_recorder.flush(timeout=5)
        self.providers.close()
        self.engine.dispose()
