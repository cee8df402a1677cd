"""The outbound guard: its rules on their own, then validation and discovery against real loopback peers.

The rule tests need no network. The service tests run on SQLite and PostgreSQL against real servers on
127.0.0.1; addresses that must never be contacted (metadata, link-local) are used only where the guard
refuses them before any connection is attempted.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable

import httpcore2
import pytest
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import func, select

from llmconfig import LLMConfigService
from llmconfig.db.models import Provider
from llmconfig.errors import ProviderBadResponseError, ProviderBlockedError
from llmconfig.providers.outbound import (
    OutboundPolicy,
    effective_address,
    parse_rule,
    parse_rules,
)
from llmconfig.providers.transport import GuardedBackend
from llmconfig.settings import Settings
from tests.helpers import OPENAI_PEER_KEY
from tests.peers import OpenAIPeer
from tests.providers.conftest import ServiceFactory, custom


def provider_count(service: LLMConfigService) -> int:
    with service.sessions() as session:
        return session.scalar(select(func.count()).select_from(Provider)) or 0


# ------------------------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    ("entry", "text"),
    [
        ("10.0.0.0/8", "10.0.0.0/8"),
        (" 127.0.0.1 ", "127.0.0.1"),
        ("fd00::/8", "fd00::/8"),
        ("[::1]", "::1"),
        ("::ffff:169.254.0.0/112", "169.254.0.0/16"),  # IPv4-mapped ranges are kept as the IPv4 range
        ("API.Example.com.", "api.example.com"),
        ("*.example.com", "*.example.com"),
        ("localhost", "localhost"),
        ("my_host-1", "my_host-1"),
    ],
)
def test_entries_are_parsed_and_normalised(entry: str, text: str) -> None:
    assert parse_rule(entry).text == text


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ("10.0.0.1/8", "did you mean 10.0.0.0/8"),
        ("10.0.0.0/33", "not a valid IP address or CIDR"),
        ("300.1.2.3", "not a valid IP address or CIDR"),
        ("fe80::zz", "not a valid IP address or CIDR"),
        ("exa mple.com", "not an IP address, CIDR"),
        ("-bad.example.com", "not an IP address, CIDR"),
        ("*.", "not an IP address, CIDR"),
        ("https://api.example.com/v1", "is a URL"),
    ],
)
def test_bad_entries_are_rejected_naming_the_entry(entry: str, words: str) -> None:
    with pytest.raises(ValueError, match=words) as caught:
        parse_rule(entry)
    assert repr(entry.strip()) in str(caught.value)


def test_settings_read_comma_separated_lists_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, settings_factory: Callable[..., Settings]
) -> None:
    settings_factory()  # clears the developer's LLMCONFIG_* variables
    monkeypatch.setenv("LLMCONFIG_OUTBOUND_DENY", "127.0.0.0/8, localhost ,,*.Internal.example.")
    monkeypatch.setenv("LLMCONFIG_OUTBOUND_ALLOW", "10.1.2.3")
    monkeypatch.setenv("LLMCONFIG_OUTBOUND_MAX_RESPONSE_BYTES", "1048576")
    settings = Settings(_env_file=None)
    assert settings.outbound_deny == ("127.0.0.0/8", "localhost", "*.internal.example")
    assert settings.outbound_allow == ("10.1.2.3",)
    assert settings.outbound_max_response_bytes == 1024 * 1024

    defaults = Settings(_env_file=None, outbound_deny="", outbound_allow=[])
    assert defaults.outbound_deny == () and defaults.outbound_allow == ()


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("LLMCONFIG_OUTBOUND_DENY", "127.0.0.0/8,10.0.0.1/8", "LLMCONFIG_OUTBOUND_DENY: '10.0.0.1/8'"),
        ("LLMCONFIG_OUTBOUND_ALLOW", "good.example.com,bad host", "LLMCONFIG_OUTBOUND_ALLOW: 'bad host'"),
        ("LLMCONFIG_OUTBOUND_MAX_RESPONSE_BYTES", "10", "outbound_max_response_bytes"),
    ],
)
def test_invalid_settings_fail_at_start_naming_the_entry(
    monkeypatch: pytest.MonkeyPatch, settings_factory: Callable[..., Settings], variable: str, value: str, words: str
) -> None:
    settings_factory()
    monkeypatch.setenv(variable, value)
    with pytest.raises(PydanticValidationError, match=words):
        Settings(_env_file=None)


# ------------------------------------------------------------------------------------------------ decisions


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "127.8.9.10", "::1", "10.1.2.3", "172.16.0.5", "192.168.1.10", "fd12:3456::1", "8.8.8.8", "0.0.0.0"],
)
def test_loopback_private_and_public_addresses_are_allowed_by_default(address: str) -> None:
    assert OutboundPolicy().decide("provider.example", address).allowed


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("169.254.169.254", "link-local range 169.254.0.0/16"),
        ("169.254.0.1", "link-local range 169.254.0.0/16"),
        ("fe80::1", "IPv6 link-local range fe80::/10"),
        ("febf:ffff::1", "IPv6 link-local range fe80::/10"),
        ("fd00:ec2::254", "AWS metadata service"),
        # The same places written another way reach the same place.
        ("::ffff:169.254.169.254", "resolves to 169.254.169.254"),
        ("::ffff:a9fe:a9fe", "resolves to 169.254.169.254"),
        ("64:ff9b::a9fe:a9fe", "resolves to 169.254.169.254"),
    ],
)
def test_link_local_and_metadata_addresses_are_blocked_by_default(address: str, words: str) -> None:
    decision = OutboundPolicy().decide("provider.example", address)
    assert not decision.allowed
    assert words in decision.reason
    assert "LLMCONFIG_OUTBOUND_ALLOW" in decision.reason


@pytest.mark.parametrize("address", ["64:ff9b::7f00:1", "64:ff9b::"])
def test_an_allow_list_of_loopback_does_not_let_a_nat64_form_of_loopback_through(address: str) -> None:
    # Such a connection goes to a NAT64 gateway elsewhere on the network.
    decision = OutboundPolicy(allow=["127.0.0.0/8", "::1"]).decide("provider.example", address)
    assert not decision.allowed
    assert "LLMCONFIG_OUTBOUND_ALLOW" in decision.reason


def test_neighbours_of_the_blocked_ranges_are_not_blocked() -> None:
    policy = OutboundPolicy()
    for address in ("169.253.255.255", "169.255.0.0", "fec0::1", "fd00:ec2::253", "fd00:ec2::255"):
        assert policy.decide("provider.example", address).allowed, address


def test_effective_address_maps_embedded_and_unspecified_addresses() -> None:
    v4, v6 = ipaddress.IPv4Address, ipaddress.IPv6Address
    assert effective_address(v6("::ffff:10.0.0.1")) == v4("10.0.0.1")
    assert effective_address(v6("64:ff9b::a00:1")) == v4("10.0.0.1")
    # Through a NAT64 gateway, 127.0.0.1 and 0.0.0.0 are the gateway's own, not this host's.
    assert effective_address(v6("64:ff9b::7f00:1")) == v6("64:ff9b::7f00:1")
    assert effective_address(v6("64:ff9b::")) == v6("64:ff9b::")
    assert effective_address(v4("0.0.0.0")) == v4("127.0.0.1")
    assert effective_address(v6("::")) == v6("::1")
    assert effective_address(v6("2001:db8::1")) == v6("2001:db8::1")


def test_deny_list_blocks_cidrs_host_names_and_wildcards() -> None:
    policy = OutboundPolicy(deny="127.0.0.0/8, ::1, internal.example, *.corp.example")
    assert not policy.decide("localhost", "127.0.0.1").allowed
    assert not policy.decide("localhost", "::1").allowed
    # 0.0.0.0 reaches the local host, so it is treated as loopback.
    assert not policy.decide("0.0.0.0", "0.0.0.0").allowed
    assert not policy.decide("::ffff:127.0.0.1", "::ffff:127.0.0.1").allowed
    assert not policy.decide("Internal.Example.", "10.0.0.1").allowed
    assert not policy.decide("a.b.corp.example", "10.0.0.1").allowed
    assert policy.decide("corp.example", "10.0.0.1").allowed  # a wildcard covers subdomains only
    assert policy.decide("elsewhere.example", "10.0.0.1").allowed

    blocked = policy.decide("localhost", "127.0.0.1")
    assert blocked.reason.startswith("localhost resolves to 127.0.0.1, which is on LLMCONFIG_OUTBOUND_DENY")
    assert "(127.0.0.0/8)" in blocked.reason and "LLMCONFIG_OUTBOUND_ALLOW" in blocked.reason


def test_host_name_entries_decide_before_any_lookup() -> None:
    policy = OutboundPolicy(deny="*.corp.example", allow="ok.corp.example")
    denied = policy.decide_name("db.corp.example")
    assert denied is not None and not denied.allowed and "the host name db.corp.example" in denied.reason
    allowed = policy.decide_name("ok.corp.example")
    assert allowed is not None and allowed.allowed
    assert policy.decide_name("elsewhere.example") is None  # needs the addresses
    assert policy.decide_name("10.0.0.1") is None  # an IP literal is judged by address


@pytest.mark.parametrize(
    ("allow", "deny", "host", "address", "allowed"),
    [
        # The most specific entry decides, whichever list it is on.
        ("127.0.0.1", "127.0.0.0/8", "peer", "127.0.0.1", True),
        ("127.0.0.1", "127.0.0.0/8", "peer", "127.0.0.2", False),
        ("10.0.0.0/8", "10.1.0.0/16", "peer", "10.1.2.3", False),
        ("10.0.0.0/8", "10.1.0.0/16", "peer", "10.2.0.1", True),
        # A host name beats any CIDR; an exact name beats a wildcard.
        ("localhost", "127.0.0.0/8", "localhost", "127.0.0.1", True),
        ("10.0.0.0/8", "db.example", "db.example", "10.0.0.5", False),
        ("api.corp.example", "*.corp.example", "api.corp.example", "10.0.0.5", True),
        ("*.corp.example", "api.corp.example", "api.corp.example", "10.0.0.5", False),
        ("*.corp.example", "*.eu.corp.example", "api.eu.corp.example", "10.0.0.5", False),
        # On a tie the deny list wins.
        ("10.0.0.0/8", "10.0.0.0/8", "peer", "10.0.0.1", False),
        ("db.example", "db.example", "db.example", "10.0.0.1", False),
        # The built-in ranges give way to an allow entry at least as specific, not to a broader one.
        ("169.254.169.254", "", "peer", "169.254.169.254", True),
        ("169.254.0.0/16", "", "peer", "169.254.1.1", True),
        ("0.0.0.0/0", "", "peer", "169.254.169.254", False),
        ("::/0", "", "peer", "fe80::1", False),
        ("metadata.internal", "", "metadata.internal", "169.254.169.254", True),
        # With an allow list, nothing else is reachable.
        ("10.0.0.0/8", "", "peer", "127.0.0.1", False),
        ("10.0.0.0/8", "", "peer", "10.9.9.9", True),
        ("api.example.com", "", "other.example.com", "10.0.0.1", False),
        ("*.example.com", "", "api.example.com", "8.8.8.8", True),
    ],
)
def test_precedence(allow: str, deny: str, host: str, address: str, allowed: bool) -> None:
    assert OutboundPolicy(allow=allow, deny=deny).decide(host, address).allowed is allowed


def test_not_on_the_allow_list_says_how_to_allow_it() -> None:
    decision = OutboundPolicy(allow="10.0.0.0/8").decide("peer.example", "192.168.0.9")
    assert not decision.allowed
    assert "not on LLMCONFIG_OUTBOUND_ALLOW" in decision.reason and "192.168.0.9" in decision.reason


def test_parse_rules_accepts_a_string_or_a_list() -> None:
    assert [r.text for r in parse_rules("a.example, ,10.0.0.0/8")] == ["a.example", "10.0.0.0/8"]
    assert [r.text for r in parse_rules(["a.example", "::1"])] == ["a.example", "::1"]


def test_backend_checks_every_resolved_address_before_connecting() -> None:
    backend = GuardedBackend(OutboundPolicy(deny="127.0.0.0/8, ::1"))
    with pytest.raises(ProviderBlockedError, match="localhost resolves to"):
        backend.resolve("localhost", 80)
    assert [str(a) for a in GuardedBackend(OutboundPolicy()).resolve("127.0.0.1", 80)] == ["127.0.0.1"]
    # A name allowed by name is not judged by its addresses.
    allowed = GuardedBackend(OutboundPolicy(deny="127.0.0.0/8, ::1", allow="localhost")).resolve("localhost", 80)
    assert allowed and all(address.is_loopback for address in allowed)
    with pytest.raises(httpcore2.ConnectError, match="cannot resolve"):
        backend.resolve("no-such-host.invalid", 80)


# ------------------------------------------------------------------------------------------------ real requests


def test_a_loopback_peer_is_reachable_by_default(service: LLMConfigService, openai_peer: OpenAIPeer) -> None:
    _, result = service.providers.add(custom("local", openai_peer.base_url))
    assert result is not None and result.status == "ok"


def test_a_denied_address_is_blocked_and_nothing_is_written(
    make_service: ServiceFactory, openai_peer: OpenAIPeer
) -> None:
    service = make_service(outbound_deny="127.0.0.0/8")
    with pytest.raises(ProviderBlockedError) as caught:
        service.providers.add(custom("local", openai_peer.base_url))
    message = str(caught.value)
    assert message.startswith("Request to 127.0.0.1 blocked: 127.0.0.1 is on LLMCONFIG_OUTBOUND_DENY (127.0.0.0/8)")
    assert OPENAI_PEER_KEY not in message
    assert provider_count(service) == 0
    assert openai_peer.requests == []  # refused before connecting

    # A provider added without validation is blocked when it is validated, and the outcome is recorded.
    service.providers.add(custom("local", openai_peer.base_url), validate=False)
    result = service.providers.validate("local")
    assert not result.ok and result.status == "blocked" and "LLMCONFIG_OUTBOUND_DENY" in result.detail
    stored = service.providers.get("local")
    assert stored.validation_status == "failed" and stored.validation_error == result.detail
    assert openai_peer.requests == []


def test_a_host_name_is_checked_after_resolution(make_service: ServiceFactory, openai_peer: OpenAIPeer) -> None:
    url = f"http://localhost:{openai_peer.port}/v1"
    blocked = make_service(outbound_deny="127.0.0.0/8,::1")
    with pytest.raises(ProviderBlockedError, match=r"localhost resolves to (127\.0\.0\.1|::1), which is on"):
        blocked.providers.add(custom("local", url))
    assert openai_peer.requests == []

    # Naming the host in the allow list opens it, whatever it resolves to.
    opened = make_service(outbound_deny="127.0.0.0/8,::1", outbound_allow="localhost")
    _, result = opened.providers.add(custom("local", url))
    assert result is not None and result.ok


@pytest.mark.request_timeout(5)
@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://169.254.169.254/v1", "169.254.169.254 is in the link-local range"),
        ("http://[fe80::1]/v1", "fe80::1 is in the IPv6 link-local range"),
        ("http://[fd00:ec2::254]/v1", "AWS metadata service"),
        ("http://[::ffff:169.254.169.254]/v1", "169.254.169.254 is in the link-local range"),
    ],
)
def test_metadata_and_link_local_addresses_are_blocked_without_a_connection(
    service: LLMConfigService, url: str, words: str
) -> None:
    started = time.monotonic()
    with pytest.raises(ProviderBlockedError, match=words):
        service.providers.add(custom("meta", url))
    # A connection attempt to these (unrouted here) would run into the 5 s request timeout; the refusal comes
    # before any, however busy the machine (a margin of 1 s, not a figure of speed: make bench measures that).
    assert time.monotonic() - started < 4.0
    assert provider_count(service) == 0


def test_a_redirect_to_a_blocked_address_is_blocked(service: LLMConfigService, openai_peer: OpenAIPeer) -> None:
    openai_peer.behaviour = "redirect"
    openai_peer.redirect_to = "http://169.254.169.254/latest/meta-data/iam?token=hunter2"
    with pytest.raises(ProviderBlockedError, match="169.254.169.254 is in the link-local range") as caught:
        service.providers.add(custom("local", openai_peer.base_url))
    assert "hunter2" not in str(caught.value) and "meta-data" not in str(caught.value)
    assert [r.status for r in openai_peer.requests] == [302]
    assert provider_count(service) == 0


def test_a_redirect_to_a_denied_peer_is_blocked(make_service: ServiceFactory, openai_peer: OpenAIPeer) -> None:
    with OpenAIPeer(api_key=None, name="target", host="127.0.0.2") as target:
        service = make_service(outbound_deny="127.0.0.2")
        openai_peer.behaviour = "redirect"
        openai_peer.redirect_to = f"{target.base_url}/models"
        result = service.providers.add(custom("local", openai_peer.base_url), validate=False)[0]
        outcome = service.providers.validate(result.id)
        assert outcome.status == "blocked" and "127.0.0.2 is on LLMCONFIG_OUTBOUND_DENY" in outcome.detail
        assert target.requests == []


def test_a_redirect_to_an_allowed_peer_is_followed_without_the_key(
    service: LLMConfigService, openai_peer: OpenAIPeer
) -> None:
    with OpenAIPeer(api_key=None, name="target", models=("moved-model",)) as target:
        openai_peer.behaviour = "redirect"
        openai_peer.redirect_to = f"{target.base_url}/models"
        _, result = service.providers.add(custom("local", openai_peer.base_url))
        assert result is not None and result.ok and result.models_discovered == 1
        assert [m.model_name for m in service.providers.catalog("local")] == ["moved-model"]
        # Another origin (another port): the key stays with the provider it was meant for.
        assert openai_peer.last_request.headers["authorization"] == f"Bearer {OPENAI_PEER_KEY}"
        assert "authorization" not in target.last_request.headers


def test_the_key_follows_only_same_origin_redirects_and_hops_are_capped(
    service: LLMConfigService, openai_peer: OpenAIPeer
) -> None:
    with OpenAIPeer(api_key=OPENAI_PEER_KEY, name="front") as front:
        front.behaviour = "redirect"
        front.redirect_to = f"{openai_peer.base_url}/models"
        # Different port means different origin: the key is dropped and the target refuses.
        cross, _ = service.providers.add(custom("front", front.base_url), validate=False)
        assert service.providers.validate(cross.id).status == "unauthorized"
        assert "authorization" not in openai_peer.last_request.headers
    # A relative Location stays on the same origin.
    openai_peer.reset()
    openai_peer.behaviour = "redirect"
    openai_peer.redirect_to = "/v1/models?from=redirect"
    with pytest.raises(ProviderBadResponseError, match="redirected more than 5 times"):
        service.providers.add(custom("loop", openai_peer.base_url))
    assert len(openai_peer.requests) == 6
    assert all(r.headers["authorization"] == f"Bearer {OPENAI_PEER_KEY}" for r in openai_peer.requests)


def test_a_redirect_to_another_scheme_is_blocked(service: LLMConfigService, openai_peer: OpenAIPeer) -> None:
    openai_peer.behaviour = "redirect"
    openai_peer.redirect_to = "file:///etc/passwd"
    with pytest.raises(
        ProviderBlockedError, match=r"Redirect from 127\.0\.0\.1:\d+ blocked: only http:// and https://"
    ):
        service.providers.add(custom("local", openai_peer.base_url))


def test_an_allow_list_admits_only_what_it_names(make_service: ServiceFactory, openai_peer: OpenAIPeer) -> None:
    elsewhere = make_service(outbound_allow="10.0.0.0/8")
    with pytest.raises(ProviderBlockedError, match="127.0.0.1 is not on LLMCONFIG_OUTBOUND_ALLOW"):
        elsewhere.providers.add(custom("local", openai_peer.base_url))

    by_address = make_service(outbound_allow="10.0.0.0/8, 127.0.0.1")
    _, result = by_address.providers.add(custom("by-address", openai_peer.base_url))
    assert result is not None and result.ok

    by_name = make_service(outbound_allow="localhost")
    _, result = by_name.providers.add(custom("by-name", f"http://localhost:{openai_peer.port}/v1"))
    assert result is not None and result.ok
    with pytest.raises(ProviderBlockedError, match="not on LLMCONFIG_OUTBOUND_ALLOW"):
        by_name.providers.add(custom("by-ip", openai_peer.base_url))


def test_the_body_limit_is_a_setting(make_service: ServiceFactory, openai_peer: OpenAIPeer) -> None:
    service = make_service(outbound_max_response_bytes=1024)
    openai_peer.models = [f"model-{i:04d}" for i in range(100)]  # about 6 kB of JSON
    with pytest.raises(ProviderBadResponseError, match="larger than 1 kB") as caught:
        service.providers.add(custom("local", openai_peer.base_url))
    assert "LLMCONFIG_OUTBOUND_MAX_RESPONSE_BYTES" in str(caught.value)
    openai_peer.models = ["gpt-4o"]
    _, result = service.providers.add(custom("local", openai_peer.base_url))
    assert result is not None and result.ok
