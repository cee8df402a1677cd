"""ChatAnthropic on llmconfig's HTTP clients.

Unlike ChatOpenAI, LangChain's ChatAnthropic takes no ``http_client``: it builds its SDK clients in its
``_client`` / ``_async_client`` properties. :class:`GuardedChatAnthropic` builds them on the service's
:class:`~llmconfig.providers.clients.ModelClients` instead, honours a connect timeout of its own (for fallback
chains), and adds :class:`PassRefusalsThrough` so that a refusal of the guard or of the answer checks
reaches the caller as itself rather than as the SDK's retried "Connection error.".

Imported only when an Anthropic model is built: LangChain costs about a second to import.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import anthropic
import httpx2
from anthropic import APIConnectionError, Middleware
from langchain_anthropic import ChatAnthropic
from pydantic import Field

from llmconfig.errors import ProviderBadResponseError, ProviderBlockedError, cause_of

# What the guarded transports raise on their own account.
_REFUSALS = (ProviderBlockedError, ProviderBadResponseError)


class PassRefusalsThrough(Middleware):
    """Raise the guard's refusal itself where the SDK wrapped it in APIConnectionError.

    The SDK wraps whatever its HTTP client raises in APIConnectionError and retries it with back-off; a
    refusal says exactly what is wrong and would only be repeated. The SDK passes on as they are the
    errors its middleware raises (other than its own retryable ones).
    """

    def handle(self, request: Any, call_next: Any) -> Any:
        try:
            return call_next(request)
        except APIConnectionError as exc:
            refusal = cause_of(exc, _REFUSALS)
            if refusal is None:
                raise
        raise refusal

    async def handle_async(self, request: Any, call_next: Any) -> Any:
        try:
            return await call_next(request)
        except APIConnectionError as exc:
            refusal = cause_of(exc, _REFUSALS)
            if refusal is None:
                raise
        raise refusal


class GuardedChatAnthropic(ChatAnthropic):
    """ChatAnthropic whose SDK clients use the given httpx2 clients (None: ChatAnthropic's own)."""

    http_client: Any = Field(default=None, exclude=True)
    http_async_client: Any = Field(default=None, exclude=True)
    # Seconds to establish a connection, within the total default_request_timeout (None: no separate limit).
    connect_timeout: float | None = Field(default=None, exclude=True)

    def _sdk_params(self) -> dict[str, Any]:
        params = dict(self._client_params)
        if self.connect_timeout is not None:
            total = params.get("timeout")
            params["timeout"] = httpx2.Timeout(total if total is not None else 600.0, connect=self.connect_timeout)
        return params

    @cached_property
    def _client(self) -> anthropic.Client:
        if self.http_client is None:
            return ChatAnthropic._client.func(self)  # type: ignore[attr-defined,no-any-return]
        return anthropic.Client(**self._sdk_params(), http_client=self.http_client, middleware=[PassRefusalsThrough()])

    @cached_property
    def _async_client(self) -> anthropic.AsyncClient:
        if self.http_async_client is None:
            return ChatAnthropic._async_client.func(self)  # type: ignore[attr-defined,no-any-return]
        return anthropic.AsyncClient(
            **self._sdk_params(), http_client=self.http_async_client, middleware=[PassRefusalsThrough()]
        )


__all__ = ["GuardedChatAnthropic", "PassRefusalsThrough"]
