"""What ``get_llm`` hands out for an entry with weighted variants.

With a user id, a call gets its user's variant (see :mod:`llmconfig.config.variants`): an ordinary model of
that variant, built once and shared by every user who has it. Without a user id, every call is split by
weight: :class:`VariantChatModel` (and :class:`VariantEmbeddings`) draws a variant per call and hands the call
to that variant's model, whole.

``VariantChatModel`` is a real ``BaseChatModel``, like the fallback chain, so ``bind_tools``,
``with_structured_output``, ``stream``/``astream``, ``batch`` (each input draws its own variant) and use in
``langchain.agents.create_agent`` keep working. It starts no run of its own: the variant's model runs the call
with the caller's config, so callbacks, tracing and usage records see exactly one model run, of the variant
that answered (each member records its own variant's usage).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun, Callbacks
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult, LLMResult
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig
from langchain_core.tools import BaseTool
from pydantic import ConfigDict, Field

from llmconfig.config.resolution import Resolution
from llmconfig.config.variants import pick
from llmconfig.llm.fallback import split_tracing


class VariantObjects:
    """The built objects of an entry's variants, each built the first time a call needs it.

    The model cache builds under one lock, so two callers never build the same variant twice.
    """

    def __init__(self, build: Callable[[Resolution], Any]) -> None:
        self._build = build
        self._built: dict[Resolution, Any] = {}

    def member(self, resolution: Resolution) -> Any:
        """The object of ``resolution`` (a resolution narrowed to one variant)."""
        built = self._built.get(resolution)
        if built is None:
            built = self._built[resolution] = self._build(resolution)
        return built


class VariantChatModel(BaseChatModel):
    """Hands each call to one of ``models``, drawn by ``weights``; see the module docstring."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    models: list[BaseChatModel] = Field(min_length=1)
    names: list[str] = Field(default_factory=list)
    weights: list[int] = Field(min_length=1)
    # Per-model keyword arguments, set by bind_tools: each provider formats tools its own way.
    bound_kwargs: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "llmconfig-variants"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"variants": dict(zip(self.names, self.weights, strict=False))}

    def _draw(self, kwargs: dict[str, Any]) -> tuple[BaseChatModel, dict[str, Any]]:
        index = pick(self.weights, random.random())
        extra = self.bound_kwargs[index] if self.bound_kwargs else {}
        return self.models[index], {**kwargs, **extra}

    # -- tools -------------------------------------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind the tools to every variant's model, each in its own provider's format."""
        tracing, provider_kwargs = split_tracing(kwargs)
        models: list[BaseChatModel] = []
        bound: list[dict[str, Any]] = []
        for model in self.models:
            binding = model.bind_tools(tools, tool_choice=tool_choice, **provider_kwargs)
            if isinstance(binding, RunnableBinding) and binding.bound is model and not binding.config:
                models.append(model)
                bound.append(dict(binding.kwargs))
            elif isinstance(binding, BaseChatModel):  # a fallback chain binds into a copy of itself
                models.append(binding)
                bound.append({})
            else:
                raise TypeError(f"{type(model).__name__}.bind_tools returned an unexpected {type(binding).__name__}")
        split = self.model_copy(update={"models": models, "bound_kwargs": bound})
        return split.bind(**tracing) if tracing else split

    # -- calls: each goes, whole, to the model of one variant ------------------------------------------

    def invoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        model, call_kwargs = self._draw(kwargs)
        return model.invoke(input, config, stop=stop, **call_kwargs)

    async def ainvoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        model, call_kwargs = self._draw(kwargs)
        return await model.ainvoke(input, config, stop=stop, **call_kwargs)

    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        model, call_kwargs = self._draw(kwargs)
        yield from model.stream(input, config, stop=stop, **call_kwargs)

    async def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        model, call_kwargs = self._draw(kwargs)
        async for chunk in model.astream(input, config, stop=stop, **call_kwargs):
            yield chunk

    def generate(
        self,
        messages: list[list[BaseMessage]],
        stop: list[str] | None = None,
        callbacks: Callbacks = None,
        **kwargs: Any,
    ) -> LLMResult:
        model, call_kwargs = self._draw(kwargs)
        return model.generate(messages, stop=stop, callbacks=callbacks, **call_kwargs)

    async def agenerate(
        self,
        messages: list[list[BaseMessage]],
        stop: list[str] | None = None,
        callbacks: Callbacks = None,
        **kwargs: Any,
    ) -> LLMResult:
        model, call_kwargs = self._draw(kwargs)
        return await model.agenerate(messages, stop=stop, callbacks=callbacks, **call_kwargs)

    # What BaseChatModel's other entry points (v3 stream events) build on: the variant's own implementation,
    # run under this model's run.

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        model, call_kwargs = self._draw(kwargs)
        return model._generate(messages, stop=stop, run_manager=run_manager, **call_kwargs)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        model, call_kwargs = self._draw(kwargs)
        return await model._agenerate(messages, stop=stop, run_manager=run_manager, **call_kwargs)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        model, call_kwargs = self._draw(kwargs)
        yield from model._stream(messages, stop=stop, run_manager=run_manager, **call_kwargs)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        model, call_kwargs = self._draw(kwargs)
        async for chunk in model._astream(messages, stop=stop, run_manager=run_manager, **call_kwargs):
            yield chunk


class VariantEmbeddings(Embeddings):
    """Embeddings that hand each call to one of ``members``, drawn by ``weights``."""

    def __init__(self, members: Sequence[Embeddings], names: Sequence[str], weights: Sequence[int]) -> None:
        self.members = list(members)
        self.names = list(names)
        self.weights = list(weights)

    def _draw(self) -> Embeddings:
        return self.members[pick(self.weights, random.random())]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._draw().embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self._draw().embed_query(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return await self._draw().aembed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        return await self._draw().aembed_query(text)


def split_by_weight(kind: str, members: Sequence[Any], names: Sequence[str], weights: Sequence[int]) -> Any:
    """The object that draws one of ``members`` (a chat model or embeddings of each variant) per call."""
    if kind == "embeddings":
        return VariantEmbeddings(members, names, weights)
    return VariantChatModel(models=list(members), names=list(names), weights=list(weights))
