"""``get_llm`` and ``get_embeddings``: configured LangChain objects, built once and reused.

Two caches keep the hot path a dictionary lookup:

* ``_hot`` maps ``(interaction type, user id, kind)`` to the object last handed out for it;
* ``_objects`` maps a :class:`~llmconfig.config.resolution.Resolution` (everything an object is built
  from) to the object, so user overrides that resolve alike, and unchanged entries after an invalidation,
  share one instance.

Staleness is bounded by ``LLMCONFIG_CACHE_TTL``: at most that often, one indexed read of the config
revision counter tells whether anything changed; if it did, ``_hot`` is dropped and the next call
resolves again. When the database cannot be reached, the objects already handed out keep being served
(last known good) and the failure is logged once until the database answers again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Engine

from llmconfig.audit import AuditService
from llmconfig.config.defaults import default_for
from llmconfig.config.resolution import Resolution, Target
from llmconfig.config.service import ConfigService
from llmconfig.db.engine import create_db_engine, make_sessionmaker, on_committed_changes
from llmconfig.errors import DatabaseUnavailableError, LLMConfigError
from llmconfig.providers.adapters import OPENAI_DEFAULT_BASE_URL, OpenAIAdapter, adapter_for
from llmconfig.providers.service import ProviderService
from llmconfig.secrets import SecretBackend, make_secret_backend
from llmconfig.settings import Settings, get_settings
from llmconfig.usage import UsageRecorder, UsageService

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings
    from langchain_core.language_models import BaseChatModel

    from llmconfig.invalidation import ChangeListener
    from llmconfig.usage.tracking import CallContext

log = logging.getLogger("llmconfig.factory")

Kind = Literal["chat", "embeddings"]
HotKey = tuple[str, str | None, Kind]

# Bounds memory when many distinct user ids pass through one process.
_MAX_HOT_ENTRIES = 10_000


class LLMConfigService:
    """Resolves interaction types to LangChain objects, following the stored configuration live.

    One instance per process is the normal use (see :func:`get_llm`); it is thread-safe.
    """

    def __init__(self, settings: Settings | None = None, *, engine: Engine | None = None) -> None:
        self.settings = settings or get_settings()
        self.engine = engine or create_db_engine(self.settings.database_url)
        self.sessions = make_sessionmaker(self.engine)
        self.secrets: SecretBackend = make_secret_backend(self.settings)
        self.providers = ProviderService(sessions=self.sessions, secrets=self.secrets, settings=self.settings)
        self.config = ConfigService(sessions=self.sessions, providers=self.providers)
        self.audit = AuditService(sessions=self.sessions)
        self.usage = UsageService(sessions=self.sessions)
        self.usage_recorder = UsageRecorder(self.sessions)
        # Hot key -> (object, the resolution it came from, or None for the environment fallback).
        self._hot: dict[HotKey, tuple[Any, Resolution | None]] = {}
        # Survives invalidation: what to serve for a key while the database cannot be reached.
        self._last_good: dict[HotKey, Any] = {}
        # Bumped by every pushed change, so a resolution that raced with one is not cached.
        self._generation = 0
        self._objects: dict[Resolution, Any] = {}
        # What callers get: the shared object above with this caller's usage tracking attached.
        self._tracked: dict[tuple[Resolution, str | None], Any] = {}
        self._revision: int | None = None
        self._checked_at = float("-inf")
        self._build_lock = threading.Lock()
        self._outage_logged = False
        self._env_warned: set[str] = set()
        self._listener: ChangeListener | None = None
        on_committed_changes(self.sessions, self._on_change)
        if self.engine.dialect.name == "postgresql" and self.settings.listen_for_changes:
            from llmconfig.invalidation import ChangeListener

            self._listener = ChangeListener(self.engine.url, self._on_change).start()

    # -- public API --------------------------------------------------------------------------------

    def get_llm(self, interaction_type: str = "reasoning", user_id: str | None = None) -> BaseChatModel:
        """The chat model configured for ``interaction_type`` (and ``user_id``'s override, if any)."""
        model: BaseChatModel = self._get((interaction_type, user_id, "chat"))
        return model

    def get_embeddings(self, user_id: str | None = None, interaction_type: str = "embeddings") -> Embeddings:
        """The embeddings model configured for ``interaction_type`` (``embeddings`` by default)."""
        embeddings: Embeddings = self._get((interaction_type, user_id, "embeddings"))
        return embeddings

    async def get_llm_for_interaction(
        self, interaction_type: str = "reasoning", user_id: str | None = None
    ) -> BaseChatModel:
        """Async twin of :meth:`get_llm`; a cache hit returns at once, a miss resolves in a worker thread."""
        key: HotKey = (interaction_type, user_id, "chat")
        cached = self._fresh_hit(key)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        return await asyncio.to_thread(self.get_llm, interaction_type, user_id)

    async def get_embeddings_model(
        self, user_id: str | None = None, interaction_type: str = "embeddings"
    ) -> Embeddings:
        """Async twin of :meth:`get_embeddings`."""
        key: HotKey = (interaction_type, user_id, "embeddings")
        cached = self._fresh_hit(key)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        return await asyncio.to_thread(self.get_embeddings, user_id, interaction_type)

    def invalidate(self) -> None:
        """Forget every resolution; the next call reads the configuration again."""
        self._generation += 1
        self._hot.clear()
        self._checked_at = float("-inf")

    def close(self) -> None:
        if self._listener is not None:
            self._listener.stop()
        self.usage_recorder.flush(timeout=5)
        self.invalidate()
        self._objects.clear()
        self._tracked.clear()
        self.providers.close()
        self.engine.dispose()

    # -- cache -------------------------------------------------------------------------------------

    def _pushed(self) -> bool:
        """Whether changes reach this process by notification right now (PostgreSQL, listener up)."""
        return self._listener is not None and self._listener.healthy

    def _stale(self) -> bool:
        return not self._pushed() and time.monotonic() - self._checked_at > self.settings.cache_ttl

    def _fresh_hit(self, key: HotKey) -> Any:
        if self._stale():
            return None
        cached = self._hot.get(key)
        return None if cached is None else cached[0]

    def _get(self, key: HotKey) -> Any:
        cached = self._hot.get(key)
        if cached is not None:
            if not self._stale():
                return cached[0]
            self._check_revision()
            cached = self._hot.get(key)
            if cached is not None:
                return cached[0]
        # A miss resolves from the database anyway, and that read includes the revision.
        with self._build_lock:
            cached = self._hot.get(key)
            if cached is not None:
                return cached[0]
            generation = self._generation
            built, resolution = self._resolve_and_build(key)
            if generation == self._generation:
                if len(self._hot) >= _MAX_HOT_ENTRIES:
                    self._hot.clear()
                self._hot[key] = (built, resolution)
            return built

    def _last_good_for(self, key: HotKey) -> Any:
        """What to serve for ``key`` during an outage: its own last object, else the type's global one.

        A user never seen before most likely has no override, so the global entry is the best guess.
        """
        interaction_type, _, kind = key
        for candidate in (key, (interaction_type, None, kind)):
            if candidate in self._last_good:
                return self._last_good[candidate]
        return next((obj for (t, _, k), obj in self._last_good.items() if (t, k) == (interaction_type, kind)), None)

    def _on_change(self, change: str) -> None:
        """Drop the cached entries a pushed change can affect (called from the listener thread)."""
        self._generation += 1
        kind, _, target = change.partition(":")
        if kind == "config" or kind == "interaction_type":
            doomed = [key for key in self._hot if key[0] == target]
        elif kind == "override":
            user_id, _, interaction_type = target.rpartition("/")
            doomed = [key for key in self._hot if key[0] == interaction_type and key[1] == user_id]
        elif kind == "provider":
            doomed = [
                key
                for key, (_, resolution) in list(self._hot.items())
                if resolution is not None
                and target in {t.provider_id for t in (resolution.target, *resolution.fallbacks)}
            ]
        else:
            self._hot.clear()
            return
        for key in doomed:
            self._hot.pop(key, None)

    def _check_revision(self) -> None:
        try:
            revision = self.config.revision()
        except DatabaseUnavailableError as exc:
            self._note_outage(exc)
            # Keep serving what we have; try again after another TTL.
            self._checked_at = time.monotonic()
            return
        self._note_recovery()
        if revision != self._revision:
            self._hot.clear()
            self._revision = revision
        self._checked_at = time.monotonic()

    def _resolve_and_build(self, key: HotKey) -> tuple[Any, Resolution | None]:
        interaction_type, user_id, kind = key
        try:
            resolution, revision = self.config.resolve(interaction_type, user_id)
        except DatabaseUnavailableError as exc:
            self._note_outage(exc)
            outage: DatabaseUnavailableError | None = exc
        else:
            outage = None
        if outage is not None:
            # Outside the except block: an error raised here stands on its own, without the outage chained.
            last_good = self._last_good_for(key)
            if last_good is not None:
                return last_good, None
            reason = f"the configuration database is unreachable ({outage.detail})"
            return self._from_environment(interaction_type, kind, reason=reason), None
        self._note_recovery()
        if revision != self._revision:
            self._hot.clear()
            self._revision = revision
        self._checked_at = time.monotonic()
        if resolution is None:
            reason = f"nothing is configured for {interaction_type!r}"
            return self._from_environment(interaction_type, kind, reason=reason), None
        if resolution.kind != kind:
            other = "get_embeddings()" if resolution.kind == "embeddings" else "get_llm()"
            raise LLMConfigError(
                f"{interaction_type!r} is a {resolution.kind} interaction type; ask for it with {other}"
            )
        built = self._objects.get(resolution)
        if built is None:
            built = self._build(resolution)
            self._objects[resolution] = built
        tracked = self._tracked.get((resolution, user_id))
        if tracked is None:
            from llmconfig.usage.tracking import CallContext, CallTarget

            targets = tuple(
                CallTarget(t.provider_id, t.provider_name, t.model_name)
                for t in (resolution.target, *resolution.fallbacks)
            )
            tracked = self._track(built, CallContext(interaction_type, user_id, targets), kind)
            if len(self._tracked) >= _MAX_HOT_ENTRIES:
                self._tracked.clear()
            self._tracked[(resolution, user_id)] = tracked
        if len(self._last_good) >= _MAX_HOT_ENTRIES:
            self._last_good.clear()
        self._last_good[key] = tracked
        return tracked, resolution

    def _track(self, built: Any, context: CallContext, kind: Kind) -> Any:
        """The object with usage recording attached (a cheap copy sharing the SDK clients)."""
        from llmconfig.usage.tracking import TrackedEmbeddings, UsageCallback

        if not self.settings.usage_tracking:
            return built
        if kind == "embeddings":
            return TrackedEmbeddings(built, self.usage_recorder, context)
        return built.model_copy(update={"callbacks": [UsageCallback(self.usage_recorder, context)]})

    def _build(self, resolution: Resolution) -> Any:
        if resolution.kind == "embeddings":
            target = resolution.target
            return adapter_for(target.provider_type).embeddings(
                base_url=target.base_url,
                api_key=self._api_key(target),
                model=target.model_name,
                extra_params=resolution.extra_params,
                timeout=None,
                clients=self.providers.model_clients,
            )
        if not resolution.fallbacks:
            return self._chat_model(resolution, resolution.target, fail_fast=False)
        from llmconfig.fallback import FallbackChatModel

        chain = (resolution.target, *resolution.fallbacks)
        return FallbackChatModel(
            models=[self._chat_model(resolution, target, fail_fast=True) for target in chain],
            labels=[f"{target.provider_name}/{target.model_name}" for target in chain],
        )

    def _chat_model(self, resolution: Resolution, target: Target, *, fail_fast: bool) -> Any:
        return adapter_for(target.provider_type).chat_model(
            base_url=target.base_url,
            api_key=self._api_key(target),
            model=target.model_name,
            temperature=resolution.temperature,
            max_tokens=resolution.max_tokens,
            extra_params=resolution.extra_params,
            timeout=None,
            clients=self.providers.model_clients,
            fail_fast=fail_fast,
        )

    def _api_key(self, target: Target) -> str | None:
        return self.providers.decrypt_key(
            target.api_key_ref, provider_id=target.provider_id, provider_name=target.provider_name
        )

    def _from_environment(self, interaction_type: str, kind: Kind, *, reason: str) -> Any:
        """The environment fallback of DESIGN §1: OpenAI from OPENAI_API_KEY with the built-in default."""
        api_key = os.environ.get("OPENAI_API_KEY")
        if not api_key:
            raise LLMConfigError(
                f"No model for {interaction_type!r}: {reason}. Configure it with `llmconfig config set "
                f"{interaction_type} --provider NAME --model MODEL` (or the web panel), or set OPENAI_API_KEY "
                "to fall back to OpenAI"
            )
        default = default_for(interaction_type, kind)
        if interaction_type not in self._env_warned:
            self._env_warned.add(interaction_type)
            log.warning(
                "Using OpenAI %s from OPENAI_API_KEY for %r because %s", default.model_name, interaction_type, reason
            )
        adapter = OpenAIAdapter()
        base_url = adapter.normalise_base_url(os.environ.get("OPENAI_BASE_URL") or OPENAI_DEFAULT_BASE_URL)
        from llmconfig.usage.tracking import CallContext, CallTarget

        context = CallContext(interaction_type, None, (CallTarget(None, "OPENAI_API_KEY", default.model_name),))
        if kind == "embeddings":
            embeddings = adapter.embeddings(
                base_url=base_url,
                api_key=api_key,
                model=default.model_name,
                extra_params={},
                timeout=None,
                clients=self.providers.model_clients,
            )
            return self._track(embeddings, context, kind)
        chat = adapter.chat_model(
            base_url=base_url,
            api_key=api_key,
            model=default.model_name,
            temperature=default.temperature,
            max_tokens=None,
            extra_params={},
            timeout=None,
            clients=self.providers.model_clients,
        )
        return self._track(chat, context, kind)

    def _note_outage(self, exc: Exception) -> None:
        if not self._outage_logged:
            self._outage_logged = True
            log.error("%s; serving the last known configuration until it is back", exc)

    def _note_recovery(self) -> None:
        if self._outage_logged:
            self._outage_logged = False
            log.warning("The configuration database is reachable again")


_default_service: LLMConfigService | None = None
_default_lock = threading.Lock()


def default_service() -> LLMConfigService:
    """The process-wide service behind :func:`get_llm`, created on first use from the environment."""
    global _default_service
    if _default_service is None:
        with _default_lock:
            if _default_service is None:
                _default_service = LLMConfigService()
    return _default_service


def reset_default_service() -> None:
    """Close the process-wide service; the next call builds a new one from the environment."""
    global _default_service
    with _default_lock:
        if _default_service is not None:
            _default_service.close()
        _default_service = None


def get_llm(interaction_type: str = "reasoning", user_id: str | None = None) -> BaseChatModel:
    """The LangChain chat model configured for ``interaction_type``, for ``user_id`` when given."""
    return default_service().get_llm(interaction_type, user_id)


def get_embeddings(user_id: str | None = None, interaction_type: str = "embeddings") -> Embeddings:
    """The LangChain embeddings model configured for ``interaction_type``."""
    return default_service().get_embeddings(user_id, interaction_type)
