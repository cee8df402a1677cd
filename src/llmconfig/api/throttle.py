"""Slowing down token guessing: failed authentications per client, counted by the ``limits`` library.

Only a wrong token counts, and only after it was checked, so a valid token always gets in, however many
wrong ones came from the same address before (behind a reverse proxy, that address may be everybody's).
A request without a token guesses nothing and is a plain 401.

The client is the direct peer, unless the peer is one of ``LLMCONFIG_TRUSTED_PROXIES``: then it is the
nearest address in ``Forwarded`` (RFC 7239) or ``X-Forwarded-For`` that is not itself a trusted proxy,
reading from the right, since each proxy appends what it saw and only the part written by trusted proxies
can be believed. An untrusted peer's headers are ignored. IPv6 clients are counted per /64, the block one
subscriber usually holds.

Memory is bounded: at most ``max_clients`` clients are tracked at once, each forgotten (and its window
cleared from the storage) once it has not failed for a whole window. Past the bound, new clients share one
bucket, so guessing spread over many addresses is still slowed; valid tokens are never affected by it.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence

from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# The bucket shared by every client beyond ``max_clients``, and by peers that give no usable address.
OVERFLOW = "overflow"
UNIDENTIFIED = "unidentified"
NAMESPACE = "failed-auth"


class FailedAuthLimiter:
    """At most ``limit`` failed attempts per client in any ``window`` seconds (a moving window)."""

    def __init__(self, *, limit: int = 10, window: int = 60, max_clients: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.max_clients = max_clients
        self._item = RateLimitItemPerSecond(limit, window)
        self._storage = MemoryStorage()
        self._limiter = MovingWindowRateLimiter(self._storage)
        # Client → when it last failed, oldest first. The storage forgets nothing on its own: its expiry
        # trims old entries but keeps one (empty) list per key it has seen, so keys are cleared from here.
        self._clients: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def failed(self, client: str) -> int | None:
        """Count one failed attempt by ``client``: None while it is within the limit, else seconds to wait."""
        bucket = bucket_of(client)
        now = time.monotonic()
        with self._lock:
            self._forget_idle(now)
            if bucket not in self._clients and len(self._clients) >= self.max_clients:
                bucket = OVERFLOW
            self._clients[bucket] = now
            self._clients.move_to_end(bucket)
            if self._limiter.hit(self._item, NAMESPACE, bucket):
                return None
            reset_at, _ = self._limiter.get_window_stats(self._item, NAMESPACE, bucket)
        return max(1, math.ceil(reset_at - time.time()))

    def __len__(self) -> int:
        """How many clients (buckets) are tracked now."""
        return len(self._clients)

    def stored_keys(self) -> int:
        """How many keys the rate-limit storage holds now (for checking the bound)."""
        return len(self._storage.events) + len(self._storage.storage)

    def _forget_idle(self, now: float) -> None:
        while self._clients:
            client, last_failed = next(iter(self._clients.items()))
            if now - last_failed < self.window:
                return
            del self._clients[client]
            self._limiter.clear(self._item, NAMESPACE, client)


def bucket_of(client: str) -> str:
    """What failures are counted by: the address, or its /64 for IPv6; a peer that is not an IP address
    (a Unix socket, a test client) by its name."""
    address = parse_address(client)
    if address is None:
        return client[:100] or UNIDENTIFIED
    if address.version == 6:
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def parse_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An IP address from a peer or a forwarded hop (ports and brackets removed), or None."""
    host = text.strip().strip('"')
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    """The peers whose ``Forwarded`` / ``X-Forwarded-For`` headers are believed (addresses and CIDRs)."""

    def __init__(self, entries: Iterable[str] = ()) -> None:
        self._networks: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)

    def __contains__(self, host: str) -> bool:
        address = parse_address(host)
        return address is not None and any(address in network for network in self._networks)

    def client_of(self, peer: str | None, headers: Mapping[str, str] | Sequence[tuple[str, str]]) -> str:
        """The address to count a request by: the peer, or the first untrusted forwarded hop behind it."""
        if peer is None:
            return UNIDENTIFIED
        if not self._networks or peer not in self:
            return peer
        hops = forwarded_hops(headers)
        for hop in reversed(hops):
            if hop not in self:
                # What a proxy wrote: an address, or an obfuscated name ("unknown", "_hidden") shared by all.
                return hop if parse_address(hop) is not None else UNIDENTIFIED
        # Every hop is a trusted proxy: the request started at one of them.
        return hops[0] if hops else peer


def forwarded_hops(headers: Mapping[str, str] | Sequence[tuple[str, str]]) -> list[str]:
    """The client addresses recorded by proxies, nearest last: ``Forwarded``'s ``for=`` if sent, else XFF."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    forwarded: list[str] = []
    x_forwarded_for: list[str] = []
    for name, value in items:
        lowered = name.lower()
        if lowered == "forwarded":
            forwarded.append(value)
        elif lowered == "x-forwarded-for":
            x_forwarded_for.append(value)
    if forwarded:
        hops = []
        for element in ",".join(forwarded).split(","):
            for pair in element.split(";"):
                key, _, value = pair.strip().partition("=")
                if key.strip().lower() == "for":
                    hops.append(value.strip())
        return hops
    return [hop.strip() for hop in ",".join(x_forwarded_for).split(",") if hop.strip()]
