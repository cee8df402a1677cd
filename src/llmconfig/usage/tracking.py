"""Hooks that turn calls through get_llm / get_embeddings objects into usage events."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.embeddings import Embeddings
from langchain_core.outputs import LLMResult
from pydantic import BaseModel

from llmconfig.db.models import utcnow
from llmconfig.providers.keys import KeyNote, noting_keys, open_note
from llmconfig.usage.recorder import UsageEvent, UsageRecorder

if TYPE_CHECKING:
    from llmconfig.usage.spend import BudgetGate

# Which member of a fallback chain produced a result, in its generation_info (set by FallbackChatModel).
ATTEMPT_KEY = "llmconfig_attempt"


@dataclass(frozen=True, slots=True)
class CallTarget:
    provider_id: str | None
    provider_name: str
    model_name: str


@dataclass(frozen=True, slots=True)
class CallContext:
    interaction_type: str
    user_id: str | None
    # The chain in order; a fallback chain marks which one answered (see FallbackChatModel).
    targets: tuple[CallTarget, ...]
    # The variant of the entry these targets are (None when the entry has no variants).
    variant: str | None = None

    def event(
        self,
        attempt: int,
        *,
        prompt_tokens: int,
        completion_tokens: int,
        latency_ms: float,
        error: str | None,
        key_hint: str | None,
    ) -> UsageEvent:
        """The usage event of a call that target ``attempt`` of the chain answered (or the last one failed),
        recorded now."""
        target = self.targets[min(attempt, len(self.targets) - 1)]
        return UsageEvent(
            at=utcnow(),
            interaction_type=self.interaction_type,
            user_id=self.user_id,
            provider_id=target.provider_id,
            provider_name=target.provider_name,
            model_name=target.model_name,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_ms=latency_ms,
            success=error is None,
            error_class=error,
            variant=self.variant,
            key_hint=key_hint,
        )


class UsageCallback(BaseCallbackHandler):
    """Times each chat call and records its tokens, outcome, model and the key that served it.

    The key comes from a :class:`~llmconfig.providers.keys.KeyNote` opened when the call starts, in the
    context the call then runs in, which the provider's clients write the hint of each key they send into.
    """

    run_inline = True  # cheap and non-blocking: no need for the executor hop LangChain does otherwise
    raise_error = False

    def __init__(self, recorder: UsageRecorder, context: CallContext) -> None:
        self._recorder = recorder
        self._context = context
        self._started: dict[UUID, float] = {}
        self._notes: dict[UUID, KeyNote] = {}

    def on_chat_model_start(self, serialized: dict[str, Any], messages: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._started[run_id] = time.perf_counter()
        self._notes[run_id] = open_note()

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        prompt_tokens = completion_tokens = 0
        attempt = 0
        for generations in response.generations:
            for generation in generations:
                usage = getattr(getattr(generation, "message", None), "usage_metadata", None) or {}
                prompt_tokens += int(usage.get("input_tokens", 0))
                completion_tokens += int(usage.get("output_tokens", 0))
                attempt = int((generation.generation_info or {}).get(ATTEMPT_KEY, attempt))
        self._emit(run_id, attempt, prompt_tokens, completion_tokens, None)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._emit(run_id, len(self._context.targets) - 1, 0, 0, type(error).__name__)

    def _emit(self, run_id: UUID, attempt: int, prompt: int, completion: int, error: str | None) -> None:
        started = self._started.pop(run_id, None)
        note = self._notes.pop(run_id, None)
        latency = (time.perf_counter() - started) * 1000 if started is not None else 0.0
        self._recorder.record(
            self._context.event(
                attempt,
                prompt_tokens=prompt,
                completion_tokens=completion,
                latency_ms=latency,
                error=error,
                key_hint=note.hint if note is not None else None,
            )
        )


# Tokens reported by the embeddings API during the current call (OpenAIEmbeddings does not return them).
_embedding_tokens: ContextVar[list[int] | None] = ContextVar("llmconfig_embedding_tokens", default=None)


class _CountingClient:
    """Stands in for the SDK's embeddings resource and notes the ``usage`` of each response."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def create(self, *args: Any, **kwargs: Any) -> Any:
        return self._note(self._inner.create(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @staticmethod
    def _note(response: Any) -> Any:
        sink = _embedding_tokens.get()
        usage = getattr(response, "usage", None)
        if sink is not None and usage is not None:
            sink.append(int(getattr(usage, "prompt_tokens", 0) or 0))
        return response


class _AsyncCountingClient(_CountingClient):
    async def create(self, *args: Any, **kwargs: Any) -> Any:
        return self._note(await self._inner.create(*args, **kwargs))


class TrackedEmbeddings(Embeddings):
    """Embeddings that record each call; ``wrapped`` is the provider's LangChain object.

    With a budget ``gate``, each call is checked first: it fails, or goes to one of ``alternatives`` (the
    models spent budgets name, whose targets follow the primary one in ``context.targets``).
    """

    def __init__(
        self,
        wrapped: Embeddings,
        recorder: UsageRecorder,
        context: CallContext,
        *,
        gate: BudgetGate | None = None,
        alternatives: Sequence[Embeddings] = (),
    ) -> None:
        self.wrapped = wrapped
        self._recorder = recorder
        self._context = context
        self._gate = gate
        self._models = [_counting(model) for model in (wrapped, *alternatives)]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        with self._recorded() as model:
            return model.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        with self._recorded() as model:
            return model.embed_query(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        with self._recorded() as model:
            return await model.aembed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        return (await self.aembed_documents([text]))[0]

    def _route(self) -> int:
        """Which model answers: 0, the primary one, unless a spent budget names another (or fails the call)."""
        instead = self._gate.route() if self._gate is not None else None
        return 0 if instead is None else instead

    @contextmanager
    def _recorded(self) -> Iterator[Embeddings]:
        """The model that answers this call; the call made with it inside the block is timed, its tokens and
        key noted, and recorded as it ends (a sync and an async call alike: nothing here awaits)."""
        index = self._route()
        sink: list[int] = []
        token = _embedding_tokens.set(sink)
        started = time.perf_counter()
        with noting_keys() as note:
            try:
                yield self._models[index]
            except Exception as error:
                self._emit(index, started, sink, type(error).__name__, note)
                raise
            finally:
                _embedding_tokens.reset(token)
        self._emit(index, started, sink, None, note)

    def _emit(self, index: int, started: float, sink: Sequence[int], error: str | None, note: KeyNote) -> None:
        self._recorder.record(
            self._context.event(
                index,
                prompt_tokens=sum(sink),
                completion_tokens=0,
                latency_ms=(time.perf_counter() - started) * 1000,
                error=error,
                key_hint=note.hint,
            )
        )


def _counting(model: Embeddings) -> Embeddings:
    """A copy of ``model`` whose SDK resources note the tokens each response reports (the clients are shared)."""
    if isinstance(model, BaseModel) and hasattr(model, "client") and hasattr(model, "async_client"):
        copy = model.model_copy()
        copy.client = _CountingClient(model.client)
        copy.async_client = _AsyncCountingClient(model.async_client)
        return copy
    return model
