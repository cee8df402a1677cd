"""Turning a resolution into LangChain objects: provider adapters, fallback chains, variants, usage tracking.

Building only constructs objects; it makes no network call. The environment fallback of DESIGN §1
(OpenAI from ``OPENAI_API_KEY`` with the built-in default model) is built here too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from llmconfig.config.defaults import default_for
from llmconfig.config.resolution import Resolution, Target
from llmconfig.config.variants import choose
from llmconfig.errors import LLMConfigError
from llmconfig.providers.adapters import OPENAI_DEFAULT_BASE_URL, OpenAIAdapter, adapter_for
from llmconfig.providers.keys import ApiKey
from llmconfig.settings import Settings

if TYPE_CHECKING:
    from llmconfig.providers.clients import ModelClients, ProviderClients
    from llmconfig.usage.recorder import UsageRecorder
    from llmconfig.usage.spend import BudgetGate, SpendState
    from llmconfig.usage.tracking import CallContext

log = logging.getLogger("llmconfig.llm")

Kind = Literal["chat", "embeddings"]
# The decrypted keys of a target's provider, the first one first (empty when it has none).
KeyLookup = Callable[[Target], tuple[ApiKey, ...]]


class ModelBuilder:
    """Builds the LangChain object of a resolution, and the tracked copy a caller gets."""

    def __init__(
        self,
        settings: Settings,
        *,
        api_keys: KeyLookup,
        clients: ModelClients,
        recorder: UsageRecorder | None,
        spend: SpendState | None = None,
    ) -> None:
        self._settings = settings
        self._api_keys = api_keys
        # The guarded HTTP clients every model object calls its provider through, shared by all of them.
        self._clients = clients
        # None: usage is not recorded (LLMCONFIG_USAGE_TRACKING=false).
        self._recorder = recorder if settings.usage_tracking else None
        # What the budget check before each call asks; None: budgets are not enforced by this process.
        self._spend = spend
        self._env_warned: set[str] = set()
        self._env_lock = threading.Lock()

    def build(self, resolution: Resolution) -> Any:
        """The shared object of ``resolution``: a chat model, a fallback chain, or an embeddings model; for an
        entry with variants, the objects of its variants, each built when a call first needs it.

        When budgets apply, calls pass a budget check first; the models their ``on_exceed`` names follow the
        chain's own members (see :class:`~llmconfig.llm.fallback.FallbackChatModel`).
        """
        if resolution.variants:
            from llmconfig.llm.variants import VariantObjects

            return VariantObjects(self._build_one)
        return self._build_one(resolution)

    def _build_one(self, resolution: Resolution) -> Any:
        if resolution.kind == "embeddings":
            return self._embeddings(resolution, resolution.target)
        gate = self._gate(resolution)
        if not resolution.fallbacks and gate is None:
            return self._chat_model(resolution, resolution.target, fail_fast=False)
        from llmconfig.llm.fallback import FallbackChatModel

        chain = resolution.targets
        members = [self._chat_model(resolution, target, fail_fast=bool(resolution.fallbacks)) for target in chain]
        instead = resolution.exceed_targets if gate is not None else ()
        members += [self._chat_model(resolution, target, fail_fast=False) for target in instead]
        return FallbackChatModel(
            models=members,
            labels=[f"{target.provider_name}/{target.model_name}" for target in (*chain, *instead)],
            gate=gate,
            active=len(chain),
        )

    def tracked(self, built: Any, resolution: Resolution, user_id: str | None) -> Any:
        """What one caller gets: ``built`` with the caller's usage recording attached (a cheap copy sharing the
        SDK clients). For an entry with variants: the user's variant, or without a user id an object that
        draws a variant by weight per call (see llmconfig.llm.variants)."""
        from llmconfig.llm.variants import VariantObjects, split_by_weight

        if not isinstance(built, VariantObjects):
            return self._tracked_one(built, resolution, user_id)
        if user_id is not None:
            chosen = resolution.narrow(choose(resolution, user_id))
            return self._tracked_one(built.member(chosen), chosen, user_id)
        names = [name for name, _ in resolution.variant_weights]
        members = []
        for name in names:
            narrowed = resolution.narrow(name)
            members.append(self._tracked_one(built.member(narrowed), narrowed, None))
        return split_by_weight(resolution.kind, members, names, [weight for _, weight in resolution.variant_weights])

    def _tracked_one(self, built: Any, resolution: Resolution, user_id: str | None) -> Any:
        from llmconfig.usage.tracking import CallContext, CallTarget

        gate = self._gate(resolution)
        instead = resolution.exceed_targets if gate is not None else ()
        chain = resolution.targets if resolution.kind == "chat" else (resolution.target,)
        targets = tuple(CallTarget(t.provider_id, t.provider_name, t.model_name) for t in (*chain, *instead))
        context = CallContext(resolution.interaction_type, user_id, targets, resolution.variant)
        if self._recorder is None:
            return built
        from llmconfig.usage.tracking import TrackedEmbeddings, UsageCallback

        if resolution.kind == "embeddings":
            alternatives = [self._embeddings(resolution, target) for target in instead]
            return TrackedEmbeddings(built, self._recorder, context, gate=gate, alternatives=alternatives)
        return built.model_copy(update={"callbacks": [UsageCallback(self._recorder, context)]})

    def _gate(self, resolution: Resolution) -> BudgetGate | None:
        if not resolution.budgets or self._spend is None:
            return None
        from llmconfig.usage.spend import BudgetGate

        # The members a spent budget sends calls to follow the chain (embeddings: the one model).
        first_instead = len(resolution.targets) if resolution.kind == "chat" else 1
        instead = resolution.exceed_targets
        return BudgetGate(
            self._spend,
            [
                (rule.scope, None if rule.on_exceed is None else first_instead + instead.index(rule.on_exceed))
                for rule in resolution.budgets
            ],
        )

    def _embeddings(self, resolution: Resolution, target: Target) -> Any:
        api_key, clients = self._keyed(target)
        return adapter_for(target.provider_type).embeddings(
            base_url=target.base_url,
            api_key=api_key,
            model=target.model_name,
            extra_params=resolution.extra_params,
            timeout=None,
            clients=clients,
        )

    def from_environment(
        self, interaction_type: str, kind: Kind | None, *, reason: str, unreachable: bool = False
    ) -> Any:
        """The environment fallback: OpenAI from OPENAI_API_KEY with the built-in default, or a clear error.

        ``unreachable``: the configuration could not be read (rather than having nothing for the type).
        """
        if self._settings.openai_api_key is None:
            remedy = (
                "set OPENAI_API_KEY to fall back to OpenAI while it is down"
                if unreachable
                else f"Configure it with `llmconfig config set {interaction_type} --provider NAME --model MODEL` "
                "(or the web panel), or set OPENAI_API_KEY to fall back to OpenAI"
            )
            raise LLMConfigError(f"No model for {interaction_type!r}: {reason}. {remedy}")
        api_key = self._settings.openai_api_key.get_secret_value()
        kind = kind or "chat"
        default = default_for(interaction_type, kind)
        with self._env_lock:
            first = interaction_type not in self._env_warned
            self._env_warned.add(interaction_type)
        if first:
            log.warning(
                "Using OpenAI %s from OPENAI_API_KEY for %r because %s", default.model_name, interaction_type, reason
            )
        adapter = OpenAIAdapter()
        base_url = adapter.normalise_base_url(self._settings.openai_base_url or OPENAI_DEFAULT_BASE_URL)
        from llmconfig.usage.tracking import CallContext, CallTarget

        context = CallContext(interaction_type, None, (CallTarget(None, "OPENAI_API_KEY", default.model_name),))
        if kind == "embeddings":
            embeddings = adapter.embeddings(
                base_url=base_url,
                api_key=api_key,
                model=default.model_name,
                extra_params={},
                timeout=None,
                clients=self._clients,
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
            clients=self._clients,
        )
        return self._track(chat, context, kind)

    def _track(self, built: Any, context: CallContext, kind: str) -> Any:
        if self._recorder is None:
            return built
        from llmconfig.usage.tracking import TrackedEmbeddings, UsageCallback

        if kind == "embeddings":
            return TrackedEmbeddings(built, self._recorder, context)
        return built.model_copy(update={"callbacks": [UsageCallback(self._recorder, context)]})

    def _keyed(self, target: Target) -> tuple[str | None, ModelClients | ProviderClients]:
        """The key the SDK is given, and the clients: with keys, those that send each request with one in turn.

        The SDK still gets the first key, although the clients put the key of the moment into every request.
        """
        keys = self._api_keys(target)
        if not keys:
            return None, self._clients
        return keys[0].value, self._clients.for_provider(target.provider_id, target.provider_type, keys)

    def _chat_model(self, resolution: Resolution, target: Target, *, fail_fast: bool) -> Any:
        api_key, clients = self._keyed(target)
        return adapter_for(target.provider_type).chat_model(
            base_url=target.base_url,
            api_key=api_key,
            model=target.model_name,
            temperature=resolution.temperature,
            max_tokens=resolution.max_tokens,
            extra_params=resolution.extra_params,
            timeout=None,
            clients=clients,
            fail_fast=fail_fast,
        )
