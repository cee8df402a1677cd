"""``LLMConfigService``: configured LangChain objects for agent code, following the configuration live."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Engine

from llmconfig.llm.building import ModelBuilder
from llmconfig.llm.cache import HotKey, ModelCache
from llmconfig.llm.resolved import ResolvedBuilder, ResolvedConfig
from llmconfig.llm.sources import DatabaseSource
from llmconfig.services import Services
from llmconfig.settings import Settings, get_settings

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings
    from langchain_core.language_models import BaseChatModel
    from sqlalchemy.orm import Session, sessionmaker

    from llmconfig.audit import AuditService
    from llmconfig.config import EntryService, InteractionTypeService, Resolver
    from llmconfig.providers import ProviderService
    from llmconfig.secrets import SecretBackend
    from llmconfig.tokens import TokenService
    from llmconfig.usage import UsageRecorder, UsageService


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
        self.services = services or Services.from_settings(self.settings, engine=engine)
        source = DatabaseSource(self.services)
        builder = ModelBuilder(
            self.settings,
            api_key=source.api_key,
            clients=self.services.providers.model_clients,
            recorder=self.services.usage_recorder,
        )
        self.cache = ModelCache(source, builder, ttl=self.settings.cache_ttl)
        # Resolve payloads for client-mode processes and the OpenAI-compatible face: built on first use.
        self._source = source
        self._payloads: ModelCache | None = None

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
        payloads = self._payload_cache()
        return self._stamped(payloads, payloads.get((interaction_type, user_id, None)))

    async def aresolve(self, interaction_type: str, *, user_id: str | None = None) -> ResolvedConfig:
        """Async twin of :meth:`resolve`."""
        payloads = self._payload_cache()
        return self._stamped(payloads, await payloads.aget((interaction_type, user_id, None)))

    def _payload_cache(self) -> ModelCache:
        if self._payloads is None:
            self._payloads = ModelCache(
                self._source, ResolvedBuilder(self._source.api_key), ttl=self.settings.cache_ttl
            )
        return self._payloads

    @staticmethod
    def _stamped(payloads: ModelCache, resolved: ResolvedConfig) -> ResolvedConfig:
        # Served as current at the newest revision the cache has read (any later change would have dropped it).
        revision = payloads.revision
        return resolved if revision is None else resolved.model_copy(update={"revision": revision})

    # The names of the platform this service grew out of; they keep working.
    get_llm_for_interaction = aget_llm
    get_embeddings_model = aget_embeddings

    def invalidate(self) -> None:
        """Forget every resolution; the next call reads the configuration again."""
        self.cache.invalidate()

    def close(self) -> None:
        """Write the usage still queued and release connections (the services too, when this built them)."""
        self.cache.clear()
        if self._payloads is not None:
            self._payloads.clear()
        if self._owns_services:
            self.services.close()
        else:
            self.services.usage_recorder.flush(timeout=5)

    # -- the composition root's services, for scripts and the server ----------------------------------

    @property
    def engine(self) -> Engine:
        return self.services.engine

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self.services.sessions

    @property
    def secrets(self) -> SecretBackend:
        return self.services.secrets

    @property
    def providers(self) -> ProviderService:
        return self.services.providers

    @property
    def types(self) -> InteractionTypeService:
        return self.services.types

    @property
    def config(self) -> EntryService:
        return self.services.config

    @property
    def resolver(self) -> Resolver:
        return self.services.resolver

    @property
    def audit(self) -> AuditService:
        return self.services.audit

    @property
    def usage(self) -> UsageService:
        return self.services.usage

    @property
    def usage_recorder(self) -> UsageRecorder:
        return self.services.usage_recorder

    @property
    def tokens(self) -> TokenService:
        return self.services.tokens
