"""The OpenAI-compatible gateway: a request for an interaction type, answered by the provider configured for it.

:class:`Gateway` resolves the interaction type the request names as its ``model`` (with the overrides of the
``user`` it names) through the server's resolve cache, tries the targets in order (the primary, then the
fallback chain), and records the call's usage as library calls do. OpenAI and custom providers get the request
as sent, with the configured model and parameters filled in; Anthropic providers get it translated
(:mod:`llmconfig.gateway.anthropic`). The fallback chain moves on where library calls do (connection errors,
timeouts, 429, 5xx, answers that are HTML, not JSON, or too large, addresses the outbound guard refuses) and
nowhere else; a stream moves on only before its first byte reached the client. Embeddings use the primary
target only: vectors of two models cannot be mixed in one index, so a silent fallback would corrupt it.

No FastAPI here: the HTTP face (``llmconfig.api.openai_compat``) hands over bytes and gets :class:`Reply` or
:class:`StreamReply` back, or a :class:`~llmconfig.gateway.errors.GatewayError`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from llmconfig.db.models import utcnow
from llmconfig.errors import ConfigUnavailableError, LLMConfigError, NotFoundError, SecretBackendError
from llmconfig.gateway import anthropic
from llmconfig.gateway.errors import (
    INVALID_REQUEST,
    PERMISSION,
    UPSTREAM,
    GatewayError,
    bad_request,
    scrubbed,
    upstream_message,
)
from llmconfig.gateway.keyed import KeyedRequests
from llmconfig.gateway.relay import OpenStream
from llmconfig.gateway.requests import (
    ParsedRequest,
    api_params,
    openai_chat_body,
    openai_embeddings_body,
    parse_chat,
    parse_embeddings,
)
from llmconfig.gateway.streams import AnthropicToOpenAI, PassThrough
from llmconfig.gateway.upstream import Endpoint, Upstream, UpstreamFailure
from llmconfig.llm.resolved import ResolvedConfig, ResolvedTarget
from llmconfig.usage.recorder import UsageEvent

if TYPE_CHECKING:
    from llmconfig.llm import LLMConfigService
    from llmconfig.tokens import Caller

log = logging.getLogger("llmconfig.gateway")

# What one target of a chain answered: a reply and its usage, or an opened stream.
_Answer = TypeVar("_Answer")

ENDPOINT_OF_KIND = {"chat": "/v1/chat/completions", "embeddings": "/v1/embeddings"}
# Statuses of a provider that say "this endpoint cannot answer now": the next target may.
_RETRYABLE_STATUS = frozenset({408, 409, 429})
# Statuses of a provider that are the caller's request at fault: passed on with the provider's message.
_CALLERS_FAULT = frozenset({400, 413, 422})


@dataclass(frozen=True, slots=True)
class Reply:
    """A complete answer: status and JSON body."""

    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class StreamReply:
    """A streamed answer: ``chunks`` yields the SSE bytes to send; the first of them are already in."""

    chunks: AsyncIterator[bytes]


@dataclass(slots=True)
class _Attempt:
    """What one call through the gateway is about, for its usage record."""

    interaction_type: str
    user_id: str | None
    started: float
    # The variant of the entry that answers (None when the entry has none).
    variant: str | None = None
    # The hint of the provider key the last request went with.
    key_hint: str | None = None


class Gateway:
    """Answers ``/v1`` requests with the configured providers (module docstring)."""

    def __init__(
        self, service: LLMConfigService, upstream: Upstream, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._service = service
        self._upstream = upstream
        self._keyed = KeyedRequests(upstream, service.key_pool)
        self._recorder = service.usage_recorder if service.settings.usage_tracking else None
        self._spend = service.services.spend
        self._clock = clock

    @property
    def upstream(self) -> Upstream:
        return self._upstream

    # -- /v1/models --------------------------------------------------------------------------------

    async def models(self, caller: Caller) -> Reply:
        """The interaction types ``caller`` may use, as OpenAI's model list."""
        types = await asyncio.to_thread(self._service.types.list)
        data = [
            {"id": t.name, "object": "model", "created": 0, "owned_by": "llmconfig"}
            for t in types
            if caller.may_use(t.name)
        ]
        return Reply(200, orjson.dumps({"object": "list", "data": data}))

    # -- /v1/chat/completions ----------------------------------------------------------------------

    async def chat(self, caller: Caller, raw: bytes) -> Reply | StreamReply:
        """Answer a chat completion request (module docstring); GatewayError for what cannot be answered."""
        request = parse_chat(raw)
        resolved = await self._resolve(caller, request, "chat")
        attempt = _Attempt(request.interaction_type, request.user_id, time.perf_counter(), resolved.variant)
        if request.stream:
            target, opened = await self._along_chain(
                resolved,
                attempt,
                lambda target, chained: self._open_stream(request, resolved, target, attempt, chained=chained),
            )
            return StreamReply(self._relay(opened, target, attempt))
        target, (reply, usage) = await self._along_chain(
            resolved,
            attempt,
            lambda target, chained: self._chat_once(request, resolved, target, attempt, chained=chained),
        )
        self._record(attempt, target, usage, None)
        return reply

    async def _along_chain(
        self,
        resolved: ResolvedConfig,
        attempt: _Attempt,
        call: Callable[[ResolvedTarget, bool], Awaitable[_Answer]],
    ) -> tuple[ResolvedTarget, _Answer]:
        """The first target of the chain that ``call`` (given the target and whether there is a chain) gets an
        answer from, and that answer; a retryable failure moves on to the next target, any other is refused
        (and recorded), and when every target failed the last failure is recorded and raised."""
        failures: list[UpstreamFailure] = []
        chained = len(resolved.targets) > 1
        for target in resolved.targets:
            try:
                return target, await call(target, chained)
            except UpstreamFailure as failure:
                failures.append(failure)
                if failure.retryable:
                    self._note_fallback(target, failure, resolved, len(failures))
                    continue
                self._record(attempt, target, None, failure.kind)
                raise self._refusal(failure) from None
        self._record(attempt, resolved.targets[-1], None, failures[-1].kind)
        raise self._exhausted(resolved, failures)

    async def _chat_once(
        self,
        request: ParsedRequest,
        resolved: ResolvedConfig,
        target: ResolvedTarget,
        attempt: _Attempt,
        *,
        chained: bool,
    ) -> tuple[Reply, Any]:
        if target.provider_type == "anthropic":
            translated = self._to_anthropic(request, resolved, target)
            endpoint, answer, attempt.key_hint = await self._keyed.post(
                target, "/v1/messages", orjson.dumps(translated.body), chained=chained
            )
            document = self._answer_document(endpoint, answer.status, answer.content_type, answer.body)
            completion = anthropic.to_chat_completion(
                document, created=int(self._clock()), response_tool=translated.response_tool
            )
            return Reply(200, orjson.dumps(completion)), completion["usage"]
        body = self._to_openai(request, resolved, target)
        endpoint, answer, attempt.key_hint = await self._keyed.post(
            target, "/chat/completions", orjson.dumps(body), chained=chained
        )
        document = self._answer_document(endpoint, answer.status, answer.content_type, answer.body)
        # The provider's bytes go back as they came: nothing to re-encode.
        return Reply(200, answer.body), document.get("usage")

    # -- streams -----------------------------------------------------------------------------------

    async def _open_stream(
        self,
        request: ParsedRequest,
        resolved: ResolvedConfig,
        target: ResolvedTarget,
        attempt: _Attempt,
        *,
        chained: bool,
    ) -> OpenStream:
        """The target's stream, read up to its first event worth sending; UpstreamFailure before that."""
        processor: PassThrough | AnthropicToOpenAI
        if target.provider_type == "anthropic":
            translated = self._to_anthropic(request, resolved, target)
            path = "/v1/messages"
            body = translated.body
            processor = AnthropicToOpenAI(
                created=int(self._clock()), include_usage=request.include_usage, response_tool=translated.response_tool
            )
        else:
            body = self._to_openai(request, resolved, target)
            path = "/chat/completions"
            processor = PassThrough(include_usage=request.include_usage)
        endpoint, answer, attempt.key_hint = await self._keyed.open(target, path, orjson.dumps(body), chained=chained)
        try:
            if not 200 <= answer.status < 300 or answer.content_type != "text/event-stream":
                data = await answer.read()
                self._answer_document(endpoint, answer.status, answer.content_type, data)
                raise UpstreamFailure(
                    f"{endpoint.where} answered a stream request with {answer.content_type or 'no content type'}, "
                    "not an event stream",
                    retryable=True,
                    kind="ProviderBadResponseError",
                )
            stream = OpenStream(answer, endpoint, processor)
            await stream.prime()
            return stream
        except BaseException:
            answer.close()
            raise

    async def _relay(self, stream: OpenStream, target: ResolvedTarget, attempt: _Attempt) -> AsyncIterator[bytes]:
        # Recorded before the last bytes go out: a client that has read the whole stream finds its usage row.
        recorded = False
        try:
            async for data in stream.rest():
                if stream.ended and not recorded:
                    recorded = True
                    self._record(attempt, target, stream.processor.usage, stream.error)
                yield data
        finally:
            stream.close()
            if not recorded:
                self._record(attempt, target, stream.processor.usage, stream.error or "ClientDisconnected")

    # -- /v1/embeddings ----------------------------------------------------------------------------

    async def embeddings(self, caller: Caller, raw: bytes) -> Reply:
        """Answer an embeddings request with the primary target (module docstring)."""
        request = parse_embeddings(raw)
        resolved = await self._resolve(caller, request, "embeddings")
        attempt = _Attempt(request.interaction_type, request.user_id, time.perf_counter(), resolved.variant)
        target = resolved.targets[0]
        if target.provider_type == "anthropic":
            raise GatewayError(
                502,
                f"Provider {target.provider_name!r} is an Anthropic provider, and Anthropic has no embeddings "
                f"API; configure {request.interaction_type!r} with an openai or custom provider",
                type=UPSTREAM,
            )
        body = openai_embeddings_body(request, model=target.model_name, extra_params=resolved.extra_params)
        try:
            endpoint, answer, attempt.key_hint = await self._keyed.post(
                target, "/embeddings", orjson.dumps(body), chained=False
            )
            document = self._answer_document(endpoint, answer.status, answer.content_type, answer.body)
        except UpstreamFailure as failure:
            self._record(attempt, target, None, failure.kind)
            if failure.retryable:
                raise self._exhausted(resolved, [failure]) from None
            raise self._refusal(failure) from None
        self._record(attempt, target, document.get("usage"), None)
        return Reply(200, answer.body)

    # -- shared ------------------------------------------------------------------------------------

    async def _resolve(self, caller: Caller, request: ParsedRequest, kind: str) -> ResolvedConfig:
        name = request.interaction_type
        if not caller.may_use(name):
            covered = ", ".join(caller.interaction_types or ())
            raise GatewayError(
                403,
                f"This token may use only the interaction types {covered}, not {name!r}",
                type=PERMISSION,
                param="model",
                code="model_not_allowed",
            )
        try:
            resolved = await self._service.aresolve(name, user_id=request.user_id)
        except NotFoundError as exc:
            raise GatewayError(404, str(exc), type=INVALID_REQUEST, param="model", code="model_not_found") from None
        except (ConfigUnavailableError, SecretBackendError) as exc:
            raise GatewayError(503, f"{exc}; try again shortly", type="server_error", code="unavailable") from None
        except LLMConfigError as exc:
            raise GatewayError(503, str(exc), type="server_error", code="not_usable") from None
        if resolved.kind != kind:
            right = ENDPOINT_OF_KIND.get(resolved.kind, "its own endpoint")
            raise bad_request(
                f"{name!r} is an interaction type of kind {resolved.kind}; send it to POST {right}, not "
                f"{ENDPOINT_OF_KIND[kind]}",
                "model",
                code="wrong_endpoint",
            )
        # The user's variant, as the library and client mode pick it; without a user, one drawn by weight.
        return self._within_budgets(resolved.pick(request.user_id))

    def _within_budgets(self, resolved: ResolvedConfig) -> ResolvedConfig:
        """``resolved``, or its budget's ``on_exceed`` model alone once a budget is spent, or 429 before any call."""
        for budget in resolved.budgets:
            spent = self._spend.spent(budget.scope)
            if spent is None:
                continue
            if budget.on_exceed is None:
                described = spent.describe()
                raise GatewayError(
                    429,
                    f"{described[0].upper()}{described[1:]}; no call was made. An operator can raise it "
                    f"(PUT /api/v1/llm/budgets/{budget.scope}) or give it an on_exceed model",
                    type="insufficient_quota",
                    code="insufficient_quota",
                )
            return resolved.model_copy(update={"targets": [budget.on_exceed]})
        return resolved

    @staticmethod
    def _to_openai(request: ParsedRequest, resolved: ResolvedConfig, target: ResolvedTarget) -> dict[str, Any]:
        return openai_chat_body(
            request,
            model=target.model_name,
            temperature=resolved.temperature,
            max_tokens=resolved.max_tokens,
            extra_params=resolved.extra_params,
        )

    def _to_anthropic(
        self, request: ParsedRequest, resolved: ResolvedConfig, target: ResolvedTarget
    ) -> anthropic.Translated:
        configured = anthropic.Configured(
            temperature=resolved.temperature,
            max_tokens=resolved.max_tokens,
            extra_params=api_params(resolved.extra_params),
        )
        return anthropic.to_messages_request(request.body, model=target.model_name, configured=configured)

    @staticmethod
    def _answer_document(endpoint: Endpoint, status: int, content_type: str, body: bytes) -> dict[str, Any]:
        """The JSON object of a successful answer; UpstreamFailure (retryable or not) for any other answer."""
        if 200 <= status < 300:
            if content_type in ("text/html", "application/xhtml+xml"):
                raise UpstreamFailure(
                    f"{endpoint.where} answered with an HTML page, not JSON; is the base URL the provider's API "
                    "address, with no proxy or login page in the way?",
                    retryable=True,
                    kind="ProviderBadResponseError",
                )
            try:
                document = orjson.loads(body)
            except orjson.JSONDecodeError:
                document = None
            if not isinstance(document, dict):
                what = "an empty body" if not body.strip() else "a body that is not a JSON object"
                raise UpstreamFailure(
                    f"{endpoint.where} answered with {what}", retryable=True, kind="ProviderBadResponseError"
                )
            return document
        message = upstream_message(body)
        detail = f": {scrubbed(message, endpoint.api_key)}" if message else ""
        retryable = status >= 500 or status in _RETRYABLE_STATUS
        if status in (401, 403):
            # The provider's own text can quote the key it refused: never passed on.
            detail = ""
        raise UpstreamFailure(f"{endpoint.where} answered {status}{detail}", retryable=retryable, status=status)

    @staticmethod
    def _refusal(failure: UpstreamFailure) -> GatewayError:
        """What the client is told when a provider refused the request itself (no fallback for that)."""
        status = failure.status
        if status in _CALLERS_FAULT:
            return GatewayError(status or 400, f"The {failure}", type=INVALID_REQUEST, code="provider_refused")
        if status in (401, 403):
            return GatewayError(
                502,
                f"The {failure}: the provider refused the API key configured for it. Your token was accepted "
                "here; an operator must fix the provider's key (llmconfig providers …, or the Providers tab)",
                type=UPSTREAM,
                code="provider_key_rejected",
            )
        if status == 404:
            return GatewayError(
                502,
                f"The {failure}: check the model name and base URL configured for this interaction type",
                type=UPSTREAM,
                code="provider_not_found",
            )
        return GatewayError(502, f"The {failure}", type=UPSTREAM, code="provider_failed")

    @staticmethod
    def _exhausted(resolved: ResolvedConfig, failures: list[UpstreamFailure]) -> GatewayError:
        if len(failures) == 1:
            lead = f"The {failures[0]}"
        else:
            lead = f"Every target configured for {resolved.interaction_type!r} failed: " + "; ".join(
                str(failure) for failure in failures
            )
        return GatewayError(502, lead, type=UPSTREAM, code="provider_unavailable")

    @staticmethod
    def _note_fallback(target: ResolvedTarget, failure: UpstreamFailure, resolved: ResolvedConfig, tried: int) -> None:
        if tried < len(resolved.targets):
            following = resolved.targets[tried]
            log.warning(
                "%s/%s failed (%s); trying %s/%s",
                target.provider_name,
                target.model_name,
                failure.kind,
                following.provider_name,
                following.model_name,
            )

    def _record(self, attempt: _Attempt, target: ResolvedTarget, usage: Any, error: str | None) -> None:
        if self._recorder is None:
            return
        usage = usage if isinstance(usage, dict) else {}
        self._recorder.record(
            UsageEvent(
                at=utcnow(),
                interaction_type=attempt.interaction_type,
                user_id=attempt.user_id,
                provider_id=target.provider_id,
                provider_name=target.provider_name,
                model_name=target.model_name,
                prompt_tokens=_count(usage.get("prompt_tokens")),
                completion_tokens=_count(usage.get("completion_tokens")),
                latency_ms=(time.perf_counter() - attempt.started) * 1000,
                success=error is None,
                error_class=error,
                variant=attempt.variant,
                key_hint=attempt.key_hint,
            )
        )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


__all__ = ["ENDPOINT_OF_KIND", "Gateway", "Reply", "StreamReply"]
