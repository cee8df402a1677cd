"""A guarded aiohttp-backed async HTTP client for the SDKs (the ``aiohttp`` extra).

aiohttp forwards far faster than httpx2's own async transport under load, which matters where many calls
are forwarded at once (the OpenAI-compatible gateway). :func:`guarded_aiohttp_client` returns an
``httpx2.AsyncClient`` (what ``openai.AsyncOpenAI`` and ``anthropic.AsyncAnthropic`` take as
``http_client``; it is what their own ``DefaultAioHttpClient`` is) on the httpx-aiohttp transport, with the
same guarantees as :class:`~llmconfig.providers.clients.ModelClients`:

* aiohttp's connector resolves host names through :class:`GuardedResolver`, which checks every address
  with the :class:`~llmconfig.providers.outbound.OutboundPolicy`; the connector then connects only to
  those addresses (and keeps them in its DNS cache, checked). IP literals never reach a resolver, so
  :class:`GuardedAiohttpTransport` checks them before handing a request on;
* no proxy from the environment (``trust_env=False``), no redirects;
* every answer passes :class:`~llmconfig.providers.answers.AnswerChecks` (size cap, JSON when successful).

An aiohttp session belongs to the event loop it was created in: build one client per loop (the gateway
has one) and close it with ``await client.aclose()`` before the loop ends. With the Anthropic SDK, pass
``middleware=[PassRefusalsThrough()]`` (:mod:`llmconfig.providers.anthropic_chat`) so that the guard's
refusals are not wrapped and retried as connection errors.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

import httpx2

from llmconfig.providers.answers import AnswerChecks
from llmconfig.providers.clients import DEFAULT_MODEL_MAX_RESPONSE_BYTES, MODEL_LIMITS, MODEL_TIMEOUT
from llmconfig.providers.outbound import IPAddress, OutboundPolicy, parse_address

try:
    import aiohttp
    from aiohttp.abc import AbstractResolver, ResolveResult
    from httpx_aiohttp.httpx2 import AiohttpTransport
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "llmconfig.providers.aiohttp_client needs aiohttp and httpx-aiohttp: pip install 'llmconfig[aiohttp]'"
    ) from exc


class GuardedResolver(AbstractResolver):
    """Resolves with aiohttp's default resolver, then refuses the lot if the policy blocks any address."""

    def __init__(self, policy: OutboundPolicy, resolver: AbstractResolver | None = None) -> None:
        self.policy = policy
        self._resolver = resolver or aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        vouched = self.policy.check_name(host)
        results = await self._resolver.resolve(host, port, family)
        if not vouched:
            addresses: list[IPAddress] = [a for r in results if (a := parse_address(str(r["host"]))) is not None]
            self.policy.check_addresses(host, addresses)
        return results

    async def close(self) -> None:
        await self._resolver.close()


class GuardedAiohttpTransport(httpx2.AsyncBaseTransport):
    """The httpx-aiohttp transport behind the literal-address check and the answer checks."""

    def __init__(self, policy: OutboundPolicy, inner: httpx2.AsyncBaseTransport, answers: AnswerChecks) -> None:
        self.policy = policy
        self._inner = inner
        self._answers = answers

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        literal = parse_address(request.url.host)
        if literal is not None:  # aiohttp connects to an IP literal without asking the resolver
            self.policy.check(request.url.host, literal)
        response = await self._inner.handle_async_request(request)
        return await self._answers.acheck(request, response)

    async def aclose(self) -> None:
        await self._inner.aclose()


def guarded_aiohttp_client(
    policy: OutboundPolicy,
    *,
    max_response_bytes: int = DEFAULT_MODEL_MAX_RESPONSE_BYTES,
    limits: httpx2.Limits = MODEL_LIMITS,
    ssl_context: ssl.SSLContext | None = None,
    timeout: httpx2.Timeout | float = MODEL_TIMEOUT,
) -> httpx2.AsyncClient:
    """An aiohttp-backed ``httpx2.AsyncClient`` whose every connection and answer is checked (module docstring).

    Build it (and use it) inside the event loop that will run the calls; the aiohttp session is created on
    the first request.
    """
    context = ssl_context or httpx2.create_ssl_context()

    pooling: dict[str, Any] = {"limit": limits.max_connections or 0}
    if limits.keepalive_expiry is not None:
        pooling["keepalive_timeout"] = limits.keepalive_expiry

    def session() -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(policy), ssl=context, **pooling)
        # trust_env=False: aiohttp would otherwise take HTTP(S)_PROXY and connect beyond the resolver's check.
        return aiohttp.ClientSession(connector=connector, trust_env=False)

    inner: Any = AiohttpTransport(client=session, limits=limits, trust_env=False)
    transport = GuardedAiohttpTransport(policy, inner, AnswerChecks(max_response_bytes))
    return httpx2.AsyncClient(transport=transport, trust_env=False, follow_redirects=False, timeout=timeout)


__all__ = ["GuardedAiohttpTransport", "GuardedResolver", "guarded_aiohttp_client"]
