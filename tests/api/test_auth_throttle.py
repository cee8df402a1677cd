"""Slowing down token guessing without locking anyone out: only failures count, per real client, in bounded memory.

SQLite only: the limiter lives in the process and does not depend on the database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from llmconfig import LLMConfigService
from llmconfig.api import create_app
from llmconfig.api.throttle import FailedAuthLimiter
from llmconfig.settings import Settings
from llmconfig.tokens import TokenService
from tests.api.conftest import API, problem_of

PROVIDERS = f"{API}/providers"
LIMIT = 10  # failed attempts per client and minute
PROXY = "10.0.0.2"
WRONG = {"Authorization": "Bearer llmc_guess"}


@pytest.fixture
def app_factory(
    sqlite_template: Path, tmp_path: Path, settings_factory: Callable[..., Settings]
) -> Iterator[Callable[..., tuple[TestClient, dict[str, str]]]]:
    """An app over a migrated SQLite file; returns (client from an address, admin headers)."""
    target = tmp_path / "throttle.db"
    target.write_bytes(sqlite_template.read_bytes())
    services: list[LLMConfigService] = []
    clients: list[TestClient] = []

    def make(peer: str = "192.0.2.10", **overrides: object) -> tuple[TestClient, dict[str, str]]:
        if not services:
            settings = settings_factory(database_url=f"sqlite:///{target}", cache_ttl=0, **overrides)
            services.append(LLMConfigService(settings))
        service = services[0]
        token, _ = TokenService(sessions=service.sessions).create(role="admin", name=f"admin-{len(clients)}")
        client = TestClient(create_app(service.settings, service=service), client=(peer, 50000))
        clients.append(client)
        return client, {"Authorization": f"Bearer {token}"}

    try:
        yield make
    finally:
        for client in clients:
            client.close()
        for service in services:
            service.close()


def test_the_admin_token_gets_in_after_twelve_wrong_tokens_from_the_same_client(
    app_factory: Callable[..., tuple[TestClient, dict[str, str]]],
) -> None:
    client, admin = app_factory()
    for attempt in range(12):
        client.get(PROVIDERS, headers={"Authorization": f"Bearer llmc_wrong-{attempt}"})

    response = client.get(PROVIDERS, headers=admin)

    assert response.status_code == 200, response.text


def test_wrong_tokens_get_429_with_retry_after_once_over_the_limit_and_valid_requests_do_not_count(
    app_factory: Callable[..., tuple[TestClient, dict[str, str]]],
) -> None:
    client, admin = app_factory()
    statuses = []
    for _ in range(LIMIT):
        statuses.append(client.get(PROVIDERS, headers=WRONG).status_code)
        statuses.append(client.get(PROVIDERS, headers=admin).status_code)  # neither counted nor refused

    assert statuses == [401, 200] * LIMIT
    throttled = client.get(PROVIDERS, headers=WRONG)
    assert throttled.status_code == 429
    assert "Too many failed authentication attempts" in problem_of(throttled)["detail"]
    assert 1 <= int(throttled.headers["retry-after"]) <= 60
    assert client.get(PROVIDERS, headers=admin).status_code == 200
    # A request without a token guesses nothing: it is a plain 401, never counted or slowed.
    assert client.get(PROVIDERS).status_code == 401


def test_two_clients_behind_a_trusted_proxy_are_limited_separately(
    app_factory: Callable[..., tuple[TestClient, dict[str, str]]],
) -> None:
    client, _ = app_factory(peer=PROXY, trusted_proxies=("10.0.0.0/24",))
    alice = {**WRONG, "X-Forwarded-For": "203.0.113.5"}
    bob = {**WRONG, "X-Forwarded-For": "198.51.100.1, 203.0.113.6"}  # bob's own claim, then what the proxy saw

    assert [client.get(PROVIDERS, headers=alice).status_code for _ in range(LIMIT + 1)] == [401] * LIMIT + [429]

    assert client.get(PROVIDERS, headers=bob).status_code == 401
    # RFC 7239 Forwarded works the same way.
    carol = {**WRONG, "Forwarded": 'for="[2001:db8:cafe::17]:4711";proto=https'}
    assert client.get(PROVIDERS, headers=carol).status_code == 401


def test_an_untrusted_peers_forged_forwarded_headers_do_not_change_its_bucket(
    app_factory: Callable[..., tuple[TestClient, dict[str, str]]],
) -> None:
    client, _ = app_factory(peer="198.51.100.7", trusted_proxies=("10.0.0.0/24",))

    statuses = [
        client.get(
            PROVIDERS, headers={**WRONG, "X-Forwarded-For": f"203.0.113.{n}", "Forwarded": f"for=192.0.2.{n}"}
        ).status_code
        for n in range(LIMIT + 1)
    ]

    assert statuses == [401] * LIMIT + [429]


def test_ipv6_clients_of_one_64_share_a_bucket() -> None:
    limiter = FailedAuthLimiter(limit=3, window=60)
    assert [limiter.failed(f"2001:db8:1:2::{n:x}") for n in range(3)] == [None, None, None]
    assert limiter.failed("2001:db8:1:2:ffff::1") is not None
    assert limiter.failed("2001:db8:1:3::1") is None  # another /64


def test_memory_stays_bounded_whatever_the_number_of_addresses() -> None:
    limiter = FailedAuthLimiter(limit=3, window=60, max_clients=100)

    for n in range(5000):
        limiter.failed(f"10.{n // 65536}.{n // 256 % 256}.{n % 256}")

    assert len(limiter) <= 101  # the tracked clients, and one shared bucket for the rest
    assert limiter.stored_keys() <= 101
    # Past the bound, new addresses share one bucket: guessing from many addresses is still slowed.
    assert limiter.failed("192.0.2.200") is not None
