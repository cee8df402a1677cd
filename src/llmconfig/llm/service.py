"""``LLMConfigService``: configured LangChain objects for agent code, following the configuration live."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

from llmconfig.errors import LLMConfigError, SettingsError
from llmconfig.llm.building import ModelBuilder
from llmconfig.llm.cache import HotKey, ModelCache
from llmconfig.llm.resolved import ResolvedBuilder, ResolvedConfig, ResolvedTarget
from llmconfig.llm.sources import ResolutionSource
from llmconfig.settings import Settings, get_settings

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings
    from langchain_core.language_models import BaseChatModel
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from llmconfig.audit import AuditService
    from llmconfig.config import EntryService, GroupService, InteractionTypeService, Resolver
    from llmconfig.providers import ProviderService
    from llmconfig.providers.clients import ModelClients
    from llmconfig.providers.keys import KeyPool
    from llmconfig.secrets import SecretBackend
    from llmconfig.services import Services
    from llmconfig.tokens import TokenService
    from llmconfig.usage import UsageRecorder, UsageService
    from llmconfig.usage.budgets import BudgetService

T = TypeVar("T")

# How many resolve payloads dropped by one change are resolved again before the server relays it: the global
# entry and the overrides of the users who asked last, far more than a change usually affects.
REFILL = 64
# A bound on the resolve payloads kept as JSON (as many as the payload cache keeps).
MAX_JSON = 10_000


class _OfServices(Generic[T]):
    """An attribute of the composition root, reachable on the service too (``svc.providers``)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, service: LLMConfigService, owner: type | None = None) -> T:
        value: T = getattr(service.services, self._name)
        return value


class LLMConfigService:
    """Resolves interaction types to LangChain objects, following the stored configuration live.

    One instance per process is the normal use (see :func:`llmconfig.get_llm`); it is thread-safe. It is
    the model cache over the composition root's :class:`~llmconfig.services.Services` (``services``), whose
    parts are also reachable directly (``providers``, ``config`` …) for scripts.
    """

    def __init__(
        self, settings: Settings | None = None, *, engine: Engine | None = None, services: Services | None = None
    ) -> None:
        self.settings = settings or (services.settings if services is not None else get_settings())
        self._owns_services = services is None
        self._services: Services | None = None
        self._closers: list[Any] = []
        self._recorder: UsageRecorder | None = None
        self._client_mode_clients: ModelClients | None = None
        source: ResolutionSource
        if self.settings.client_mode and services is None:
            source, builder = self._client_mode()
        else:
            source, builder = self._local_mode(services, engine)
        self.cache = ModelCache(source, builder, ttl=self.settings.cache_ttl)
        self._source = source
        # Resolve payloads for the server's /resolve and the OpenAI-compatible face. Made now in local mode, so
        # that it learns of each change before anything subscribed later (the server's change stream relays the
        # change once the payloads it dropped are resolved again: see ``refill``).
        self._payloads: ModelCache | None = None
        # Resolve payloads as JSON, by key: (the payload, the revision it was stamped with, its bytes).
        self._resolved_json: dict[HotKey, tuple[ResolvedConfig, int | None, bytes]] = {}
        if self._services is not None:
            self._payloads = self.payloads

    def _local_mode(self, services: Services | None, engine: Engine | None) -> tuple[ResolutionSource, ModelBuilder]:
        """Resolutions from the database, keys decrypted here."""
        from llmconfig.llm.sources import DatabaseSource
        from llmconfig.services import Services

        if services is None and (self.settings.server_url is None) != (self.settings.token is None):
            missing = "LLMCONFIG_TOKEN" if self.settings.token is None else "LLMCONFIG_SERVER_URL"
            raise SettingsError(
                f"{missing} is not set: client mode needs both LLMCONFIG_SERVER_URL and LLMCONFIG_TOKEN (a client "
                "token); unset the other one to use the database directly"
            )
        self._services = services or Services.from_settings(self.settings, engine=engine)
        self._recorder = self._services.usage_recorder
        source = DatabaseSource(self._services)
        builder = ModelBuilder(
            self.settings,
            api_keys=source.api_keys,
            clients=self._services.providers.model_clients,
            recorder=self._services.usage_recorder,
            spend=self._services.spend,
        )
        return source, builder

    def _client_mode(self) -> tuple[ResolutionSource, ModelBuilder]:
        """Resolutions from the server (LLMCONFIG_SERVER_URL): no database, no master key in this process."""
        from llmconfig.llm.client import ServerConnection, ServerSource, ServerSpend, ServerUsageSink
        from llmconfig.providers.clients import ModelClients
        from llmconfig.providers.outbound import OutboundPolicy
        from llmconfig.usage.recorder import UsageRecorder

        connection = ServerConnection(self.settings)
        spend = ServerSpend(self.settings, connection)
        source = ServerSource(self.settings, connection, spend)
        policy = OutboundPolicy(allow=self.settings.outbound_allow, deny=self.settings.outbound_deny)
        clients = ModelClients(policy, max_response_bytes=self.settings.model_max_response_bytes)
        recorder = self._recorder = UsageRecorder(ServerUsageSink(connection), max_queue=self.settings.usage_queue_size)
        # Closed in this order: the recorder posts what is queued before the connection goes.
        self._closers = [source.close, spend.close, lambda: recorder.flush(timeout=5), connection.close, clients.close]
        self._client_mode_clients = clients
        builder = ModelBuilder(self.settings, api_keys=source.api_keys, clients=clients, recorder=recorder, spend=spend)
        return source, builder

    @property
    def changes_pushed(self) -> bool:
        """Whether changes reach this process as they are committed (PostgreSQL's LISTEN/NOTIFY, or the server's
        change stream in client mode); otherwise the revision is checked at most every ``LLMCONFIG_CACHE_TTL``."""
        return self._source.pushed

    @property
    def services(self) -> Services:
        """The composition root this service resolves from (not available in client mode)."""
        if self._services is None:
            raise LLMConfigError(
                "This process resolves through the llmconfig server (LLMCONFIG_SERVER_URL): it has no database "
                "here; manage providers and configuration with the server's REST API, CLI or panel"
            )
        return self._services

    # -- public API --------------------------------------------------------------------------------

    def get_llm(self, interaction_type: str = "reasoning", *, user_id: str | None = None) -> BaseChatModel:
        """The chat model configured for ``interaction_type`` (and ``user_id``'s override, if any)."""
        model: BaseChatModel = self.cache.get((interaction_type, user_id, "chat"))
        return model

    def get_embeddings(self, interaction_type: str = "embeddings", *, user_id: str | None = None) -> Embeddings:
        """The embeddings model configured for ``interaction_type`` (``embeddings`` by default)."""
        embeddings: Embeddings = self.cache.get((interaction_type, user_id, "embeddings"))
        return embeddings

    async def aget_llm(self, interaction_type: str = "reasoning", *, user_id: str | None = None) -> BaseChatModel:
        """Async twin of :meth:`get_llm`; a cache hit returns at once, a miss resolves in a worker thread."""
        key: HotKey = (interaction_type, user_id, "chat")
        model: BaseChatModel = await self.cache.aget(key)
        return model

    async def aget_embeddings(self, interaction_type: str = "embeddings", *, user_id: str | None = None) -> Embeddings:
        """Async twin of :meth:`get_embeddings`."""
        key: HotKey = (interaction_type, user_id, "embeddings")
        embeddings: Embeddings = await self.cache.aget(key)
        return embeddings

    def resolve(self, interaction_type: str, *, user_id: str | None = None) -> ResolvedConfig:
        """What ``interaction_type`` resolves to for ``user_id``, keys included (a dictionary lookup when warm).

        NotFoundError when the type is unknown or nothing is configured for it.
        """
        payloads = self.payloads
        return self._stamped(payloads, payloads.get((interaction_type, user_id, None)))

    async def aresolve(self, interaction_type: str, *, user_id: str | None = None) -> ResolvedConfig:
        """Async twin of :meth:`resolve`."""
        payloads = self.payloads
        return self._stamped(payloads, await payloads.aget((interaction_type, user_id, None)))

    def resolved_json(self, interaction_type: str, user_id: str | None = None) -> bytes | None:
        """:meth:`resolve` as JSON when it is cached and fresh, without any I/O (None otherwise).

        Serialised once per payload and revision: what the server's ``/resolve`` answers warm requests with.
        """
        payloads = self.payloads
        key: HotKey = (interaction_type, user_id, None)
        resolved = payloads.cached(key)
        if resolved is None:
            return None
        revision = payloads.revision
        kept = self._resolved_json.get(key)
        if kept is not None and kept[0] is resolved and kept[1] == revision:
            return kept[2]
        body = self._stamped(payloads, resolved).model_dump_json().encode()
        if len(self._resolved_json) >= MAX_JSON:
            self._resolved_json.clear()
        self._resolved_json[key] = (resolved, revision, body)
        return body

    @property
    def payloads(self) -> ModelCache:
        """The cache of resolve payloads (:meth:`resolve`); it resolves again up to ``REFILL`` entries a change
        dropped when asked to (``payloads.refill()``)."""
        if self._payloads is None:
            self._payloads = ModelCache(
                self._source, ResolvedBuilder(self._source.api_keys), ttl=self.settings.cache_ttl, refill=REFILL
            )
        return self._payloads

    def key_pool(self, target: ResolvedTarget) -> KeyPool:
        """The key pool of a resolved target's provider: the one this process's model objects call it with.

        For callers with an HTTP client of their own (the OpenAI-compatible face): take ``key = pool.choose()``
        for each request, send ``pool.credentials(key)`` as its headers, and report the answer with
        ``pool.observe(key, status, headers)``; a key answered 429/401/403 then rests here for every caller.
        """
        clients = self._client_mode_clients or self.services.providers.model_clients
        return clients.key_pools.pool(target.provider_id, target.provider_type, target.pool_keys())

    @staticmethod
    def _stamped(payloads: ModelCache, resolved: ResolvedConfig) -> ResolvedConfig:
        # Served as current at the newest revision the cache has read (any later change would have dropped it).
        revision = payloads.revision
        return resolved if revision is None else resolved.model_copy(update={"revision": revision})

    # The names of the platform this service grew out of; they keep working.
    get_llm_for_interaction = aget_llm
    get_embeddings_model = aget_embeddings

    def flush_usage(self, timeout: float = 10.0) -> bool:
        """Wait until the usage recorded so far is written (to the database, or posted to the server)."""
        return self._recorder is None or self._recorder.flush(timeout=timeout)

    def invalidate(self) -> None:
        """Forget every resolution; the next call reads the configuration again (asks the server, in client mode)."""
        self._source.forget()
        self.cache.invalidate()

    def close(self) -> None:
        """Write the usage still queued and release connections (the services too, when this built them)."""
        self.cache.clear()
        if self._payloads is not None:
            self._payloads.clear()
        for close in self._closers:
            close()
        if self._services is None:
            return
        if self._owns_services:
            self._services.close()
        else:
            self._services.usage_recorder.flush(timeout=5)

    # -- the composition root's services, for scripts and the server -----------------------------------

    engine: _OfServices[Engine] = _OfServices()
    sessions: _OfServices[sessionmaker[Session]] = _OfServices()
    secrets: _OfServices[SecretBackend] = _OfServices()
    providers: _OfServices[ProviderService] = _OfServices()
    types: _OfServices[InteractionTypeService] = _OfServices()
    config: _OfServices[EntryService] = _OfServices()
    groups: _OfServices[GroupService] = _OfServices()
    resolver: _OfServices[Resolver] = _OfServices()
    audit: _OfServices[AuditService] = _OfServices()
    usage: _OfServices[UsageService] = _OfServices()
    usage_recorder: _OfServices[UsageRecorder] = _OfServices()
    budgets: _OfServices[BudgetService] = _OfServices()
    tokens: _OfServices[TokenService] = _OfServices()
