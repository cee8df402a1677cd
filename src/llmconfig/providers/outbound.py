"""The guard on outbound requests: validation, model discovery and every model call.

A base URL is input from whoever may add providers, and validating it, or calling a model there, makes this
process send an HTTP request there. Without a guard, that is a way to reach what only this process can
reach: the cloud metadata service (instance credentials at ``169.254.169.254``), link-local devices, or any
address an operator wants kept out of reach. Checking the URL once when the provider is added is not enough:
its host name can later resolve somewhere else (DNS rebinding), so every connection is checked when it is
made. Loopback and private ranges stay reachable by default, since that is where vLLM, Ollama and friends
usually run.

Two halves, kept apart so the rules can be tested without a network:

* **Rules** (:class:`OutboundPolicy`): which ``(host name, address)`` pairs may be contacted. Entries of
  ``LLMCONFIG_OUTBOUND_ALLOW`` / ``LLMCONFIG_OUTBOUND_DENY`` are IP addresses, CIDRs, host names, or
  ``*.domain`` wildcards. Precedence, in order:

  1. the most specific matching entry decides: an exact host name beats a ``*.`` wildcard (longer suffix
     first), which beats any CIDR (longer prefix first);
  2. on a tie, the deny list beats the allow list, which beats the built-in blocked ranges — so naming
     ``169.254.169.254`` (or the host name) in the allow list opens the metadata range for that address
     only, while ``0.0.0.0/0`` does not;
  3. nothing matched: blocked if an allow list is set (then only what it names is reachable), else allowed.

  A host name whose answers include one blocked address is blocked as a whole: a mixed answer is exactly
  what a DNS-rebinding attacker would serve.

* **Plumbing** (:mod:`llmconfig.providers.transport`): network backends that resolve the host themselves,
  check every address, and connect to one of the checked addresses, under the HTTP clients of validation
  (``OutboundClient``) and of the model objects (``ModelClients``). The check and the connection use the
  same resolution, so there is no window in which DNS could answer differently (TLS certificate and SNI
  checks still use the host name). Every connection goes through it, including those to the targets of
  redirects, which validation follows one hop at a time (see ``adapters._fetch_json``) and model calls do
  not follow at all.

Environment proxies (``HTTPS_PROXY`` …) are never used: a proxy would resolve and connect on our behalf,
out of reach of the check.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from llmconfig.errors import ProviderBlockedError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_SETTING = "LLMCONFIG_OUTBOUND_ALLOW"
DENY_SETTING = "LLMCONFIG_OUTBOUND_DENY"
ALLOWED_SCHEMES = frozenset({"http", "https"})
DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
# Enough for http→https and a trailing-slash hop or two; a longer chain is a loop or a trap.
MAX_REDIRECTS = 5

# Blocked unless an allow entry at least as specific names them. Loopback and private ranges are not here
# on purpose: self-hosted model servers live there.
BUILTIN_BLOCKED: tuple[tuple[str, str], ...] = (
    ("169.254.0.0/16", "in the link-local range 169.254.0.0/16, where cloud metadata services answer"),
    ("fe80::/10", "in the IPv6 link-local range fe80::/10"),
    ("fd00:ec2::254/128", "the IPv6 address of the AWS metadata service"),
)

# RFC 6052 well-known NAT64 prefix: a gateway forwards these to the IPv4 address in the last 32 bits.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")

Source = Literal["deny", "allow", "builtin"]
# Tie-break between equally specific matches: the operator's deny list, then their allow list, then ours.
_SOURCE_RANK: dict[Source, int] = {"deny": 2, "allow": 1, "builtin": 0}


# ------------------------------------------------------------------------------------------------ rules


@dataclass(frozen=True, slots=True)
class Rule:
    """One allow/deny entry: an address range, an exact host name or a ``*.suffix`` wildcard."""

    text: str
    network: IPNetwork | None = None
    host: str | None = None
    wildcard: bool = False

    def matches(self, host: str | None, address: IPAddress | None) -> bool:
        if self.network is not None:
            return address is not None and address.version == self.network.version and address in self.network
        if host is None or self.host is None:
            return False
        if self.wildcard:
            return host.endswith("." + self.host)
        return host == self.host

    @property
    def specificity(self) -> tuple[int, int]:
        if self.network is not None:
            return (0, self.network.prefixlen)
        if self.wildcard:
            return (1, len(self.host or ""))
        return (2, 0)


def parse_rule(entry: str) -> Rule:
    """Parse one entry; a ValueError names the entry and says what would have been accepted."""
    text = entry.strip()
    candidate = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    if "://" in candidate:
        raise ValueError(f"{text!r} is a URL; give only its host name or address (for example api.example.com)")
    if "/" in candidate or _looks_like_address(candidate):
        try:
            network = ipaddress.ip_network(candidate, strict=True)
        except ValueError as exc:
            hint = ""
            if "host bits set" in str(exc):
                hint = f" (host bits set: did you mean {ipaddress.ip_network(candidate, strict=False)}?)"
            raise ValueError(f"{text!r} is not a valid IP address or CIDR{hint}") from None
        network = _effective_network(network)
        shown = str(network.network_address) if network.prefixlen == network.max_prefixlen else str(network)
        return Rule(text=shown, network=network)
    host = candidate.lower().rstrip(".")
    wildcard = host.startswith("*.")
    name = host[2:] if wildcard else host
    if not name or not all(_HOST_LABEL.match(label) for label in name.split(".")):
        raise ValueError(
            f"{text!r} is not an IP address, CIDR (10.0.0.0/8), host name (api.example.com) or wildcard (*.example.com)"
        )
    return Rule(text=host, host=name, wildcard=wildcard)


def parse_rules(value: str | Iterable[str]) -> tuple[Rule, ...]:
    """Parse a comma-separated string or a list of entries; blank entries are ignored."""
    entries = value.split(",") if isinstance(value, str) else value
    return tuple(parse_rule(entry) for entry in entries if entry.strip())


def _looks_like_address(text: str) -> bool:
    # A host name never contains ':' and is never all digits and dots (that would be an IPv4 address,
    # possibly a malformed one, which deserves the address error message).
    return ":" in text or bool(re.fullmatch(r"[0-9.]+", text))


def _effective_network(network: IPNetwork) -> IPNetwork:
    """An IPv4-mapped IPv6 range as the IPv4 range it stands for (addresses are matched that way too)."""
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96 and network.subnet_of(_MAPPED):
        return ipaddress.IPv4Network((int(network.network_address) & 0xFFFFFFFF, network.prefixlen - 96))
    return network


def effective_address(address: IPAddress) -> IPAddress:
    """The address a connection really reaches, for matching against rules.

    ``::ffff:169.254.169.254`` (IPv4-mapped) and ``64:ff9b::a9fe:a9fe`` (NAT64) reach the IPv4 address they
    embed; ``0.0.0.0`` and ``::`` reach the local host on Linux, so they are checked as loopback. A NAT64
    gateway reaches the embedded address from its own side, so ``64:ff9b::7f00:1`` is the gateway's loopback,
    not this host's: it stays the IPv6 address it is (and an allow-list of loopback does not let it through).
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
            if not (embedded.is_loopback or embedded.is_unspecified):
                address = embedded
        elif address.is_unspecified:
            return ipaddress.IPv6Address("::1")
    if isinstance(address, ipaddress.IPv4Address) and address.is_unspecified:
        return ipaddress.IPv4Address("127.0.0.1")
    return address


def parse_address(text: str) -> IPAddress | None:
    """The address of an IP literal (brackets and an IPv6 zone allowed), or None for a host name."""
    candidate = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        return ipaddress.ip_address(candidate.split("%", 1)[0])
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str = ""


_ALLOWED = Decision(allowed=True)


class OutboundPolicy:
    """Decides whether a host (and each address it resolves to) may be contacted; see the module docstring."""

    def __init__(self, *, allow: str | Iterable[str] = (), deny: str | Iterable[str] = ()) -> None:
        self.allow = parse_rules(allow)
        self.deny = parse_rules(deny)
        self._builtin = tuple((parse_rule(cidr), why) for cidr, why in BUILTIN_BLOCKED)

    def decide_name(self, host: str) -> Decision | None:
        """The decision a host-name entry makes on its own (before any DNS lookup), or None if none applies.

        Host-name entries outrank every CIDR, so when one matches, the addresses do not matter.
        """
        name = _normal_host(host)
        if parse_address(name) is not None:
            return None
        best = self._best_match(name, None)
        if best is None:
            return None
        return self._verdict(best, host=name, address=None)

    def decide(self, host: str, address: IPAddress | str) -> Decision:
        """Whether ``address`` (which ``host`` resolved to, or ``host`` itself for an IP literal) may be contacted."""
        name = _normal_host(host)
        ip = parse_address(address) if isinstance(address, str) else address
        if ip is None:
            raise ValueError(f"{address!r} is not an IP address")
        ip = effective_address(ip)
        hostname = None if parse_address(name) is not None else name
        best = self._best_match(hostname, ip)
        if best is None:
            if self.allow:
                return Decision(
                    allowed=False,
                    reason=(
                        f"{_subject(name, ip)} not on {ALLOW_SETTING}; add the host name or a CIDR containing "
                        f"{ip} there to allow it"
                    ),
                )
            return _ALLOWED
        return self._verdict(best, host=name, address=ip)

    def check(self, host: str, address: IPAddress | str) -> None:
        """Raise ProviderBlockedError unless ``decide`` allows the pair."""
        decision = self.decide(host, address)
        if not decision.allowed:
            raise ProviderBlockedError(f"Request to {_normal_host(host)} blocked: {decision.reason}")

    def check_name(self, host: str) -> bool:
        """Before any lookup: ProviderBlockedError if a host-name entry blocks ``host``.

        True when a host-name entry allows it, which vouches for whatever the name resolves to; False when
        its addresses decide (then pass them to :meth:`check_addresses`).
        """
        decision = self.decide_name(host)
        if decision is None:
            return False
        if not decision.allowed:
            raise ProviderBlockedError(f"Request to {_normal_host(host)} blocked: {decision.reason}")
        return True

    def check_addresses(self, host: str, addresses: Iterable[IPAddress]) -> None:
        """ProviderBlockedError unless every address ``host`` resolved to may be contacted (one blocks them all)."""
        for address in addresses:
            self.check(host, address)

    def _best_match(self, host: str | None, address: IPAddress | None) -> tuple[Rule, Source, str] | None:
        candidates: list[tuple[Rule, Source, str]] = [
            (rule, "deny", "") for rule in self.deny if rule.matches(host, address)
        ]
        candidates += [(rule, "allow", "") for rule in self.allow if rule.matches(host, address)]
        candidates += [(rule, "builtin", why) for rule, why in self._builtin if rule.matches(host, address)]
        if not candidates:
            return None
        return max(candidates, key=lambda c: (c[0].specificity, _SOURCE_RANK[c[1]]))

    @staticmethod
    def _verdict(match: tuple[Rule, Source, str], *, host: str, address: IPAddress | None) -> Decision:
        rule, source, why = match
        if source == "allow":
            return _ALLOWED
        subject = _subject(host, address)
        if source == "deny":
            return Decision(
                allowed=False,
                reason=(
                    f"{subject} on {DENY_SETTING} ({rule.text}); remove that entry, or add the host name "
                    f"(or a narrower CIDR) to {ALLOW_SETTING}"
                ),
            )
        if address is None:
            target = host
        elif parse_address(host) is None:
            target = f"{address} (or the host name)"
        else:
            target = str(address)
        return Decision(
            allowed=False,
            reason=(
                f"{subject} {why} (blocked by default); if the provider really is there, add {target} "
                f"to {ALLOW_SETTING}"
            ),
        )


def check_scheme(scheme: str, *, context: str = "Request") -> None:
    """ProviderBlockedError unless ``scheme`` is http or https."""
    if scheme.lower() not in ALLOWED_SCHEMES:
        raise ProviderBlockedError(
            f"{context} blocked: only http:// and https:// URLs may be fetched, not {scheme.lower()}://"
        )


def _normal_host(host: str) -> str:
    return host.strip().lower().rstrip(".").removeprefix("[").removesuffix("]")


def _subject(host: str, address: IPAddress | None) -> str:
    if address is None:
        return f"the host name {host} is"
    if parse_address(host) is not None:
        return f"{address} is"
    return f"{host} resolves to {address}, which is"


__all__ = [
    "ALLOW_SETTING",
    "BUILTIN_BLOCKED",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DENY_SETTING",
    "MAX_REDIRECTS",
    "Decision",
    "IPAddress",
    "OutboundPolicy",
    "Rule",
    "check_scheme",
    "effective_address",
    "parse_address",
    "parse_rule",
    "parse_rules",
]
