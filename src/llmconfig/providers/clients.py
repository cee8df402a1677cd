"""The HTTP clients under every model object a service builds: guarded, capped, shared, closed with it.

The SDKs take an ``http_client`` (and LangChain's ChatOpenAI / OpenAIEmbeddings an ``http_async_client``);
left to themselves they use clients of their own, which connect wherever DNS points, follow environment
proxies and read answers of any size. :class:`ModelClients` holds one sync and one async client per
service, handed to every model it builds (chat, embeddings, every member of a fallback chain, any
provider), so connections are reused across all of them.

Per request the SDKs set the timeout (the model's own, or a short connect timeout inside fallback chains)
and every header; the clients add the guard (:mod:`llmconfig.providers.transport`) and the answer checks
(:mod:`llmconfig.providers.answers`). Redirects are not followed: a model API does not redirect, and httpx2
would carry ``x-api-key`` to whatever host a redirect names.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Sequence
from typing import Any, Protocol

import httpx2

from llmconfig.providers.answers import AnswerChecks
from llmconfig.providers.keys import ApiKey, KeyPool, KeyPools
from llmconfig.providers.outbound import OutboundPolicy
from llmconfig.providers.transport import AsyncGuardedTransport, GuardedTransport

DEFAULT_MODEL_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
# The SDKs' own pool sizes: one client serves every model of the service.
MODEL_LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=100, keepalive_expiry=5.0)
# TCP keep-alive probes after a minute of silence: a peer that vanished mid-answer (a NAT or a load balancer
# dropping the connection without a word) is noticed within about two minutes instead of never. The
# clients LangChain builds itself do the same; options this platform lacks are left out.
MODEL_SOCKET_OPTIONS: tuple[tuple[int, int, int], ...] = tuple(
    (level, option, value)
    for level, name, value in (
        (socket.SOL_SOCKET, "SO_KEEPALIVE", 1),
        (socket.IPPROTO_TCP, "TCP_KEEPIDLE", 60),
        (socket.IPPROTO_TCP, "TCP_KEEPINTVL", 15),
        (socket.IPPROTO_TCP, "TCP_KEEPCNT", 4),
    )
    if (option := getattr(socket, name, None)) is not None
)
# Only used when an SDK passes no timeout of its own; it always does.
MODEL_TIMEOUT = httpx2.Timeout(600.0, connect=5.0)


class HTTPClients(Protocol):
    """What a model object is built on: one sync and one async httpx2 client."""

    @property
    def sync_client(self) -> httpx2.Client: ...

    @property
    def async_client(self) -> httpx2.AsyncClient: ...


class ProviderClients:
    """The clients of one provider's models: the service's transports, with the provider's key pool as auth."""

    def __init__(self, pool: KeyPool, sync_client: httpx2.Client, async_client: httpx2.AsyncClient) -> None:
        self.pool = pool
        self.sync_client = sync_client
        self.async_client = async_client


class ModelClients:
    """One sync and one async httpx2 client for all model calls of a service; thread-safe.

    :meth:`for_provider` hands out clients over the same transports (so the same connection pools) that
    send each request with a key from the provider's :class:`~llmconfig.providers.keys.KeyPool`.
    """

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        max_response_bytes: int = DEFAULT_MODEL_MAX_RESPONSE_BYTES,
        ssl_context: Any = None,
    ) -> None:
        ssl_context = ssl_context or httpx2.create_ssl_context()
        answers = AnswerChecks(max_response_bytes)
        shared: dict[str, Any] = {
            "limits": MODEL_LIMITS,
            "ssl_context": ssl_context,
            "answers": answers,
            "socket_options": MODEL_SOCKET_OPTIONS,
        }
        self._async_transport = AsyncGuardedTransport(policy, **shared)
        # trust_env=False: no proxy (nor .netrc credentials) from the environment; see the outbound module.
        self._sync_transport = GuardedTransport(policy, **shared)
        self.sync_client = httpx2.Client(
            transport=self._sync_transport,
            trust_env=False,
            follow_redirects=False,
            timeout=MODEL_TIMEOUT,
        )
        self.async_client = httpx2.AsyncClient(
            transport=self._async_transport, trust_env=False, follow_redirects=False, timeout=MODEL_TIMEOUT
        )
        self.policy = policy
        self.max_response_bytes = max_response_bytes
        #: The key pools of every provider whose models are built on these clients.
        self.key_pools = KeyPools()
        self._per_provider: dict[str, ProviderClients] = {}
        self._lock = threading.Lock()

    def for_provider(self, provider_id: str, provider_type: str, keys: Sequence[ApiKey]) -> ProviderClients:
        """Clients whose requests carry the provider's keys in turn (see :mod:`llmconfig.providers.keys`).

        Built once per provider: a change of its keys updates the pool in place, so models already built
        keep their clients and follow the change.
        """
        pool = self.key_pools.pool(provider_id, provider_type, keys)
        with self._lock:
            clients = self._per_provider.get(provider_id)
            if clients is None or clients.pool is not pool:
                clients = self._per_provider[provider_id] = ProviderClients(
                    pool,
                    # The shared transports: closing these clients is left to the service's own ones.
                    httpx2.Client(
                        transport=self._sync_transport,
                        auth=pool.auth,
                        trust_env=False,
                        follow_redirects=False,
                        timeout=MODEL_TIMEOUT,
                    ),
                    httpx2.AsyncClient(
                        transport=self._async_transport,
                        auth=pool.auth,
                        trust_env=False,
                        follow_redirects=False,
                        timeout=MODEL_TIMEOUT,
                    ),
                )
            return clients

    def close(self) -> None:
        """Close the connections; model objects built on these clients cannot be used afterwards.

        The async client's connections belong to the event loops that opened them and cannot be closed
        from synchronous code; they are dropped (use :meth:`aclose` from a running loop to close them).
        """
        self.sync_client.close()
        self._async_transport.forget()

    async def aclose(self) -> None:
        """Close both clients, the async one's connections of the running loop included."""
        self.sync_client.close()
        await self.async_client.aclose()


__all__ = [
    "DEFAULT_MODEL_MAX_RESPONSE_BYTES",
    "MODEL_LIMITS",
    "MODEL_SOCKET_OPTIONS",
    "MODEL_TIMEOUT",
    "HTTPClients",
    "ModelClients",
    "ProviderClients",
]
