"""Several keys per provider: which key a model call is sent with, and which keys rest.

A :class:`KeyPool` holds the decrypted keys of one provider in one process. Every model request of that
provider passes :class:`KeyPoolAuth`, an httpx2 ``Auth`` on the provider's clients (see
:class:`~llmconfig.providers.clients.ModelClients`), which

* sets the provider's credential header per request (``Authorization: Bearer`` for OpenAI-compatible
  servers, ``x-api-key`` for Anthropic) with the next key in turn;
* puts a key that is answered 429 (rate limited) or 401/403 (rejected) to rest: 429 for its ``Retry-After``
  (``retry-after-ms`` or ``retry-after``, seconds or an HTTP date) or :data:`RATE_LIMIT_REST` without one,
  401/403 for :data:`REJECTED_REST`;
* sends the same request again at once with another key that is not resting, so a rate-limited key costs
  the call nothing while another key is free (the SDKs' own retries, and later calls, also go to the next
  key in turn).

While every key rests, calls use the key whose rest ends first: a provider with keys is never left without
one, and the key most likely to work again is the one tried.

The pools live in a :class:`KeyPools` registry per process, keyed by provider id; a pool's keys are replaced
in place when the provider's keys change, and the rest of a key that stays is kept. So the LangChain objects
built on a pool are not rebuilt when a key rests, and objects still held by callers follow key changes.

Which key served a call is noted for usage tracking through :func:`noting_keys`: the usage hooks open a
:class:`KeyNote` around a call, the auth writes the hint of each key it sends into it, and the last one
written is the key that answered.
"""

from __future__ import annotations

import contextlib
import email.utils
import threading
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx2

# Seconds a key rests after a 429 without Retry-After, and after a 401 or 403.
RATE_LIMIT_REST = 60.0
REJECTED_REST = 600.0
# A Retry-After beyond this is taken as this: a key is tried again within the hour whatever a server says.
MAX_REST = 3600.0
REST_STATUSES = frozenset({401, 403, 429})

# The credential header each provider type reads its key from.
_HEADERS = {"anthropic": "x-api-key"}


@dataclass(frozen=True, slots=True)
class KeyRef:
    """One stored key of a provider: its id, its secret reference and its hint (never the key)."""

    key_id: str
    reference: str
    hint: str | None


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One decrypted key, for immediate use; its ``repr`` never shows the value."""

    key_id: str
    hint: str | None
    value: str = field(repr=False)

    def __repr__(self) -> str:
        return f"ApiKey({self.key_id}, hint={self.hint!r})"

    __str__ = __repr__


def key_hint(api_key: str) -> str | None:
    """The last four characters, and only for keys long enough that four reveal nothing useful."""
    return api_key[-4:] if len(api_key) >= 12 else None


@dataclass(slots=True)
class KeyNote:
    """Which key the requests of one call were sent with (the last one is the key that answered)."""

    hint: str | None = None
    sent: bool = False


_note: ContextVar[KeyNote | None] = ContextVar("llmconfig_key_note", default=None)


@contextlib.contextmanager
def noting_keys() -> Iterator[KeyNote]:
    """A :class:`KeyNote` that the requests made inside this block write their key into."""
    note = KeyNote()
    token = _note.set(note)
    try:
        yield note
    finally:
        _note.reset(token)


def open_note() -> KeyNote:
    """A :class:`KeyNote` for the rest of the current context (for hooks that cannot wrap the call)."""
    note = KeyNote()
    _note.set(note)
    return note


def rest_for(status: int, headers: Mapping[str, str]) -> float | None:
    """Seconds the key that got this answer should rest; None when the answer says nothing against the key.

    ``headers`` must look names up without regard to case (httpx2's and aiohttp's headers do).
    """
    if status not in REST_STATUSES:
        return None
    if status != 429:
        return REJECTED_REST
    seconds: float | None = None
    # Whatever a server sends here must not fail the call: anything unreadable means the default rest.
    with contextlib.suppress(ValueError, TypeError, OverflowError, IndexError):
        if "retry-after-ms" in headers:
            seconds = float(headers["retry-after-ms"]) / 1000
        elif "retry-after" in headers:
            value = headers["retry-after"].strip()
            try:
                seconds = float(value)
            except ValueError:
                when = email.utils.parsedate_to_datetime(value)
                if when.tzinfo is None:  # "-0000": a UTC time, by RFC 5322
                    when = when.replace(tzinfo=UTC)
                seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds is None or seconds != seconds:  # missing, unreadable or NaN
        return RATE_LIMIT_REST
    return min(max(seconds, 0.0), MAX_REST)


class KeyPool:
    """The keys of one provider in this process, taken in turn, with the rest of each; thread-safe."""

    def __init__(self, provider_id: str, provider_type: str, keys: Sequence[ApiKey] = ()) -> None:
        self.provider_id = provider_id
        self.header = _HEADERS.get(provider_type, "authorization")
        self._lock = threading.Lock()
        self._keys: tuple[ApiKey, ...] = tuple(keys)
        # key id -> time.monotonic() at which the key may be used again
        self._resting: dict[str, float] = {}
        self._turn = 0
        self.auth = KeyPoolAuth(self)

    @property
    def keys(self) -> tuple[ApiKey, ...]:
        return self._keys

    def replace(self, keys: Sequence[ApiKey]) -> None:
        """Use ``keys`` from now on; keys that stay (same id and value) keep their rest."""
        with self._lock:
            if tuple(keys) == self._keys:
                return
            kept = {key.key_id for key in self._keys if key in keys}
            self._keys = tuple(keys)
            self._resting = {key_id: until for key_id, until in self._resting.items() if key_id in kept}

    def choose(self, *, avoid: frozenset[str] = frozenset()) -> ApiKey | None:
        """The next key in turn that is not resting (nor in ``avoid``); while all rest, the first back.

        None only when the provider has no key.
        """
        now = time.monotonic()
        with self._lock:
            keys = self._keys
            if not keys:
                return None
            for step in range(len(keys)):
                key = keys[(self._turn + step) % len(keys)]
                if key.key_id not in avoid and self._resting.get(key.key_id, 0.0) <= now:
                    self._turn = (self._turn + step + 1) % len(keys)
                    return key
            candidates = [key for key in keys if key.key_id not in avoid] or list(keys)
            return min(candidates, key=lambda key: self._resting.get(key.key_id, 0.0))

    def free_other_than(self, tried: frozenset[str]) -> ApiKey | None:
        """A key not in ``tried`` that is not resting, taken in turn; None when there is none."""
        now = time.monotonic()
        with self._lock:
            keys = self._keys
            for step in range(len(keys)):
                key = keys[(self._turn + step) % len(keys)]
                if key.key_id not in tried and self._resting.get(key.key_id, 0.0) <= now:
                    self._turn = (self._turn + step + 1) % len(keys)
                    return key
        return None

    def rest(self, key: ApiKey, seconds: float) -> None:
        """Keep ``key`` out of turn for ``seconds`` (a longer rest already running is kept)."""
        until = time.monotonic() + seconds
        with self._lock:
            if any(known.key_id == key.key_id for known in self._keys):
                self._resting[key.key_id] = max(until, self._resting.get(key.key_id, 0.0))

    def observe(self, key: ApiKey, status: int, headers: Mapping[str, str]) -> bool:
        """Note the answer ``key`` got (its status and headers); True when it put the key to rest."""
        seconds = rest_for(status, headers)
        if seconds is None:
            return False
        self.rest(key, seconds)
        return True

    def resting_until(self, key_id: str) -> datetime | None:
        """When the key may be used again (wall clock, UTC), or None when it is not resting."""
        with self._lock:
            until = self._resting.get(key_id)
        remaining = None if until is None else until - time.monotonic()
        if remaining is None or remaining <= 0:
            return None
        return datetime.now(UTC) + timedelta(seconds=remaining)

    def credentials(self, key: ApiKey) -> dict[str, str]:
        """The header that carries ``key`` to this provider (for callers with an HTTP client of their own)."""
        if self.header == "x-api-key":
            return {"x-api-key": key.value}
        return {"authorization": f"Bearer {key.value}"}

    def stamp(self, request: httpx2.Request, key: ApiKey) -> None:
        """Put ``key`` into ``request``'s credential header (dropping the one the SDK set)."""
        if self.header == "x-api-key":
            request.headers.pop("authorization", None)
        request.headers.update(self.credentials(key))


class KeyPoolAuth(httpx2.Auth):
    """The httpx2 auth of a provider's clients: a key from the pool per request; see the module docstring."""

    requires_request_body = True  # a request may be sent again with another key

    def __init__(self, pool: KeyPool) -> None:
        self._pool = pool

    def auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        pool = self._pool
        key = pool.choose()
        if key is None:
            yield request
            return
        tried: set[str] = set()
        while True:
            pool.stamp(request, key)
            note = _note.get()
            if note is not None:
                note.hint, note.sent = key.hint, True
            tried.add(key.key_id)
            response = yield request
            if not pool.observe(key, response.status_code, response.headers):
                return
            following = pool.free_other_than(frozenset(tried))
            if following is None:
                return  # the SDK sees the answer (and may retry: its retry takes the next key in turn)
            key = following


class KeyPools:
    """Every provider's :class:`KeyPool` in this process, by provider id; thread-safe."""

    def __init__(self) -> None:
        self._pools: dict[str, KeyPool] = {}
        self._lock = threading.Lock()

    def pool(self, provider_id: str, provider_type: str, keys: Sequence[ApiKey]) -> KeyPool:
        """The provider's pool, its keys replaced by ``keys`` (the rest of keys that stay is kept)."""
        with self._lock:
            pool = self._pools.get(provider_id)
            if pool is None or pool.header != _HEADERS.get(provider_type, "authorization"):
                pool = self._pools[provider_id] = KeyPool(provider_id, provider_type, keys)
                return pool
        pool.replace(keys)
        return pool

    def get(self, provider_id: str) -> KeyPool | None:
        with self._lock:
            return self._pools.get(provider_id)

    def resting_until(self, provider_id: str, key_id: str) -> datetime | None:
        """When a key of a provider may be used again in this process (None: not resting, or never used)."""
        pool = self.get(provider_id)
        return None if pool is None else pool.resting_until(key_id)


__all__ = [
    "MAX_REST",
    "RATE_LIMIT_REST",
    "REJECTED_REST",
    "ApiKey",
    "KeyNote",
    "KeyPool",
    "KeyPoolAuth",
    "KeyPools",
    "KeyRef",
    "key_hint",
    "noting_keys",
    "open_note",
    "rest_for",
]
