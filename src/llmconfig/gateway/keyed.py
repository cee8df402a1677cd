"""Requests to a provider with the keys of its pool, as library calls send them.

Each request takes the provider's next key in turn (:class:`~llmconfig.providers.keys.KeyPool`, the pool this
process's model objects use too). A key answered 429, 401 or 403 rests, and the same request goes again at once
with another key of the provider while one is free; only when none is does the answer reach the fallback chain.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from llmconfig.gateway.upstream import Answer, Endpoint, StreamingAnswer, Upstream
from llmconfig.llm.resolved import ResolvedTarget
from llmconfig.providers.keys import ApiKey, KeyPool

_MAX_SEEN = 1024

AnswerT = TypeVar("AnswerT", Answer, StreamingAnswer)


class KeyedRequests:
    """POSTs to a target's endpoints, each with a key of the target's provider; see the module docstring."""

    def __init__(self, upstream: Upstream, pools: Callable[[ResolvedTarget], KeyPool]) -> None:
        self._upstream = upstream
        self._pools = pools
        # The pool of each provider version seen: a change of its keys is a new version, so a pool found here
        # has the keys the target carries (looking it up anew would rebuild the key list on every request).
        self._seen: dict[tuple[str, int], KeyPool] = {}

    def _pool(self, target: ResolvedTarget) -> KeyPool | None:
        if not target.api_keys:
            return None
        seen = (target.provider_id, target.provider_version)
        pool = self._seen.get(seen)
        if pool is None:
            if len(self._seen) >= _MAX_SEEN:
                self._seen.clear()
            pool = self._seen[seen] = self._pools(target)
        return pool

    def endpoint(self, target: ResolvedTarget, path: str, key: ApiKey | None = None) -> Endpoint:
        """The endpoint ``path`` of ``target``, carrying ``key`` (or the target's first key)."""
        return self._upstream.endpoint(
            provider_id=target.provider_id,
            provider_name=target.provider_name,
            provider_type=target.provider_type,
            base_url=target.base_url,
            path=path,
            api_key=key.value if key is not None else target.api_key,
        )

    async def post(
        self, target: ResolvedTarget, path: str, body: bytes, *, chained: bool
    ) -> tuple[Endpoint, Answer, str | None]:
        """The whole answer, the endpoint it came from, and the hint of the key it was sent with."""

        async def send(endpoint: Endpoint) -> Answer:
            return await self._upstream.post(endpoint, body, chained=chained)

        return await self._in_turn(target, path, send, discard=lambda answer: None)

    async def open(
        self, target: ResolvedTarget, path: str, body: bytes, *, chained: bool
    ) -> tuple[Endpoint, StreamingAnswer, str | None]:
        """The answer once its headers are in (the caller reads and closes it), as :meth:`post` sends it."""

        async def send(endpoint: Endpoint) -> StreamingAnswer:
            return await self._upstream.open(endpoint, body, chained=chained)

        return await self._in_turn(target, path, send, discard=StreamingAnswer.close)

    async def _in_turn(
        self,
        target: ResolvedTarget,
        path: str,
        send: Callable[[Endpoint], Awaitable[AnswerT]],
        *,
        discard: Callable[[AnswerT], None],
    ) -> tuple[Endpoint, AnswerT, str | None]:
        """Send with the pool's next key until an answer does not put its key to rest, or no other key is free;
        ``discard`` releases an answer that is not returned."""
        pool = self._pool(target)
        tried: set[str] = set()
        while True:
            key = pool.choose(avoid=frozenset(tried)) if pool is not None else None
            endpoint = self.endpoint(target, path, key)
            answer = await send(endpoint)
            if pool is None or key is None or not _another_key(pool, key, answer.status, answer.headers, tried):
                return endpoint, answer, key.hint if key is not None else None
            discard(answer)


def _another_key(pool: KeyPool, key: ApiKey, status: int, headers: Mapping[str, str], tried: set[str]) -> bool:
    """Note the answer ``key`` got; True when it put the key to rest and another key is free to try."""
    if not pool.observe(key, status, headers):
        return False
    tried.add(key.key_id)
    return pool.free_other_than(frozenset(tried)) is not None
