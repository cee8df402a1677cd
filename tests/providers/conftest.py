"""Helpers shared by the provider tests: services with extra settings, providers on the loopback peers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from pydantic import SecretStr

from llmconfig import LLMConfigService
from llmconfig.providers import ProviderCreate
from llmconfig.settings import Settings
from tests.helpers import OPENAI_PEER_KEY, requested_timeout

ServiceFactory = Callable[..., LLMConfigService]


@pytest.fixture
def make_service(
    request: pytest.FixtureRequest, migrated_database_url: str, settings_factory: Callable[..., Settings]
) -> Iterator[ServiceFactory]:
    """Build services on the (SQLite and PostgreSQL) test database with extra settings; closed at teardown."""
    made: list[LLMConfigService] = []

    def make(**settings: object) -> LLMConfigService:
        svc = LLMConfigService(
            settings_factory(
                database_url=migrated_database_url,
                cache_ttl=0,
                request_timeout=requested_timeout(request),
                **settings,
            )
        )
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.close()


def custom(name: str, base_url: str, key: str | None = OPENAI_PEER_KEY) -> ProviderCreate:
    """An OpenAI-compatible provider at ``base_url``."""
    return ProviderCreate(
        name=name, provider_type="custom", api_base_url=base_url, api_key=SecretStr(key) if key else None
    )
