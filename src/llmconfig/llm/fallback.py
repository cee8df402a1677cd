"""A chat model that tries an ordered list of models, moving on when one is down.

``FallbackChatModel`` is a real ``BaseChatModel``, so it keeps everything agent code relies on —
``bind_tools``, ``with_structured_output``, ``stream``/``astream``, ``batch`` and use as the model of
``langchain.agents.create_agent`` — which LangChain's generic ``with_fallbacks`` wrapper does not
guarantee (it is not a chat model, and older releases lost ``bind_tools`` behind it).

Only failures that say "this endpoint cannot answer right now" move on to the next model: connection
errors, timeouts, HTTP 429 and 5xx, an address the outbound guard refuses, and an answer the answer checks
refuse (an HTML page, a body that is not JSON, or one over ``LLMCONFIG_MODEL_MAX_RESPONSE_BYTES``; see
:mod:`llmconfig.providers.answers`). A bad request or a rejected key fails at once, since the next model
would most likely fail the same way or hide a configuration error. A stream falls back only before its
first chunk; once output has reached the caller, a failure is raised rather than restarting the answer on
another model. When every model fails, the last error is raised with a note naming each model and what
went wrong there.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import httpx2
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.exceptions import (
    ModelAPIError,
    ModelConnectionError,
    ModelRateLimitError,
    ModelTimeoutError,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableBinding
from langchain_core.tools import BaseTool
from pydantic import ConfigDict, Field

from llmconfig.errors import ProviderError, ProviderUnauthorizedError, cause_of
from llmconfig.usage.spend import BudgetGate
from llmconfig.usage.tracking import ATTEMPT_KEY

log = logging.getLogger("llmconfig.fallback")

_RETRYABLE = (ModelConnectionError, ModelTimeoutError, ModelRateLimitError, ModelAPIError)
# Raised by httpx2 itself where an SDK does not wrap them (while reading a stream, for instance).
_TRANSPORT = (httpx2.NetworkError, httpx2.TimeoutException, httpx2.RemoteProtocolError)


def should_fall_back(error: BaseException) -> bool:
    """Whether ``error`` means the endpoint is unavailable (so another one may answer)."""
    own = cause_of(error, ProviderError)
    if own is not None:
        # The guard's refusals and the answer checks' (llmconfig.providers.transport / .answers).
        return not isinstance(own, ProviderUnauthorizedError)
    if isinstance(error, _RETRYABLE + _TRANSPORT):
        return True
    # SDK errors that LangChain did not reclassify: judge by transport failure or HTTP status.
    name = type(error).__name__
    if name in ("APIConnectionError", "APITimeoutError", "ConnectError", "ConnectTimeout", "ReadTimeout"):
        return True
    status = getattr(error, "status_code", None)
    return isinstance(status, int) and (status == 429 or status >= 500)


def split_tracing(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(tracing, provider_kwargs)``: the LangSmith tracing options (``ls_*``) of ``bind_tools`` arguments,
    and the rest.

    A model that binds tools into each of its inner models keeps the tracing options on a binding of itself:
    the outer model's invoke machinery consumes them, the provider SDKs would not know them.
    """
    tracing = {name: value for name, value in kwargs.items() if name.startswith("ls_")}
    return tracing, {name: value for name, value in kwargs.items() if name not in tracing}


def _summary(error: BaseException) -> str:
    """One line on what went wrong: llmconfig's message, else the error's type and first line."""
    own = cause_of(error, ProviderError)
    if own is not None:
        return str(own)
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


class FallbackChatModel(BaseChatModel):
    """Tries ``models`` in order; see the module docstring for when it moves on.

    With a ``gate``, only the first ``active`` models form the chain; those after them are the models budgets
    send calls to once spent, one of which answers alone while its budget is spent.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    models: list[BaseChatModel] = Field(min_length=1)
    labels: list[str] = Field(default_factory=list)
    # Per-model keyword arguments, set by bind_tools: each provider formats tools its own way.
    bound_kwargs: list[dict[str, Any]] = Field(default_factory=list)
    gate: BudgetGate | None = None
    active: int | None = None

    @property
    def _llm_type(self) -> str:
        return "llmconfig-fallback"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"models": self.labels or [type(m).__name__ for m in self.models]}

    # -- tools -------------------------------------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind the tools to every model of the chain, each in its own provider's format."""
        tracing, provider_kwargs = split_tracing(kwargs)
        bound: list[dict[str, Any]] = []
        for model in self.models:
            binding = model.bind_tools(tools, tool_choice=tool_choice, **provider_kwargs)
            if not isinstance(binding, RunnableBinding) or binding.bound is not model:
                raise TypeError(f"{type(model).__name__}.bind_tools returned an unexpected {type(binding).__name__}")
            bound.append(dict(binding.kwargs))
        chain = self.model_copy(update={"bound_kwargs": bound})
        return chain.bind(**tracing) if tracing else chain

    # -- calls -------------------------------------------------------------------------------------

    def _attempts(self, kwargs: dict[str, Any]) -> Iterator[tuple[int, BaseChatModel, dict[str, Any]]]:
        instead = self.gate.route() if self.gate is not None else None  # before anything reaches a provider
        members = range(self.active or len(self.models)) if instead is None else (instead,)
        for index in members:
            extra = self.bound_kwargs[index] if self.bound_kwargs else {}
            yield index, self.models[index], {**kwargs, **extra}

    def _label(self, index: int) -> str:
        return self.labels[index] if index < len(self.labels) else f"model {index + 1}"

    def _note(self, index: int, error: BaseException) -> None:
        if index + 1 < (self.active or len(self.models)):
            log.warning("%s failed (%s); trying %s", self._label(index), type(error).__name__, self._label(index + 1))

    def _exhausted(self, failures: list[tuple[int, BaseException]]) -> BaseException:
        """The last error, with a note naming every model of the chain and what went wrong there."""
        last = failures[-1][1]
        lines = [f"  {self._label(index)}: {_summary(error)}" for index, error in failures]
        last.add_note("Every model of the fallback chain failed:\n" + "\n".join(lines))
        return last

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        failures: list[tuple[int, BaseException]] = []
        for index, model, call_kwargs in self._attempts(kwargs):
            try:
                return _marked(model._generate(messages, stop=stop, run_manager=run_manager, **call_kwargs), index)
            except Exception as error:
                if not should_fall_back(error):
                    raise
                self._note(index, error)
                failures.append((index, error))
        raise self._exhausted(failures)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        failures: list[tuple[int, BaseException]] = []
        for index, model, call_kwargs in self._attempts(kwargs):
            try:
                result = await model._agenerate(messages, stop=stop, run_manager=run_manager, **call_kwargs)
                return _marked(result, index)
            except Exception as error:
                if not should_fall_back(error):
                    raise
                self._note(index, error)
                failures.append((index, error))
        raise self._exhausted(failures)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        failures: list[tuple[int, BaseException]] = []
        for index, model, call_kwargs in self._attempts(kwargs):
            chunks = model._stream(messages, stop=stop, run_manager=run_manager, **call_kwargs)
            try:
                first = next(chunks)
            except StopIteration:
                return
            except Exception as error:
                if not should_fall_back(error):
                    raise
                self._note(index, error)
                failures.append((index, error))
                continue
            first.generation_info = {**(first.generation_info or {}), ATTEMPT_KEY: index}
            yield first
            # Output has reached the caller: from here on a failure is the caller's to see.
            yield from chunks
            return
        raise self._exhausted(failures)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        failures: list[tuple[int, BaseException]] = []
        for index, model, call_kwargs in self._attempts(kwargs):
            chunks = model._astream(messages, stop=stop, run_manager=run_manager, **call_kwargs)
            try:
                first = await anext(chunks)
            except StopAsyncIteration:
                return
            except Exception as error:
                if not should_fall_back(error):
                    raise
                self._note(index, error)
                failures.append((index, error))
                continue
            first.generation_info = {**(first.generation_info or {}), ATTEMPT_KEY: index}
            yield first
            async for chunk in chunks:
                yield chunk
            return
        raise self._exhausted(failures)


def _marked(result: ChatResult, index: int) -> ChatResult:
    for generation in result.generations:
        generation.generation_info = {**(generation.generation_info or {}), ATTEMPT_KEY: index}
    return result
